import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import request from 'supertest';
import { AppModule, configureHttp } from '../../src/app';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { loadConfig } from '../../src/config/config';
import { EXECUTION_BACKEND } from '../../src/execution/backend';
import { QUEUES, Queues } from '../../src/queue/job-queue';
import { FakeBackend } from '../fixtures/fake-backend';
import { makeReport } from '../fixtures/reports';
import { TEST_ADMIN_TOKEN, tmpDir, uniquePrefix } from '../helpers';

/**
 * Worker labels, with real SQLite and Redis and scripted backends: an `api` node, a plain worker and a
 * worker labelled `gvisor`, sharing one data folder and one queue prefix. python-3.13 is labelled.
 */
describe('worker labels: only labelled workers take labelled environments; slots are shared', () => {
  const shared = {
    KILN_DATA_DIR: tmpDir(),
    KILN_LOG_LEVEL: 'error',
    KILN_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    KILN_QUEUE_PREFIX: uniquePrefix(),
    KILN_ENVIRONMENT_LABELS: 'python-3.13=gvisor',
    // A cluster sets the per-user limit: its api node does not know the workers' slots (unset it would be 1).
    KILN_QUOTA_CONCURRENT_JOBS: '8',
  };
  let api: INestApplication;
  let http: ReturnType<typeof request>;
  let plain: TestingModule | undefined;
  let labelled: TestingModule | undefined;
  const plainBackend = new FakeBackend();
  const labelledBackend = new FakeBackend();

  async function worker(env: Record<string, string>, backend: FakeBackend): Promise<TestingModule> {
    const m = await Test.createTestingModule({ imports: [AppModule.forRole(loadConfig({ ...shared, ...env }), 'worker')] })
      .overrideProvider(EXECUTION_BACKEND)
      .useValue(backend)
      .compile();
    m.useLogger(['error']);
    await m.init();
    return m;
  }

  before(async () => {
    const m = await Test.createTestingModule({ imports: [AppModule.forRole(loadConfig(shared), 'api')] }).compile();
    api = m.createNestApplication({ logger: ['error'] });
    configureHttp(api);
    await api.init();
    http = request.agent(api.getHttpServer()).set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`) as unknown as ReturnType<typeof request>;
    for (const name of ['python-3.11', 'python-3.13']) await api.get(CatalogueRepository).upsert(makeReport({ name }));
    plain = await worker({ KILN_WORKER_NAME: 'plain', KILN_WORKER_CONCURRENCY: '2' }, plainBackend);
  });
  after(async () => {
    await labelled?.close();
    await plain?.close();
    await api?.close();
  });

  async function submit(environment: string, command: string): Promise<string> {
    const res = await http.post('/api/v1/runs').send({ command, environment });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id as string;
  }
  async function view(id: string) {
    return (await http.get(`/api/v1/runs/${id}`)).body as { status: string; conclusion: string; jobs: { worker: string | null; status: string }[] };
  }
  async function finished(id: string) {
    for (let i = 0; i < 400; i++) {
      const v = await view(id);
      if (v.status === 'completed') return v;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`run ${id} did not finish: ${JSON.stringify(await view(id))}`);
  }

  test('a labelled environment waits in its own queue until a worker with the label comes', async () => {
    const queues = api.get<Queues>(QUEUES);
    assert.deepEqual(
      [...queues.values()].map((q) => q.name),
      ['kiln-jobs', 'kiln-jobs.gvisor'],
    );
    const waiting = await submit('python-3.13', 'echo labelled');
    const other = await submit('python-3.11', 'echo plain');
    assert.equal((await finished(other)).jobs[0].worker, 'plain');
    await new Promise((r) => setTimeout(r, 1500));
    const still = await view(waiting);
    assert.equal(still.status, 'queued', 'no worker carries the gvisor label yet, so nobody may take the job');
    assert.equal(still.jobs[0].worker, null);
    assert.equal(await queues.get('gvisor')!.getWaitingCount(), 1);
    assert.ok(!plainBackend.started.length || plainBackend.execs.every((e) => !e.script.includes('labelled')));

    labelled = await worker({ KILN_WORKER_NAME: 'labelled', KILN_WORKER_LABELS: 'gvisor', KILN_WORKER_CONCURRENCY: '1' }, labelledBackend);
    const done = await finished(waiting);
    assert.equal(done.conclusion, 'success');
    assert.equal(done.jobs[0].worker, 'labelled');
  });

  test('a labelled worker also takes unlabelled work, and never runs more jobs than its slots across its queues', async () => {
    assert.ok(labelled, 'the labelled worker runs (previous test)');
    await plain!.close(); // only the labelled worker is left to take both kinds
    plain = undefined;
    labelledBackend.maxRunning = 0;
    const ids: { id: string; env: string }[] = [];
    for (let i = 0; i < 4; i++) {
      for (const env of ['python-3.13', 'python-3.11']) ids.push({ id: await submit(env, `echo ${env} ${i}\nsleep 200`), env });
    }
    for (const { id } of ids) {
      const v = await finished(id);
      assert.equal(v.conclusion, 'success');
      assert.equal(v.jobs[0].worker, 'labelled');
    }
    // Without the shared gate, Bull's loop on each queue would run a job at once: 2 with concurrency 1.
    assert.equal(labelledBackend.maxRunning, 1, 'KILN_WORKER_CONCURRENCY=1 holds across the default queue and the gvisor queue');
  });
});
