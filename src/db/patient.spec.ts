import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import { patient, patiently } from './patient';

const quiet = new Logger('test');
quiet.warn = () => undefined;
quiet.log = () => undefined;
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

test('patiently: an outage is waited out; the call then succeeds', async () => {
  let calls = 0;
  const value = await patiently(
    quiet,
    'write',
    async () => {
      if (++calls < 3) throw refused();
      return 'ok';
    },
    10_000,
  );
  assert.equal(value, 'ok');
  assert.equal(calls, 3);
});

test('patiently: any other error is thrown at once, and an outage longer than the patience is thrown', async () => {
  let calls = 0;
  await assert.rejects(
    patiently(
      quiet,
      'write',
      async () => {
        calls++;
        throw Object.assign(new Error('duplicate key'), { code: '23505' });
      },
      10_000,
    ),
    /duplicate key/,
  );
  assert.equal(calls, 1);
  const started = Date.now();
  await assert.rejects(
    patiently(
      quiet,
      'write',
      async () => {
        throw refused();
      },
      1200,
    ),
    /ECONNREFUSED/,
  );
  assert.ok(Date.now() - started < 3000);
});

test('patient: every method of the object is called patiently, with its own this', async () => {
  let fails = 1;
  const repo = {
    n: 41,
    async next(this: { n: number }) {
      if (fails-- > 0) throw refused();
      return ++this.n;
    },
  };
  assert.equal(await patient(repo, quiet, 10_000).next(), 42);
  const sync = { quota: () => 7 };
  assert.equal(patient(sync, quiet).quota(), 7, 'a synchronous method stays synchronous');
});
