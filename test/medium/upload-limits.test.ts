import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { createTestApp, TEST_ADMIN_TOKEN, testConfig } from '../helpers';
import { makeTar } from '../fixtures/archives';

let app: INestApplication;
const config = testConfig({ KILN_UPLOAD_MAX: '64k', KILN_JOB_WORKSPACE: '8m', KILN_JOB_WORKSPACE_MAX: '16m', KILN_QUEUE_PREFIX: `uplim-${process.pid}` });

before(async () => {
  app = await createTestApp(config, { engine: { ping: async () => ({ apiVersion: '1.41', version: 'scripted' }), runtimes: async () => ['runc'] } });
});
after(async () => app?.close());

test('an upload over KILN_UPLOAD_MAX is 413 naming the limit, and no partial upload is left', async () => {
  const big = await makeTar([['blob.bin', 'x'.repeat(512 * 1024)]], false);
  const res = await request(app.getHttpServer()).post('/api/v1/runs').set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`).attach('source', big, 'big.tar');
  assert.equal(res.status, 413);
  assert.match(res.body.message, /the upload is too large: the limit is 65536 bytes \(KILN_UPLOAD_MAX\)/);
  const uploads = path.join(config.dataDir, 'uploads');
  assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'nothing left in uploads/');
});

test('a gzip bomb within the upload limit is refused by the expansion cap (the largest workspace), 4xx naming it', async () => {
  const zeros = await makeTar([{ name: 'zeros.bin', content: Buffer.alloc(40 * 1024 * 1024) }], true);
  assert.ok(zeros.length < 64 * 1024, `the bomb is small (${zeros.length} bytes)`);
  const res = await request(app.getHttpServer()).post('/api/v1/runs').set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`).attach('source', zeros, 'bomb.tar.gz');
  assert.ok([400, 413].includes(res.status), `status ${res.status}`);
  assert.match(res.body.message, /source: .*zeros\.bin|source: .*(large|limit|exceed)/i);
});
