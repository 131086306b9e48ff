import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Database, openDatabase } from '../db/database';
import { newId } from '../common/ids';
import { ActiveRunsLimit, RunsRepository, StorageLimit } from './runs.repository';
import type { Run } from './runs.types';

// SQLite in a temp folder, or the PostgreSQL of KILN_TEST_DATABASE_URL when given (ids are unique per run).
let dir: string;
let db: Database;
let repo: RunsRepository;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-runs-spec-'));
  const pg = process.env.KILN_TEST_DATABASE_URL;
  db = await openDatabase({ database: pg ? { kind: 'postgres', url: pg } : { kind: 'sqlite', file: path.join(dir, 'kiln.sqlite') } });
  repo = new RunsRepository(db);
});

after(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function user(): Promise<string> {
  const id = newId();
  await db.run('INSERT INTO users (id, name, is_admin, quota, created_at) VALUES (?, ?, 0, NULL, ?)', [id, `u-${id}`, new Date().toISOString()]);
  return id;
}

function run(ownerId: string): Run {
  return {
    id: newId(),
    ownerId,
    status: 'queued',
    conclusion: null,
    source: { kind: 'command', files: 0 },
    workflowName: 'w',
    workflowFile: null,
    plan: { workflowName: 'w', jobs: [] } as unknown as Run['plan'],
    context: { sha: 'x', ref: 'refs/heads/main', repository: 'local/x', event: 'push', runNumber: 1 },
    cancelRequested: false,
    error: null,
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

test("a run's source counts in its owner's storage until it is released; the storage limit is checked with it", async () => {
  const owner = await user();
  const a = run(owner);
  await repo.create(a, [], { sourceBytes: 600, maxStorageBytes: 1000 });
  assert.deepEqual(await repo.storage(owner), { artifacts: 0, sources: 600 });
  await assert.rejects(
    repo.create(run(owner), [], { sourceBytes: 401, maxStorageBytes: 1000 }),
    (e: unknown) => e instanceof StorageLimit && e.used === 600 && e.adding === 401,
  );
  await repo.create(run(owner), [], { sourceBytes: 400, maxStorageBytes: 1000 });
  assert.deepEqual(await repo.storage(owner), { artifacts: 0, sources: 1000 });
  await repo.sourceReleased(a.id);
  assert.deepEqual(await repo.storage(owner), { artifacts: 0, sources: 400 });
  assert.deepEqual(await repo.storage(await user()), { artifacts: 0, sources: 0 }, "another user's storage is theirs");
});

test('the active-runs limit still holds', async () => {
  const owner = await user();
  await repo.create(run(owner), [], { maxActive: 1 });
  await assert.rejects(repo.create(run(owner), [], { maxActive: 1 }), ActiveRunsLimit);
});

test('concluded runs holding a source (or recorded before sizes were) are found; running and released ones are not', async () => {
  const owner = await user();
  const [done, old, running, released] = [run(owner), run(owner), run(owner), run(owner)];
  for (const r of [done, old, running, released]) await repo.create(r, [], { sourceBytes: 10 });
  await db.run('UPDATE runs SET source_bytes = NULL WHERE id = ?', [old.id]);
  for (const r of [done, old, released]) await repo.completeRun(r.id, 'success');
  await repo.sourceReleased(released.id);
  const found = new Set(await repo.concludedWithSource(100_000));
  assert.ok(found.has(done.id) && found.has(old.id));
  assert.ok(!found.has(running.id) && !found.has(released.id));
});

test('run numbers: 1, 2, 3 per scope (the owner, or the registered repository); two scopes are independent; a refused run takes none', async () => {
  const [ada, bob] = [await user(), await user()];
  const numbers = async (r: Run, limits = {}) => {
    await repo.create(r, [], limits);
    return [r.context.runNumber, (await repo.getRun(r.id))!.context.runNumber];
  };
  assert.deepEqual(await numbers(run(ada)), [1, 1]);
  assert.deepEqual(await numbers(run(ada)), [2, 2]);
  assert.deepEqual(await numbers(run(bob)), [1, 1], "another owner's runs are numbered apart");
  const pushed = { ...run(ada), repositoryId: `repo-${newId()}` };
  assert.deepEqual(await numbers(pushed), [1, 1], "a registered repository's runs are numbered apart from its owner's");
  assert.deepEqual(await numbers({ ...run(ada), repositoryId: pushed.repositoryId }), [2, 2]);
  await assert.rejects(repo.create(run(ada), [], { maxActive: 1 }), ActiveRunsLimit);
  assert.deepEqual(await numbers(run(ada)), [3, 3], 'the refused run took no number');
});

test('run numbers: concurrent submissions get distinct numbers, and a second connection (another process) follows on', async () => {
  const owner = await user();
  const batch = Array.from({ length: 20 }, () => run(owner));
  await Promise.all(batch.map((r) => repo.create(r, [])));
  assert.deepEqual(
    batch.map((r) => r.context.runNumber).sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  const pg = process.env.KILN_TEST_DATABASE_URL;
  const other = await openDatabase({ database: pg ? { kind: 'postgres', url: pg } : { kind: 'sqlite', file: path.join(dir, 'kiln.sqlite') } });
  try {
    const next = run(owner);
    await new RunsRepository(other).create(next, []);
    assert.equal(next.context.runNumber, 21);
  } finally {
    await other.close();
  }
});

test("a step's record takes the name the runner evaluated when the step started", async () => {
  const a = run(await user());
  const step = { index: 0, name: 'Set up Python ${{ matrix.python-version }}' };
  const job = { id: newId(), runId: a.id, position: 0, key: 'k', workflowJobId: 'k', name: 'k', environment: 'e', status: 'queued', spec: { steps: [step] } };
  await repo.create(a, [job as unknown as Parameters<RunsRepository['create']>[1][number]]);
  assert.equal((await repo.steps(a.id))[0].name, 'Set up Python ${{ matrix.python-version }}');
  await repo.updateStep(job.id, 0, { status: 'in_progress', started: true, name: 'Set up Python 3.12' });
  const [s] = await repo.steps(a.id);
  assert.deepEqual([s.name, s.status], ['Set up Python 3.12', 'in_progress']);
});
