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
    id: newId(), ownerId, status: 'queued', conclusion: null, source: { kind: 'command', files: 0 }, workflowName: 'w', workflowFile: null,
    plan: { workflowName: 'w', jobs: [] } as unknown as Run['plan'], context: { sha: 'x', ref: 'refs/heads/main', repository: 'local/x', event: 'push', runNumber: 1 },
    cancelRequested: false, error: null, createdAt: new Date().toISOString(), startedAt: null, finishedAt: null,
  };
}

test("a run's source counts in its owner's storage until it is released; the storage limit is checked with it", async () => {
  const owner = await user();
  const a = run(owner);
  await repo.create(a, [], { sourceBytes: 600, maxStorageBytes: 1000 });
  assert.deepEqual(await repo.storage(owner), { artifacts: 0, sources: 600 });
  await assert.rejects(repo.create(run(owner), [], { sourceBytes: 401, maxStorageBytes: 1000 }), (e: unknown) => e instanceof StorageLimit && e.used === 600 && e.adding === 401);
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
