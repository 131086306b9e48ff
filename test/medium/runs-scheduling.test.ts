import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { EXECUTION_BACKEND } from '../../src/execution/backend';
import { AppModule, configureHttp } from '../../src/app';
import { Test } from '@nestjs/testing';
import { FakeBackend } from '../fixtures/fake-backend';
import { makeReport } from '../fixtures/reports';
import { makeTar } from '../fixtures/archives';
import { TEST_ADMIN_TOKEN, testConfig } from '../helpers';
import * as fs from 'node:fs';
import { RunsRepository } from '../../src/runs/runs.repository';
import { blobKeys } from '../../src/storage/blob-store';
import { KILN_CONFIG, KilnConfig } from '../../src/config/config';
import * as path from 'node:path';
import { ArtifactReaper } from '../../src/runs/artifact-reaper';
import { LogBus } from '../../src/storage/log-bus';
import { LocalLogHub, LogStore } from '../../src/storage/log-store';

/** Scheduling and step semantics, with real SQLite and Redis and a scripted backend. */
describe('runs: scheduling and step semantics (SQLite, Redis, scripted backend)', () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  const backend = new FakeBackend();

  before(async () => {
    const config = testConfig({ KILN_QUEUE_PREFIX: `medium-${process.pid}-${Date.now()}`, KILN_WORKER_CONCURRENCY: '4', KILN_WORKER_NAME: 'medium-worker-1' });
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRole(config, 'serve')] })
      .overrideProvider(EXECUTION_BACKEND)
      .useValue(backend)
      .compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    configureHttp(app);
    await app.init();
    http = request.agent(app.getHttpServer()).set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`) as unknown as ReturnType<typeof request>;
    await app.get(CatalogueRepository).upsert(makeReport());
  });
  after(async () => app?.close());

  async function submit(workflow: string) {
    const res = await http.post('/api/v1/runs').attach('source', await makeTar([['.kiln.yml', workflow]]), 'p.tar.gz');
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { id: string };
  }

  async function finished(id: string) {
    for (let i = 0; i < 200; i++) {
      const r = await http.get(`/api/v1/runs/${id}`);
      if (r.body.status === 'completed')
        return r.body as {
          conclusion: string;
          jobs: {
            key: string;
            id: string;
            conclusion: string;
            error: string | null;
            attempts: number;
            steps: { outcome: string; conclusion: string; reason: string | null; exitCode: number | null }[];
          }[];
        };
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`run ${id} did not finish`);
  }

  const logsOf = async (id: string) => (await http.get(`/api/v1/runs/${id}/logs`)).text;

  test("the log writers and the followers of one process share its LocalLogHub (live lines skip Redis on the writer's node)", () => {
    // Nest resolves an optional dependency it cannot identify to nothing, silently: this once left the hub out.
    const hub = app.get(LocalLogHub);
    assert.ok(hub instanceof LocalLogHub);
    assert.equal(app.get(LogStore)['hub'], hub, 'LogStore publishes to the hub');
    assert.equal(app.get(LogBus, { strict: false })['hub'], hub, 'LogBus listens to the hub');
  });

  test('needs: a job starts only after the jobs it needs; a failed need skips its dependents', async () => {
    const run = await submit(`
jobs:
  build: { runs-on: python-3.11, steps: [ { run: "echo build" } ] }
  test: { runs-on: python-3.11, needs: build, steps: [ { run: "exit 1" } ] }
  deploy: { runs-on: python-3.11, needs: [test], steps: [ { run: "echo deploy" } ] }
  report: { runs-on: python-3.11, needs: [test], if: "always()", steps: [ { run: "echo report" } ] }
  onfail: { runs-on: python-3.11, needs: [test], if: "\${{ failure() }}", steps: [ { run: "echo onfail" } ] }
`);
    const done = await finished(run.id);
    const by = Object.fromEntries(done.jobs.map((j) => [j.key, j.conclusion]));
    assert.deepEqual(by, { build: 'success', test: 'failure', deploy: 'skipped', report: 'success', onfail: 'success' });
    assert.equal(done.conclusion, 'failure');
    const ids = Object.fromEntries(done.jobs.map((j) => [j.key, j.id]));
    assert.ok(backend.started.indexOf(ids.build) < backend.started.indexOf(ids.test));
    assert.ok(!backend.started.includes(ids.deploy), 'a skipped job gets no sandbox');
  });

  test('steps: if: failure(), continue-on-error, outcome vs conclusion', async () => {
    const run = await submit(`
jobs:
  j:
    runs-on: python-3.11
    steps:
      - id: flaky
        run: exit 3
        continue-on-error: true
      - run: echo after-flaky
      - run: exit 1
      - run: echo skipped-by-default
      - if: failure()
        run: echo cleanup
      - if: \${{ always() && steps.flaky.outcome == 'failure' && steps.flaky.conclusion == 'success' }}
        run: echo outcome-differs
`);
    const done = await finished(run.id);
    const steps = done.jobs[0].steps;
    assert.deepEqual(
      steps.map((s) => [s.outcome, s.conclusion]),
      [
        ['failure', 'success'],
        ['success', 'success'],
        ['failure', 'failure'],
        ['skipped', 'skipped'],
        ['success', 'success'],
        ['success', 'success'],
      ],
    );
    assert.equal(steps[0].exitCode, 3);
    assert.equal(done.conclusion, 'failure');
    const log = await logsOf(run.id);
    assert.match(log, /after-flaky/);
    assert.match(log, /cleanup/);
    assert.match(log, /outcome-differs/);
    assert.doesNotMatch(log, /skipped-by-default/);
  });

  test('GITHUB_ENV, GITHUB_OUTPUT and expressions carry state between steps', async () => {
    const run = await submit(`
env: { GREETING: hello }
jobs:
  j:
    runs-on: python-3.11
    env: { WHO: "\${{ github.repository }}" }
    steps:
      - id: one
        run: |
          setenv FROM_STEP=one
          output answer=42
      - run: |
          printenv FROM_STEP
          printenv GREETING
          printenv WHO
          echo answer-\${{ steps.one.outputs.answer }}
          printenv GITHUB_SHA
        env: { STEP_ONLY: yes }
`);
    const done = await finished(run.id);
    assert.equal(done.conclusion, 'success');
    const log = await logsOf(run.id);
    assert.match(log, /FROM_STEP=one/);
    assert.match(log, /GREETING=hello/);
    assert.match(log, /WHO=local\/upload/);
    assert.match(log, /answer-42/);
    assert.match(log, /GITHUB_SHA=[0-9a-f]{40}/);
  });

  test('fail-fast: a matrix job whose own step had failed is a failure when fail-fast stops it, not cancelled', async () => {
    const run = await submit(`
jobs:
  m:
    runs-on: python-3.11
    strategy:
      matrix: { n: [first, second] }
    steps:
      - run: |
          sleep \${{ matrix.n == 'first' && 10 || 300 }}
          exit \${{ matrix.n == 'first' && 2 || 1 }}
      - if: always()
        run: sleep \${{ matrix.n == 'first' && 1500 || 6000 }}
`);
    const done = await finished(run.id);
    assert.deepEqual(
      done.jobs.map((j) => [j.conclusion, j.steps[0].exitCode]),
      [
        ['failure', 2],
        ['failure', 1],
      ],
      JSON.stringify(done.jobs.map((j) => [j.key, j.error])),
    );
    // The stopped job's last step ends within a second; the next test counts what runs at once.
    for (let i = 0; i < 100 && backend.running > 0; i++) await new Promise((r) => setTimeout(r, 100));
  });

  test('matrix: max-parallel holds, and fail-fast cancels the rest after a failure', async () => {
    backend.maxRunning = 0;
    const run = await submit(`
jobs:
  m:
    runs-on: python-3.11
    strategy:
      max-parallel: 1
      matrix: { n: [1, 2, 3, 4] }
    steps:
      - run: |
          sleep 100
          exit \${{ matrix.n == 2 && 1 || 0 }}
`);
    const done = await finished(run.id);
    assert.equal(backend.maxRunning, 1, 'never more than one matrix job at a time');
    assert.deepEqual(
      done.jobs.map((j) => j.conclusion),
      ['success', 'failure', 'cancelled', 'cancelled'],
    );
    assert.equal(done.conclusion, 'failure');
  });

  test('limits are reported as such: OOM and step timeout', async () => {
    const run = await submit(`
jobs:
  j:
    runs-on: python-3.11
    steps:
      - run: oom
        continue-on-error: true
      - run: hang
        timeout-minutes: 0.002
`);
    const done = await finished(run.id);
    const steps = done.jobs[0].steps;
    assert.equal(steps[0].reason, 'oom-killed');
    assert.equal(steps[1].reason, 'timeout');
    assert.equal(done.conclusion, 'failure');
  });

  test('an engine that is down before any step runs is retried, then the job runs', async () => {
    backend.failStartsLeft = 1;
    const run = await submit('jobs:\n  j:\n    runs-on: python-3.11\n    steps:\n      - run: echo second-try\n');
    const done = await finished(run.id);
    assert.equal(done.conclusion, 'success');
    assert.equal(done.jobs[0].attempts, 2);
    assert.match(await logsOf(run.id), /could not prepare the sandbox: Docker engine: connect ECONNREFUSED/);
  });

  test('cancel: a running job is stopped and the run ends cancelled; every sandbox is destroyed', async () => {
    const run = await submit('jobs:\n  j:\n    runs-on: python-3.11\n    steps:\n      - run: hang\n      - if: always()\n        run: echo after\n');
    for (let i = 0; i < 100 && !backend.execs.some((e) => e.script === 'hang'); i++) await new Promise((r) => setTimeout(r, 50));
    await http.post(`/api/v1/runs/${run.id}/cancel`).expect(202);
    const done = await finished(run.id);
    assert.equal(done.conclusion, 'cancelled');
    assert.equal(done.jobs[0].steps[0].reason, 'cancelled');
    for (const id of backend.started) assert.ok(backend.destroyed.includes(id), `sandbox ${id} destroyed`);
  });

  test('retention: an expired artifact is deleted (file and record) and answers 404', async () => {
    const run = await submit('jobs:\n  j:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n');
    const done = await finished(run.id);
    const repo = app.get(RunsRepository);
    const file = path.join(app.get<KilnConfig>(KILN_CONFIG).dataDir, blobKeys.artifact(run.id, 'expiring'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'tar bytes');
    const created = new Date(Date.now() - 2 * 86_400_000);
    await repo.insertArtifact({
      id: 'expiring',
      runId: run.id,
      jobId: done.jobs[0].id,
      name: 'old',
      sizeBytes: 9,
      files: 1,
      createdAt: created.toISOString(),
      expiresAt: new Date(Date.now() - 86_400_000).toISOString(),
    });
    await http.get(`/api/v1/runs/${run.id}/artifacts/old`).expect(200);
    assert.equal(await app.get(ArtifactReaper).sweep(), 1);
    assert.ok(!fs.existsSync(file), 'the file is gone');
    const res = await http.get(`/api/v1/runs/${run.id}/artifacts/old`).expect(404);
    assert.match(res.body.message, /has no artifact named 'old'/);
  });

  test('request size limits: 413 with the limit, never a 500', async () => {
    const big = await http
      .post('/api/v1/runs')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ command: 'true', files: { 'a.txt': 'x'.repeat(7 * 1024 * 1024) } }))
      .expect(413);
    assert.match(big.body.message, /too large: the limit is 6291456 bytes/);
    const manyFiles = await http
      .post('/api/v1/runs')
      .send({ command: 'true', files: { 'a.txt': 'x'.repeat(2 * 1024 * 1024) } })
      .expect(400);
    assert.match(manyFiles.body.message, /files: .*a\.txt/);
  });

  test('unknown runs and bad ids are 404/400 with a message', async () => {
    const missing = await http.get('/api/v1/runs/doesnotexist').expect(404);
    assert.match(missing.body.message, /no run doesnotexist/);
    await http.get('/api/v1/runs/' + encodeURIComponent('../../etc')).expect((r) => assert.ok([400, 404].includes(r.status)));
    const both = await http.post('/api/v1/runs').send({ command: 'x', repo: 'https://h/r' }).expect(400);
    assert.match(JSON.stringify(both.body.message), /either \{repo, ref\}/);
    const unknown = await http.post('/api/v1/runs').send({ command: 'x', image: 'evil' }).expect(400);
    assert.match(JSON.stringify(unknown.body.message), /property image should not exist/);
  });

  test('metrics: /metrics is Prometheus text with queue depth, jobs by state, step durations and container starts; jobs name their worker', async () => {
    const run = await submit('jobs:\n  m: { runs-on: python-3.11, steps: [ { run: "echo metrics" } ] }\n');
    const done = await finished(run.id);
    assert.equal(done.conclusion, 'success');
    const view = (await http.get(`/api/v1/runs/${run.id}`)).body as { jobs: { worker: string | null }[] };
    assert.equal(view.jobs[0].worker, 'medium-worker-1');
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    assert.match(res.headers['content-type'], /^text\/plain/);
    for (const state of ['waiting', 'active', 'delayed', 'failed']) assert.match(res.text, new RegExp(`^kiln_queue_jobs\\{state="${state}"\\} \\d+$`, 'm'));
    assert.match(res.text, /^kiln_jobs\{status="completed"\} [1-9]\d*$/m);
    assert.match(res.text, /^kiln_jobs_finished_total\{conclusion="success"\} [1-9]\d*$/m);
    assert.match(res.text, /^kiln_step_duration_seconds_count\{conclusion="success"\} [1-9]\d*$/m);
    assert.match(res.text, /^kiln_process_resident_memory_bytes \d+/m);
    assert.doesNotMatch(res.text, new RegExp(run.id), 'no run ids in metrics');
  });
});

/**
 * Fair share, with one worker slot so that the queue's order decides everything: a user's jobs waiting
 * in the queue go behind a newer job of a user with fewer jobs queued or running.
 */
describe('runs: fair share between users (SQLite, Redis, scripted backend, one worker slot)', () => {
  let app: INestApplication;
  const backend = new FakeBackend();

  before(async () => {
    const config = testConfig({ KILN_QUEUE_PREFIX: `medium-fair-${process.pid}-${Date.now()}`, KILN_WORKER_CONCURRENCY: '1', KILN_QUOTA_CONCURRENT_JOBS: '3' });
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRole(config, 'serve')] })
      .overrideProvider(EXECUTION_BACKEND)
      .useValue(backend)
      .compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    configureHttp(app);
    await app.init();
    await app.get(CatalogueRepository).upsert(makeReport());
  });
  after(async () => app?.close());

  async function user(name: string) {
    const admin = request.agent(app.getHttpServer()).set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
    const u = await admin.post('/api/v1/users').send({ name }).expect(201);
    const t = await admin.post(`/api/v1/users/${u.body.id}/tokens`).send({ name: 'fair' }).expect(201);
    return request.agent(app.getHttpServer()).set('authorization', `Bearer ${t.body.token}`) as unknown as ReturnType<typeof request>;
  }

  async function until<T>(what: string, get: () => Promise<T | undefined | false>): Promise<T> {
    for (let i = 0; i < 400; i++) {
      const v = await get();
      if (v) return v;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  test('fair share: a job of the user with fewer jobs running goes before the waiting jobs of a user with more', async () => {
    const alice = await user('fair-alice');
    const bob = await user('fair-bob');
    const carol = await user('fair-carol');
    const submit = async (as: ReturnType<typeof request>, workflow: string) => {
      const res = await as.post('/api/v1/runs').attach('source', await makeTar([['.kiln.yml', workflow]]), 'p.tar.gz');
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string };
    };
    const jobsOf = async (as: ReturnType<typeof request>, id: string) =>
      ((await as.get(`/api/v1/runs/${id}`)).body as { jobs: { key: string; id: string; status: string }[] }).jobs;
    // Alice: three jobs at once (her quota); the one slot takes the first, two wait in the queue.
    const a = await submit(
      alice,
      `
jobs:
  a1: { runs-on: python-3.11, steps: [ { run: "sleep 1500" } ] }
  a2: { runs-on: python-3.11, steps: [ { run: "sleep 200" } ] }
  a3: { runs-on: python-3.11, steps: [ { run: "sleep 200" } ] }
`,
    );
    const aJobs = await until("alice's jobs queued", async () => {
      const jobs = await jobsOf(alice, a.id);
      return jobs.every((j) => j.status !== 'pending') && jobs.some((j) => backend.started.includes(j.id)) && jobs;
    });
    // Bob then Carol come later, one job each, while Alice's two still wait.
    const b = await submit(bob, 'jobs:\n  b1: { runs-on: python-3.11, steps: [ { run: "sleep 100" } ] }\n');
    const bJob = await until("bob's job queued", async () => (await jobsOf(bob, b.id)).find((j) => j.status !== 'pending'));
    const c = await submit(carol, 'jobs:\n  c1: { runs-on: python-3.11, steps: [ { run: "sleep 100" } ] }\n');
    const cJob = await until("carol's job queued", async () => (await jobsOf(carol, c.id)).find((j) => j.status !== 'pending'));
    const first = aJobs.find((j) => backend.started.includes(j.id))!;
    assert.equal(backend.started.filter((id) => aJobs.some((j) => j.id === id)).length, 1, "one of Alice's jobs ran while Bob and Carol submitted");
    const all = [...aJobs.map((j) => j.id), bJob.id, cJob.id];
    await until('every job started', async () => all.every((id) => backend.started.includes(id)));
    const order = backend.started.filter((id) => all.includes(id));
    const name = (id: string) => (id === bJob.id ? 'bob' : id === cJob.id ? 'carol' : 'alice');
    assert.deepEqual(
      order.map(name),
      ['alice', 'bob', 'carol', 'alice', 'alice'],
      `Bob's and Carol's jobs (their first) go before Alice's 2nd and 3rd, which were queued earlier: ${order.map(name).join(', ')}`,
    );
    assert.equal(order[0], first.id);
  });
});
