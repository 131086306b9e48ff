/**
 * Registered repositories and their deliveries on both engines: the upgrade that makes delivery
 * ids unique per repository keeps what was recorded before, and the per-user cap is one statement.
 * SQLite always; PostgreSQL when KILN_TEST_DATABASE_URL is set (.ci/test.sh starts one).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { type Database, MIGRATIONS, migrationSql, openDatabase } from '../../src/db/database';
import { type Delivery, type RegisteredRepository, RepositoriesRepository } from '../../src/webhooks/repositories.repository';
import { tmpDir } from '../helpers';

/** The migrations of the release before per-repository delivery ids. */
const BEFORE = MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('ADD COLUMN delivery_id'));

async function applyFirst(db: Database, count: number): Promise<void> {
  await db.run('CREATE TABLE IF NOT EXISTS kiln_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  for (let i = 0; i < count; i++) {
    await db.run(migrationSql(MIGRATIONS[i], db.kind));
    await db.run('INSERT INTO kiln_migrations (id, applied_at) VALUES (?, ?)', [i + 1, new Date().toISOString()]);
  }
}

function repo(id: string, ownerId: string): RegisteredRepository {
  return {
    id,
    ownerId,
    fullName: `o/${id}`,
    cloneUrl: 'https://forge.example/x.git',
    secret: 's',
    branches: null,
    labelMap: {},
    statusUrl: null,
    statusToken: null,
    createdAt: new Date().toISOString(),
  };
}

function delivery(key: string, id: string, repositoryId: string): Delivery {
  return { key, id, repositoryId, event: 'push', payload: { n: 1 }, state: 'queued', detail: null, runIds: [], receivedAt: new Date().toISOString() };
}

const engines: [string, () => Promise<{ fresh: () => Promise<Database>; reopen: () => Promise<Database>; cleanup: () => Promise<void> }>][] = [
  [
    'SQLite',
    async () => {
      const file = path.join(tmpDir('kiln-repos-'), 'kiln.sqlite');
      const sqlite = { database: { kind: 'sqlite' as const, file } };
      return {
        fresh: () => openRaw(sqlite),
        reopen: () => openDatabase(sqlite),
        cleanup: async () => undefined,
      };
    },
  ],
];
if (process.env.KILN_TEST_DATABASE_URL) {
  const url = process.env.KILN_TEST_DATABASE_URL;
  engines.push([
    'PostgreSQL',
    async () => {
      const pg = { database: { kind: 'postgres' as const, url } };
      const reset = async () => {
        const { Pool } = await import('pg');
        const pool = new Pool({ connectionString: url });
        await pool.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
        await pool.end();
      };
      return {
        fresh: async () => {
          await reset();
          return openRaw(pg);
        },
        reopen: () => openDatabase(pg),
        cleanup: reset,
      };
    },
  ]);
}

/** A Database on the engine without running the migrations (openDatabase always runs them all). */
async function openRaw(config: Parameters<typeof openDatabase>[0]): Promise<Database> {
  const saved = MIGRATIONS.splice(0, MIGRATIONS.length);
  try {
    return await openDatabase(config);
  } finally {
    MIGRATIONS.push(...saved);
  }
}

for (const [name, make] of engines) {
  describe(`repositories and deliveries (${name})`, () => {
    const open: Database[] = [];
    let cleanup: () => Promise<void> = async () => undefined;
    after(async () => {
      for (const db of open) await db.close();
      await cleanup();
    });

    test('the upgrade keeps every delivery; ids are then unique per repository, not across them', async () => {
      assert.ok(BEFORE > 0);
      const engine = await make();
      cleanup = engine.cleanup;
      const old = await engine.fresh();
      await applyFirst(old, BEFORE);
      await old.run("INSERT INTO users (id, name, is_admin, created_at) VALUES ('u1', 'alice', 0, 'now'), ('u2', 'bob', 0, 'now')");
      await old.run(
        "INSERT INTO repositories (id, owner_id, full_name, clone_url, secret, created_at) VALUES ('r1', 'u1', 'alice/app', 'https://forge.example/a.git', 's', 'now'), ('r2', 'u2', 'bob/app', 'https://forge.example/b.git', 's', 'now')",
      );
      await old.run(
        "INSERT INTO deliveries (id, repository_id, event, payload, state, detail, run_ids, received_at) VALUES ('gh-1', 'r1', 'push', '{}', 'done', NULL, '[\"run1\"]', '2026-01-01T00:00:00Z')",
      );
      await old.close();

      const db = await engine.reopen();
      open.push(db);
      const repos = new RepositoriesRepository(db);
      const kept = await repos.delivery('gh-1');
      assert.deepEqual(
        { key: kept?.key, id: kept?.id, state: kept?.state, runIds: kept?.runIds },
        { key: 'gh-1', id: 'gh-1', state: 'done', runIds: ['run1'] },
        'the row key and the forge id are the old id',
      );
      assert.deepEqual(
        (await repos.deliveries('r1')).map((d) => d.id),
        ['gh-1'],
      );
      assert.equal(await repos.recordDelivery(delivery('k2', 'gh-1', 'r1')), false, 'a redelivery of a delivery recorded before the upgrade');
      assert.equal(await repos.recordDelivery(delivery('k3', 'gh-1', 'r2')), true, "another repository's delivery with the same id is its own");
      assert.equal((await repos.deliveryById('r2', 'gh-1'))?.key, 'k3');
      assert.equal(await repos.recordDelivery(delivery('k4', 'gh-1', 'r2')), false);
      await repos.finishDelivery('k3', 'ignored', 'why', []);
      assert.equal((await repos.delivery('k3'))?.state, 'ignored');
      assert.equal((await repos.delivery('gh-1'))?.state, 'done', 'finishing one leaves the other');
    });

    test('create refuses past the cap in one statement', async () => {
      const db = open[0];
      const repos = new RepositoriesRepository(db);
      assert.equal(await repos.countOwned('u1'), 1);
      assert.equal(await repos.create(repo('r3', 'u1'), 2), true);
      assert.equal(await repos.create(repo('r4', 'u1'), 2), false);
      assert.equal(await repos.countOwned('u1'), 2);
      assert.equal(await repos.byId('r4'), null);
      assert.equal(await repos.create(repo('r5', 'u2'), 2), true, "another user's count is their own");
      assert.equal(await repos.create(repo('r6', 'u2')), true, 'no cap');
    });
  });
}
