import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { EngineUnavailableError } from '../../src/docker/docker-engine';
import { makeReport } from '../fixtures/reports';
import { createTestApp, testConfig } from '../helpers';

/** Real SQLite and real Redis; the engine is scripted so health can be made to fail. */
const engine = {
  up: true,
  async ping() {
    if (!this.up) throw new EngineUnavailableError('Docker engine unreachable: connect ENOENT /var/run/docker.sock');
    return { apiVersion: '1.41', version: '20.10.24' };
  },
  async runtimes() {
    return ['runc'];
  },
};

describe('catalogue API (SQLite, Redis, scripted engine)', () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  before(async () => {
    app = await createTestApp(testConfig(), { engine });
    http = request(app.getHttpServer());
    const repo = app.get(CatalogueRepository);
    await repo.upsert(makeReport());
    await repo.upsert(
      makeReport({
        version: '20261201.1',
        python: '3.11.4',
        pythonPackages: [
          { name: 'numpy', version: '1.26.4' },
          { name: 'pytest', version: '7.2.1' },
          { name: 'pandas', version: '2.1.0' },
        ],
      }),
    );
    await repo.upsert(
      makeReport({ name: 'python-3.9', labels: ['python-3.9', 'debian-11', 'bullseye'], python: '3.9.2', status: 'deprecated', removal: '2027-01-01' }),
    );
  });
  after(async () => app?.close());

  test('GET /environments lists each environment at its latest version, with the default', async () => {
    const res = await http.get('/api/v1/environments').expect(200);
    assert.equal(res.body.default, 'python-3.11');
    const byName = Object.fromEntries(res.body.environments.map((e: { name: string }) => [e.name, e]));
    assert.deepEqual(Object.keys(byName).sort(), ['python-3.11', 'python-3.9']);
    assert.equal(byName['python-3.11'].latest, '20261201.1');
    assert.deepEqual(byName['python-3.11'].versions, ['20261128.1', '20261201.1']);
    assert.equal(byName['python-3.11'].python, '3.11.4');
    assert.equal(byName['python-3.11'].default, true);
    assert.equal(byName['python-3.11'].os, 'Debian GNU/Linux 12 (bookworm)');
    assert.equal(byName['python-3.11'].image, 'kiln/python-3.11:20261201.1');
    assert.equal(byName['python-3.9'].status, 'deprecated');
    assert.equal(byName['python-3.9'].removal, '2027-01-01');
  });

  test('?package= shows which environments carry a package, at what version', async () => {
    const numpy = await http.get('/api/v1/environments?package=numpy').expect(200);
    assert.deepEqual(
      numpy.body.environments.map((e: { name: string; package: unknown }) => [e.name, e.package]),
      [
        ['python-3.11', { name: 'numpy', python: '1.26.4' }],
        ['python-3.9', { name: 'numpy', python: '1.24.2' }],
      ],
    );
    const pandas = await http.get('/api/v1/environments?package=pandas').expect(200);
    assert.deepEqual(
      pandas.body.environments.map((e: { name: string }) => e.name),
      ['python-3.11'],
    );
    const deb = await http.get('/api/v1/environments?package=python3-numpy').expect(200);
    assert.equal(deb.body.environments[0].package.debian, '1:1.24.2-1');
    const none = await http.get('/api/v1/environments?package=tensorflow').expect(200);
    assert.deepEqual(none.body.environments, []);
  });

  test('bad query values are 400 with a message saying what to fix', async () => {
    const res = await http.get('/api/v1/environments?package=' + encodeURIComponent('numpy; rm')).expect(400);
    assert.match(JSON.stringify(res.body.message), /package must be a package name such as numpy/);
    const extra = await http.get('/api/v1/environments?image=x').expect(400);
    assert.match(JSON.stringify(extra.body.message), /property image should not exist/);
  });

  test('an environment by name or by label, with its history', async () => {
    const byName = await http.get('/api/v1/environments/python-3.11').expect(200);
    assert.deepEqual(
      byName.body.history.map((h: { version: string }) => h.version),
      ['20261128.1', '20261201.1'],
    );
    const byLabel = await http.get('/api/v1/environments/bullseye').expect(200);
    assert.equal(byLabel.body.name, 'python-3.9');
  });

  test('an unknown name is 404 listing the known ones', async () => {
    const res = await http.get('/api/v1/environments/ruby-3').expect(404);
    assert.match(res.body.message, /no environment or label named 'ruby-3'; known environments: python-3\.11, python-3\.9/);
  });

  test('the full report of a version, latest, and Markdown', async () => {
    const r = await http.get('/api/v1/environments/python-3.11/20261128.1').expect(200);
    assert.equal(r.body.python, '3.11.2');
    assert.equal(r.body.pythonPackages.length, 2);
    const latest = await http.get('/api/v1/environments/debian-12/latest').expect(200);
    assert.equal(latest.body.version, '20261201.1');
    const md = await http.get('/api/v1/environments/python-3.11/20261128.1?format=md').expect(200);
    assert.match(md.headers['content-type'], /^text\/markdown/);
    assert.match(md.text, /^# python-3\.11 20261128\.1/);
    assert.match(md.text, /\| numpy \| 1\.24\.2 \|/);
    const missing = await http.get('/api/v1/environments/python-3.11/20200101.1').expect(404);
    assert.match(missing.body.message, /python-3\.11 has no version '20200101\.1'; published versions: 20261128\.1, 20261201\.1/);
    await http.get('/api/v1/environments/python-3.11/20261128.1?format=xml').expect(400);
  });

  test('diff between two versions: Added / Removed / Updated, JSON and Markdown', async () => {
    const d = await http.get('/api/v1/environments/python-3.11/diff?from=20261128.1&to=20261201.1').expect(200);
    assert.deepEqual(d.body.python, { name: 'python', from: '3.11.2', to: '3.11.4' });
    assert.deepEqual(d.body.pythonPackages.added, [{ name: 'pandas', version: '2.1.0' }]);
    assert.deepEqual(d.body.pythonPackages.updated, [{ name: 'numpy', from: '1.24.2', to: '1.26.4' }]);
    assert.deepEqual(d.body.pythonPackages.removed, []);
    const md = await http.get('/api/v1/environments/python-3.11/diff?from=20261128.1&to=latest&format=md').expect(200);
    assert.match(md.text, /### Updated \(1\)/);
    const noFrom = await http.get('/api/v1/environments/python-3.11/diff?to=20261201.1').expect(400);
    assert.match(JSON.stringify(noFrom.body.message), /from is required/);
    const badVersion = await http.get('/api/v1/environments/python-3.11/diff?from=x&to=y').expect(400);
    assert.match(JSON.stringify(badVersion.body.message), /from must be a version YYYYMMDD\.N or latest/);
  });

  test('health: 200 with engine, Redis and database reachable', async () => {
    engine.up = true;
    const res = await http.get('/api/v1/health').expect(200);
    assert.equal(res.body.status, 'ok');
    assert.equal(res.body.checks.redis.ok, true);
    assert.equal(res.body.checks.database.detail, 'sqlite');
    assert.match(res.body.checks.engine.detail, /API 1\.41/);
  });

  test('health: 503 naming runsc when Kiln is configured for it and the engine lacks it', async () => {
    const runscApp = await createTestApp(testConfig({ KILN_RUNSC_ENVIRONMENTS: 'python-3.13' }), { engine });
    try {
      const res = await request(runscApp.getHttpServer()).get('/api/v1/health').expect(503);
      assert.equal(res.body.checks.engine.ok, false);
      assert.match(res.body.checks.engine.detail, /configured for the runtime runsc .* the engine has only runc; register gVisor's runsc/);
    } finally {
      await runscApp.close();
    }
  });

  test('health: 503 naming the engine when it is unreachable', async () => {
    engine.up = false;
    const res = await http.get('/api/v1/health').expect(503);
    assert.equal(res.body.status, 'degraded');
    assert.equal(res.body.checks.engine.ok, false);
    assert.match(res.body.checks.engine.detail, /Docker engine unreachable/);
    assert.equal(res.body.checks.redis.ok, true);
    assert.equal(res.body.checks.database.ok, true);
    engine.up = true;
  });

  test('OpenAPI docs are served at /api/docs', async () => {
    const html = await http.get('/api/docs').expect(200);
    assert.match(html.text, /swagger/i);
    const spec = await http.get('/api/docs-json').expect(200);
    assert.ok(spec.body.paths['/api/v1/environments/{name}/diff'], 'the diff route is documented');
    assert.ok(spec.body.paths['/api/v1/health']);
  });

  test('unknown routes and malformed JSON are 4xx, not 500', async () => {
    const res = await http.get('/api/v1/nope').expect(404);
    assert.equal(res.body.statusCode, 404);
    await http
      .post('/api/v1/environments')
      .set('content-type', 'application/json')
      .send('{bad')
      .expect((r) => assert.ok(r.status >= 400 && r.status < 500, `got ${r.status}`));
  });
});
