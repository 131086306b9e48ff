/**
 * Run numbers across processes: several API processes (each its own connection pool) record runs of
 * the same scopes at once; every run gets a distinct number, each scope counts 1, 2, 3, ... with no gap.
 * PostgreSQL when KILN_TEST_DATABASE_URL is set (.ci/test.sh starts one): all at once. SQLite: connections
 * to one file taking turns (better-sqlite3 is synchronous: a second connection of this one process would
 * wait for the lock on the thread that holds it; concurrency on one connection is in runs.repository.spec).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { newId } from '../../src/common/ids';
import { type Database, openDatabase } from '../../src/db/database';
import { RunsRepository } from '../../src/runs/runs.repository';
import type { Run } from '../../src/runs/runs.types';
import { tmpDir } from '../helpers';

type Config = Parameters<typeof openDatabase>[0];
const engines: [string, () => Config][] = [['SQLite', () => ({ database: { kind: 'sqlite', file: path.join(tmpDir('kiln-numbers-'), 'kiln.sqlite') } })]];
const pgUrl = process.env.KILN_TEST_DATABASE_URL;
if (pgUrl) engines.push(['PostgreSQL', () => ({ database: { kind: 'postgres', url: pgUrl } })]);

function run(ownerId: string, repositoryId: string | null): Run {
  return {
    id: newId(),
    ownerId,
    repositoryId,
    status: 'queued',
    conclusion: null,
    source: { kind: 'command', files: 0 },
    workflowName: 'w',
    workflowFile: null,
    plan: { workflowName: 'w', jobs: [] } as unknown as Run['plan'],
    context: { sha: 'x', ref: 'refs/heads/main', repository: 'local/x', event: 'push', runNumber: 0 },
    cancelRequested: false,
    error: null,
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

for (const [name, config] of engines) {
  describe(`run numbers across processes (${name})`, () => {
    const open: Database[] = [];
    after(async () => {
      for (const db of open) await db.close();
    });

    test('submissions from three processes: distinct numbers, 1..n per scope, scopes independent', async () => {
      const c = config();
      for (let i = 0; i < 3; i++) open.push(await openDatabase(c));
      const processes = open.map((db) => new RunsRepository(db));
      const owner = newId();
      await open[0].run('INSERT INTO users (id, name, is_admin, quota, created_at) VALUES (?, ?, 0, NULL, ?)', [owner, `u-${owner}`, new Date().toISOString()]);
      const repository = `repo-${owner}`;
      const runs = Array.from({ length: 30 }, (_, i) => run(owner, i % 3 === 0 ? repository : null));
      const record = (r: Run, i: number) => processes[i % processes.length].create(r, []);
      if (c.database.kind === 'postgres') await Promise.all(runs.map(record));
      else for (const [i, r] of runs.entries()) await record(r, i);
      const numbersOf = async (pick: (r: Run) => boolean) =>
        (await Promise.all(runs.filter(pick).map(async (r) => (await processes[0].getRun(r.id))!.context.runNumber))).sort((a, b) => a - b);
      assert.deepEqual(
        await numbersOf((r) => r.repositoryId === repository),
        Array.from({ length: 10 }, (_, i) => i + 1),
      );
      assert.deepEqual(
        await numbersOf((r) => r.repositoryId === null),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      const rows = await open[0].all<{ n: number }>('SELECT run_number AS n FROM runs WHERE owner_id = ? ORDER BY run_number', [owner]);
      assert.equal(rows.length, 30);
    });
  });
}
