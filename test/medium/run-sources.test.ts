import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule, configureHttp } from '../../src/app';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { KILN_CONFIG, KilnConfig } from '../../src/config/config';
import { DATABASE, Database } from '../../src/db/database';
import { EXECUTION_BACKEND } from '../../src/execution/backend';
import { RunSources } from '../../src/runs/run-sources';
import { RunsRepository } from '../../src/runs/runs.repository';
import { blobKeys } from '../../src/storage/blob-store';
import { makeTar } from '../fixtures/archives';
import { FakeBackend } from '../fixtures/fake-backend';
import { makeReport } from '../fixtures/reports';
import { TEST_ADMIN_TOKEN, testConfig } from '../helpers';

const WORKFLOW = 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n';

/** A run's source lives as long as the run (SQLite, Redis, scripted backend). */
describe("runs: a source's lifetime (SQLite, Redis, scripted backend)", () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let config: KilnConfig;

  before(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRole(testConfig({ KILN_QUEUE_PREFIX: `medium-src-${process.pid}-${Date.now()}` }), 'serve')],
    })
      .overrideProvider(EXECUTION_BACKEND)
      .useValue(new FakeBackend())
      .compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    configureHttp(app);
    await app.init();
    config = app.get<KilnConfig>(KILN_CONFIG);
    http = request.agent(app.getHttpServer()).set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`) as unknown as ReturnType<typeof request>;
    await app.get(CatalogueRepository).upsert(makeReport());
  });
  after(async () => app?.close());

  const sourceFile = (runId: string) => path.join(config.dataDir, blobKeys.source(runId));

  async function finished(id: string) {
    for (let i = 0; i < 200; i++) {
      const r = await http.get(`/api/v1/runs/${id}`);
      if (r.body.status === 'completed') return r.body as { conclusion: string; jobs: { error: string | null }[] };
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`run ${id} did not finish`);
  }

  test('a completed run holds no source; /me counts none', async () => {
    const res = await http.post('/api/v1/runs').attach('source', await makeTar([['.kiln.yml', WORKFLOW]]), 'p.tar.gz');
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal((await finished(res.body.id)).conclusion, 'success');
    assert.equal(fs.existsSync(sourceFile(res.body.id)), false);
    assert.equal((await http.get('/api/v1/me')).body.storage.sourceBytes, 0);
  });

  test('the sweep removes the sources of runs that concluded before sizes were recorded (an upgrade)', async () => {
    const res = await http.post('/api/v1/runs').attach('source', await makeTar([['.kiln.yml', WORKFLOW]]), 'p.tar.gz');
    await finished(res.body.id);
    // As a previous release left it: the source still there, its size unknown.
    fs.mkdirSync(path.dirname(sourceFile(res.body.id)), { recursive: true });
    fs.writeFileSync(sourceFile(res.body.id), Buffer.alloc(4096));
    await app.get<Database>(DATABASE).run('UPDATE runs SET source_bytes = NULL WHERE id = ?', [res.body.id]);
    assert.ok((await app.get(RunSources).sweep()) >= 1);
    assert.equal(fs.existsSync(sourceFile(res.body.id)), false);
    assert.ok(!(await app.get(RunsRepository).concludedWithSource(1000)).includes(res.body.id));
  });

  test('a run whose source cannot be stored answers 503, is recorded as failed and holds no storage', async () => {
    const sources = app.get(RunSources);
    const keep = sources.keep.bind(sources);
    sources.keep = async () => {
      throw new Error('ENOSPC: no space left on device');
    };
    let res;
    try {
      res = await http.post('/api/v1/runs').attach('source', await makeTar([['.kiln.yml', WORKFLOW]]), 'p.tar.gz');
    } finally {
      sources.keep = keep;
    }
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.doesNotMatch(res.body.message, /ENOSPC/, "the store's own error stays in the log");
    assert.match(res.body.message, /the source could not be stored \(the server's log says why\); run (\w+) is recorded as failed/);
    const runId = /run (\w+) is recorded/.exec(res.body.message)![1];
    const run = await finished(runId);
    assert.equal(run.conclusion, 'failure');
    assert.match(run.jobs[0].error ?? '', /the run's source could not be stored/);
    assert.equal((await http.get('/api/v1/me')).body.storage.sourceBytes, 0);
  });
});
