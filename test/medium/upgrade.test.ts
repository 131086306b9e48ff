/**
 * Upgrades: a database as the previous release left it (its schema: the migrations it shipped, and
 * rows written as its code wrote them) is opened by this release. Every run, job, step, annotation,
 * artifact, user, token, secret, repository and delivery is still there and served by the API, and
 * the old token still works. Run numbers: each run keeps the number it was recorded with (a webhook
 * run, recorded with 0, is numbered in creation order after its repository's highest), and the next
 * run of each scope (repository, owner) follows on. Runs on SQLite and on the tier's PostgreSQL (a database of its own).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Client } from 'pg';
import request from 'supertest';
import { hashToken } from '../../src/auth/auth.service';
import { connectDatabase, DATABASE, Database, migrate, MIGRATIONS } from '../../src/db/database';
import { RunsRepository } from '../../src/runs/runs.repository';
import type { Run } from '../../src/runs/runs.types';
import { createTestApp, testConfig, tmpDir } from '../helpers';

/** How many migrations the previous release shipped (migrations are only ever appended). */
const PREVIOUS_RELEASE_MIGRATIONS = 17;

const USER_TOKEN = 'kiln_upgrade_user_token_0123456789abcdef';
const T = '2026-11-28T10:00:00.000Z';
const T2 = '2026-11-28T11:00:00.000Z';
const T3 = '2026-11-28T12:00:00.000Z';

const stepSpec = (index: number, name: string) => ({
  index,
  id: null,
  name,
  if: null,
  run: `echo ${name}`,
  shell: 'bash',
  env: {},
  workingDirectory: null,
  continueOnError: false,
  timeoutMinutes: null,
});
const jobSpec = {
  key: 'test',
  jobId: 'test',
  name: 'test',
  matrix: null,
  environment: { name: 'python-3.11', version: '20261128.1', image: 'sha256:0' },
  needs: [],
  if: null,
  env: {},
  timeoutMinutes: 60,
  continueOnError: false,
  strategy: null,
  limits: {},
  outputs: { answer: '${{ steps.a.outputs.answer }}' },
  steps: [stepSpec(0, 'first'), stepSpec(1, 'second')],
};

/** Rows as the previous release's code wrote them, with its column lists. */
async function seedPreviousRelease(db: Database): Promise<void> {
  await db.run('INSERT INTO users (id, name, is_admin, quota, created_at) VALUES (?, ?, ?, ?, ?)', [
    'u-old',
    'olduser',
    0,
    JSON.stringify({ concurrentJobs: 3 }),
    T,
  ]);
  await db.run('INSERT INTO tokens (id, user_id, hash, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
    't-old',
    'u-old',
    hashToken(USER_TOKEN),
    'laptop',
    T,
    null,
  ]);
  await db.run('INSERT INTO secrets (user_id, name, value, created_at) VALUES (?, ?, ?, ?)', ['u-old', 'DEPLOY_KEY', 'sealed-value-as-stored', T]);
  await db.run(
    'INSERT INTO repositories (id, owner_id, full_name, clone_url, secret, branches, label_map, status_url, status_token, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [
      'r-old',
      'u-old',
      'octo/demo',
      'https://git.example.test/octo/demo.git',
      'sealed-secret',
      JSON.stringify(['main']),
      JSON.stringify({ 'ubuntu-latest': 'python-3.11' }),
      null,
      null,
      T,
    ],
  );
  await db.run(
    `INSERT INTO runs (id, owner_id, repository_id, concurrency_group, status, conclusion, source_kind, source, workflow_name, workflow_file, plan, context, cancel_requested, error, created_at, started_at, finished_at)
     VALUES (?, ?, ?, ?, 'completed', 'success', 'repo', ?, 'ci', '.github/workflows/ci.yml', ?, ?, 0, NULL, ?, ?, ?)`,
    [
      'run-old',
      'u-old',
      'r-old',
      null,
      JSON.stringify({ kind: 'repo', repo: 'https://git.example.test/octo/demo.git', ref: 'refs/heads/main', sha: 'a'.repeat(40) }),
      JSON.stringify({ workflowName: 'ci', jobs: [jobSpec] }),
      JSON.stringify({ sha: 'a'.repeat(40), ref: 'refs/heads/main', repository: 'octo/demo', event: 'push', runNumber: 7 }),
      T,
      T,
      T,
    ],
  );
  // More runs as the previous release recorded them: a later push (webhook runs got runNumber 0) and
  // an upload (numbered by the process's counter), neither with jobs.
  const more: [string, string | null, number, string][] = [
    ['run-old-push', 'r-old', 0, T2],
    ['run-old-upload', null, 4, T3],
  ];
  for (const [id, repositoryId, runNumber, at] of more) {
    await db.run(
      `INSERT INTO runs (id, owner_id, repository_id, concurrency_group, status, conclusion, source_kind, source, workflow_name, workflow_file, plan, context, cancel_requested, error, created_at, started_at, finished_at)
       VALUES (?, 'u-old', ?, NULL, 'completed', 'success', 'command', ?, 'w', NULL, ?, ?, 0, NULL, ?, ?, ?)`,
      [
        id,
        repositoryId,
        JSON.stringify({ kind: 'command', files: 0 }),
        JSON.stringify({ workflowName: 'w', jobs: [] }),
        JSON.stringify({ sha: 'c'.repeat(40), ref: 'refs/heads/main', repository: 'octo/demo', event: 'push', runNumber }),
        at,
        at,
        at,
      ],
    );
  }
  await db.run(
    `INSERT INTO jobs (id, run_id, position, job_key, job_id, name, environment, status, conclusion, error, spec, outputs, attempts, worker, queued_at, started_at, finished_at, summary)
     VALUES ('job-old', 'run-old', 0, 'test', 'test', 'test', 'python-3.11@20261128.1', 'completed', 'success', NULL, ?, ?, 1, 'w1', ?, ?, ?, ?)`,
    [JSON.stringify(jobSpec), JSON.stringify({ answer: '42' }), T, T, T, '## Report\n\nall good'],
  );
  for (const [idx, name] of [
    [0, 'first'],
    [1, 'second'],
  ] as const) {
    await db.run(
      `INSERT INTO steps (job_id, idx, name, status, outcome, conclusion, exit_code, reason, started_at, finished_at) VALUES ('job-old', ?, ?, 'completed', 'success', 'success', 0, NULL, ?, ?)`,
      [idx, name, T, T],
    );
  }
  await db.run(
    'INSERT INTO annotations (run_id, job_id, step, seq, level, message, title, file, line, end_line, col, end_column) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ['run-old', 'job-old', 0, 0, 'warning', 'deprecated call', 'lint', 'app.py', 3, null, null, null],
  );
  await db.run('INSERT INTO artifacts (id, run_id, job_id, name, size_bytes, files, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    'a-old',
    'run-old',
    'job-old',
    'wheels',
    2048,
    3,
    T,
    '2099-01-01T00:00:00.000Z',
  ]);
  await db.run('INSERT INTO deliveries (id, repository_id, event, payload, state, detail, run_ids, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    'delivery-1',
    'r-old',
    'push',
    JSON.stringify({ ref: 'refs/heads/main' }),
    'done',
    null,
    JSON.stringify(['run-old']),
    T,
  ]);
}

/** The previous release's database: its schema (its migrations, recorded as applied) and its rows. */
async function previousReleaseDatabase(config: Parameters<typeof connectDatabase>[0]): Promise<void> {
  const db = connectDatabase(config);
  try {
    await migrate(db, PREVIOUS_RELEASE_MIGRATIONS);
    await seedPreviousRelease(db);
  } finally {
    await db.close();
  }
}

async function assertNothingLost(app: INestApplication): Promise<void> {
  const applied = await app.get<Database>(DATABASE).all<{ id: number }>('SELECT id FROM kiln_migrations ORDER BY id');
  assert.deepEqual(
    applied.map((r) => Number(r.id)),
    MIGRATIONS.map((_, i) => i + 1),
    'every migration since the previous release is applied once',
  );
  const http = request(app.getHttpServer());
  const as = (req: request.Test) => req.set('authorization', `Bearer ${USER_TOKEN}`);
  const me = await as(http.get('/api/v1/me')).expect(200);
  assert.equal(me.body.name, 'olduser', "the previous release's token still signs its user in");
  assert.equal(me.body.quota.concurrentJobs, 3);

  const run = (await as(http.get('/api/v1/runs/run-old')).expect(200)).body;
  assert.equal(run.conclusion, 'success');
  assert.equal(run.context.runNumber, 7);
  assert.equal(run.jobs.length, 1);
  assert.deepEqual(
    run.jobs[0].steps.map((s: { name: string; conclusion: string }) => [s.name, s.conclusion]),
    [
      ['first', 'success'],
      ['second', 'success'],
    ],
  );
  assert.deepEqual(run.jobs[0].outputs, { answer: '42' });
  assert.equal(run.jobs[0].summary, '## Report\n\nall good');
  assert.deepEqual(
    run.annotations.map((a: { message: string; file: string }) => [a.message, a.file]),
    [['deprecated call', 'app.py']],
  );
  assert.deepEqual(
    run.artifacts.map((a: { name: string; sizeBytes: number; files: number }) => [a.name, a.sizeBytes, a.files]),
    [['wheels', 2048, 3]],
  );
  assert.deepEqual(
    (await as(http.get('/api/v1/runs')).expect(200)).body.map((r: { id: string }) => r.id),
    ['run-old-upload', 'run-old-push', 'run-old'],
  );
  const numberOf = async (id: string) => (await as(http.get(`/api/v1/runs/${id}`)).expect(200)).body.context.runNumber;
  assert.equal(await numberOf('run-old-upload'), 4, 'a stored number is kept');
  assert.equal(await numberOf('run-old-push'), 8, "a webhook run recorded with 0 is numbered after its repository's highest");

  assert.deepEqual(
    (await as(http.get('/api/v1/tokens')).expect(200)).body.map((t: { id: string; name: string }) => [t.id, t.name]),
    [['t-old', 'laptop']],
  );
  const secrets = (await as(http.get('/api/v1/secrets')).expect(200)).body as unknown[];
  assert.deepEqual(
    secrets.map((s) => (typeof s === 'string' ? s : (s as { name: string }).name)),
    ['DEPLOY_KEY'],
  );

  const repos = (await as(http.get('/api/v1/repositories')).expect(200)).body as { id: string; fullName: string }[];
  assert.deepEqual(
    repos.map((r) => [r.id, r.fullName]),
    [['r-old', 'octo/demo']],
  );
  const deliveries = (await as(http.get('/api/v1/repositories/r-old/deliveries')).expect(200)).body as { id: string; runIds: string[]; state: string }[];
  assert.deepEqual(
    deliveries.map((d) => [d.id, d.state, d.runIds]),
    [['delivery-1', 'done', ['run-old']]],
  );
  // The forge's delivery id, now unique per repository, is the old row's id (a redelivery stays a duplicate).
  const db = app.get<Database>(DATABASE);
  assert.deepEqual(await db.all('SELECT id, delivery_id FROM deliveries'), [{ id: 'delivery-1', delivery_id: 'delivery-1' }]);
}

/** The next run of each scope follows on from the highest number the upgrade found (runs recorded as submission does). */
async function assertNextNumbersFollowOn(app: INestApplication): Promise<void> {
  const next = async (repositoryId: string | null) => {
    const run: Run = {
      id: `run-new-${repositoryId ?? 'owner'}`,
      ownerId: 'u-old',
      repositoryId,
      status: 'queued',
      conclusion: null,
      source: { kind: 'command', files: 0 },
      workflowName: 'w',
      workflowFile: null,
      plan: { workflowName: 'w', jobs: [] } as unknown as Run['plan'],
      context: { sha: 'd'.repeat(40), ref: 'refs/heads/main', repository: 'octo/demo', event: 'push', runNumber: 0 },
      cancelRequested: false,
      error: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
    };
    await app.get(RunsRepository).create(run, []);
    return (await app.get(RunsRepository).getRun(run.id))!.context.runNumber;
  };
  assert.equal(await next('r-old'), 9, "the repository's next run follows its highest (7, then 8 given by the upgrade)");
  assert.equal(await next(null), 5, "the owner's next run follows its highest (4)");
}

/** The previous release kept a run's source forever: the upgraded server removes that of a concluded run and stops counting it. */
async function assertOldSourceReleased(app: INestApplication, sourceFile: string): Promise<void> {
  const db = app.get<Database>(DATABASE);
  let row: { source_bytes: unknown } | undefined;
  for (let i = 0; i < 100; i++) {
    row = (await db.all<{ source_bytes: unknown }>("SELECT source_bytes FROM runs WHERE id = 'run-old'"))[0];
    if (!fs.existsSync(sourceFile) && row?.source_bytes !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(!fs.existsSync(sourceFile), "the concluded run's source left by the previous release is removed");
  assert.equal(Number(row?.source_bytes), 0);
}

const engine = { ping: async () => ({ apiVersion: '1.41', version: 'scripted' }), runtimes: async () => ['runc'] };

describe("upgrade from the previous release's database", () => {
  const apps: INestApplication[] = [];
  after(async () => {
    for (const app of apps) await app.close();
  });

  test('SQLite: every run, job, step, annotation, artifact, token, secret, repository and delivery is kept', async () => {
    const data = tmpDir('kiln-upgrade-');
    await previousReleaseDatabase({ database: { kind: 'sqlite', file: path.join(data, 'kiln.sqlite') } });
    const source = path.join(data, 'sources', 'run-old.tar');
    fs.mkdirSync(path.dirname(source), { recursive: true });
    fs.writeFileSync(source, Buffer.alloc(10240));
    const app = await createTestApp(testConfig({ KILN_DATA_DIR: data }), { engine });
    apps.push(app);
    await assertNothingLost(app);
    await assertOldSourceReleased(app, source);
    await assertNextNumbersFollowOn(app);
  });

  test('PostgreSQL: the same, from a database of its own', async () => {
    const url = process.env.KILN_TEST_DATABASE_URL;
    assert.ok(url, 'KILN_TEST_DATABASE_URL is not set: run this tier through `npm test` (.ci/test.sh starts PostgreSQL)');
    const name = `kiln_upgrade_${process.pid}_${Date.now()}`;
    const admin = new Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const own = new URL(url);
    own.pathname = `/${name}`;
    await previousReleaseDatabase({ database: { kind: 'postgres', url: own.toString() } });
    const config = testConfig({ DATABASE_URL: own.toString() });
    const source = path.join(config.dataDir, 'sources', 'run-old.tar');
    fs.mkdirSync(path.dirname(source), { recursive: true });
    fs.writeFileSync(source, Buffer.alloc(10240));
    const app = await createTestApp(config, { engine });
    apps.push(app);
    await assertNothingLost(app);
    await assertOldSourceReleased(app, source);
    await assertNextNumbersFollowOn(app);
  });
});
