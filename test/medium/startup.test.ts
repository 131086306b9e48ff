import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MIGRATIONS, openDatabase } from '../../src/db/database';
import { runKiln, startServer, tmpDir } from '../helpers';

test('a bad variable stops start-up with a message naming it (exit 2)', async () => {
  const r = await runKiln(['serve'], { KILN_PORT: 'eighty', KILN_DATA_DIR: tmpDir() }, 30_000);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /invalid configuration:\n\s+KILN_PORT="eighty": .*integer/);
});

test('kiln serve --help prints the server usage instead of starting', async () => {
  const r = await runKiln(['serve', '--help'], {}, 30_000);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /serve\s+API and worker in one process/);
});

test('an unknown command prints usage and exits 2', async () => {
  const r = await runKiln(['frobnicate'], {}, 30_000);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  assert.match(r.stderr, /run \[DIR\]\s+pack DIR/);
  assert.match(r.stderr, /serve \| api \| worker \| images/);
});

test('kiln api serves health with SQLite in KILN_DATA_DIR and a real Redis', async () => {
  const data = tmpDir();
  const server = await startServer({ KILN_DATA_DIR: data }, 'api');
  try {
    const res = await fetch(`${server.url}/api/v1/health`);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean; detail: string }> };
    assert.equal(body.checks.redis.ok, true);
    assert.equal(body.checks.database.ok, true);
    assert.ok(fs.existsSync(path.join(data, 'kiln.sqlite')), 'the SQLite file is under KILN_DATA_DIR');
  } finally {
    await server.stop();
  }
});

test('migrations apply once: reopening the same SQLite file keeps its rows', async () => {
  const file = path.join(tmpDir(), 'k.sqlite');
  const a = await openDatabase({ database: { kind: 'sqlite', file } });
  await a.run(`INSERT INTO environment_versions VALUES ('x','20261128.1','ga','[]','b','p','m','i','{}','now')`);
  await a.close();
  const b = await openDatabase({ database: { kind: 'sqlite', file } });
  assert.deepEqual(await b.all('SELECT name FROM environment_versions'), [{ name: 'x' }]);
  assert.deepEqual(
    (await b.all<{ id: number }>('SELECT id FROM kiln_migrations ORDER BY id')).map((r) => Number(r.id)),
    MIGRATIONS.map((_, i) => i + 1),
  );
  await b.close();
});

test('a Redis that does not answer makes health 503 naming Redis, not a crash', async () => {
  const server = await startServer({ KILN_DATA_DIR: tmpDir(), REDIS_URL: 'redis://127.0.0.1:1' }, 'api');
  try {
    const res = await fetch(`${server.url}/api/v1/health`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean }> };
    assert.equal(body.checks.redis.ok, false);
    assert.equal(body.checks.database.ok, true);
  } finally {
    await server.stop();
  }
});
