import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { MIGRATIONS, openDatabase } from '../../src/db/database';
import { makeReport } from '../fixtures/reports';
import { createTestApp, testConfig } from '../helpers';

// .ci/test.sh starts a throwaway PostgreSQL for this tier and exports its URL.
const url = process.env.KILN_TEST_DATABASE_URL;

describe('PostgreSQL when DATABASE_URL is set (real PostgreSQL)', () => {
  let app: INestApplication;

  before(async () => {
    assert.ok(url, 'KILN_TEST_DATABASE_URL is not set: run this tier through `npm test` (.ci/test.sh starts PostgreSQL)');
    app = await createTestApp(testConfig({ DATABASE_URL: url }), {
      engine: { ping: async () => ({ apiVersion: '1.41', version: 'scripted' }), runtimes: async () => ['runc'] },
    });
  });
  after(async () => app?.close());

  test('migrations are applied once, and running them again is harmless', async () => {
    const again = await openDatabase({ database: { kind: 'postgres', url: url! } });
    try {
      assert.deepEqual(
        (await again.all<{ id: number }>('SELECT id FROM kiln_migrations ORDER BY id')).map((r) => Number(r.id)),
        MIGRATIONS.map((_, i) => i + 1),
      );
    } finally {
      await again.close();
    }
  });

  test('published reports round-trip, an upsert replaces, and the API serves them', async () => {
    const repo = app.get(CatalogueRepository);
    await repo.upsert(makeReport());
    await repo.upsert(makeReport({ status: 'deprecated', removal: '2027-01-01' }));
    const got = await repo.get('python-3.11', '20261128.1');
    assert.equal(got?.report.status, 'deprecated');
    assert.equal((await repo.all()).length, 1);
    const res = await request(app.getHttpServer()).get('/api/v1/environments?package=numpy').expect(200);
    assert.deepEqual(
      res.body.environments.map((e: { name: string; status: string }) => [e.name, e.status]),
      [['python-3.11', 'deprecated']],
    );
    const health = await request(app.getHttpServer()).get('/api/v1/health').expect(200);
    assert.equal(health.body.checks.database.detail, 'postgres');
  });
});
