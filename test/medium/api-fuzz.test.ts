/**
 * Property-based fuzzing of the HTTP API (fast-check): random and hostile JSON to every operation of
 * the server's own OpenAPI document (and multipart text fields, named as multer nests them), path
 * parameters filled with random strings. Whatever is sent,
 * the answer is never a 5xx and comes within a few seconds.
 *
 * Real SQLite and Redis, the API role (no worker: an accepted run waits in the queue), a scripted
 * engine (nothing reaches Docker) and a published catalogue, so some submissions are accepted. The
 * requests carry an ordinary user's token (admin operations validate, then refuse with 403; nothing
 * starts an image build), no token, or a bad one. No generated value is a URL, so nothing is cloned.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import fc from 'fast-check';
import { CatalogueRepository } from '../../src/catalogue/catalogue.repository';
import { makeReport } from '../fixtures/reports';
import { createTestApp, TEST_ADMIN_TOKEN, testConfig } from '../helpers';

const engine = {
  async ping() {
    return { apiVersion: '1.41', version: 'scripted' };
  },
  async runtimes() {
    return ['runc'];
  },
};

/** Total time for the property, and runs at most. */
const TIME_LIMIT_MS = Number(process.env.KILN_FUZZ_MS ?? 75_000);
const MAX_RUNS = 15_000;
/** An answer slower than this is a hang. */
const ANSWER_MS = 5000;

interface Operation {
  method: string;
  path: string;
  params: string[];
}

/** Keys the DTOs know, and keys that are Object.prototype's. */
const KNOWN_KEYS = [
  'command',
  'files',
  'platform',
  'environment',
  'workflow',
  'workflowFile',
  'repo',
  'ref',
  'job',
  'shell',
  'timeoutMinutes',
  'name',
  'admin',
  'quota',
  'concurrentJobs',
  'queuedRuns',
  'submissionsPerMinute',
  'artifactBytes',
  'expiresInDays',
  'value',
  'names',
  'fullName',
  'cloneUrl',
  'secret',
  'owner',
  'branches',
  'labelMap',
  'statusUrl',
  'statusToken',
  'repository',
  'after',
  'commits',
];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__', 'then'];

/** Numbers as JSON text, at the edges of what parsers and validators handle. */
const EXTREME_NUMBERS = [
  '0',
  '-0',
  '1e308',
  '-1e308',
  '1e400',
  '-1e400',
  '1e-400',
  '5e-324',
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
  '0.1',
  '-1',
  '2147483648',
  '4294967296',
  '1.5',
  '10080',
  '10081',
  '3650',
  '3651',
];

/** Strings that mean something to one of the validators or the planner. */
const HOSTILE_STRINGS = [
  '',
  ' ',
  'constructor',
  '__proto__',
  'toString',
  'python-3.11',
  'python-3.11@latest',
  'python-3.11@20261128.1',
  'bash',
  'sh',
  'python',
  '.kiln.yml',
  '.github/workflows/ci.yml',
  'a=b',
  'ubuntu-latest=python-3.11',
  'x'.repeat(300),
  '\u0000',
  '\u001b]52;c;cHduZWQ=\u0007',
  '\r\n',
  '\ud800',
  '\u202e',
  '../../etc/passwd',
  '-u',
  '--upload-pack=x',
  'owner/name',
  'jobs:\n  a:\n    runs-on: constructor\n    steps:\n      - run: echo\n',
  'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n',
  'jobs:\n  a:\n    runs-on: ${{ matrix.x }}\n    strategy:\n      matrix:\n        x: [__proto__, toString]\n    steps:\n      - uses: constructor@v1\n',
  'a: &a [*a]',
  '{{{{',
  '${{ secrets }}',
  '${{ toJSON(github) }}',
];

const jsonString = (s: string) => JSON.stringify(s);
/** Percent-encodes every byte of the UTF-8 form but letters and digits (a lone surrogate becomes U+FFFD's bytes). */
const pct = (s: string) =>
  [...Buffer.from(s)]
    .map((b) => (/[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`))
    .join('');

/** Any JSON value as text: random, hostile, wide, deep or long (all within the 6 MiB body cap). */
function jsonText(depth: number): fc.Arbitrary<string> {
  const scalar = fc.oneof(
    fc.constantFrom(...EXTREME_NUMBERS),
    fc.constantFrom('true', 'false', 'null'),
    fc.constantFrom(...HOSTILE_STRINGS).map(jsonString),
    fc.string({ unit: 'binary', maxLength: 40 }).map(jsonString),
    fc.string({ unit: 'grapheme', maxLength: 40 }).map(jsonString),
    fc.double().map((d) => (Number.isFinite(d) ? JSON.stringify(d) : '0')),
    fc.integer().map(String),
  );
  if (depth <= 0) return scalar;
  const key = fc.oneof(fc.constantFrom(...KNOWN_KEYS), fc.constantFrom(...PROTO_KEYS), fc.string({ unit: 'binary', maxLength: 12 }));
  const value = jsonText(depth - 1);
  return fc.oneof(
    { weight: 4, arbitrary: scalar },
    { weight: 4, arbitrary: fc.array(fc.tuple(key, value), { maxLength: 6 }).map((kv) => `{${kv.map(([k, v]) => `${jsonString(k)}:${v}`).join(',')}}`) },
    { weight: 2, arbitrary: fc.array(value, { maxLength: 6 }).map((vs) => `[${vs.join(',')}]`) },
  );
}

const anyString = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ unit: 'grapheme', maxLength: 20 }));

/** Big shapes: wide objects, long arrays, deep nesting, long strings; some over the shape limits. */
const bigText: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(fc.constantFrom('files', 'platform', 'labelMap', 'quota', 'x'), fc.integer({ min: 1, max: 20_000 }))
    .map(([k, n]) => `{${jsonString(k)}:{${Array.from({ length: n }, (_, i) => `"f${i}":"v"`).join(',')}}}`),
  fc
    .tuple(fc.constantFrom('branches', 'names', 'commits', 'x'), fc.integer({ min: 1, max: 50_000 }))
    .map(([k, n]) => `{${jsonString(k)}:[${Array(n).fill('"b"').join(',')}]}`),
  fc
    .tuple(fc.constantFrom('files', 'platform', 'quota', 'command'), fc.integer({ min: 1, max: 5000 }), fc.constantFrom('{"a":', '['))
    .map(([k, n, open]) => `{${jsonString(k)}:${open.repeat(n)}1${(open === '[' ? ']' : '}').repeat(n)}}`),
  fc
    .tuple(fc.constantFrom('command', 'workflow', 'value', 'name', 'secret'), fc.integer({ min: 0, max: 5 * 1024 * 1024 }))
    .map(([k, n]) => `{${jsonString(k)}:${jsonString('y'.repeat(n))}}`),
);

/** Not JSON, or JSON of the wrong kind. */
const oddText = fc.oneof(
  fc.constantFrom(
    '',
    'null',
    '[]',
    '"x"',
    '1',
    '{',
    '{"a":1,}',
    '{"a":1}{"b":2}',
    '\ufeff{}',
    '{"__proto__":{"admin":true}}',
    '{"constructor":{"prototype":{"x":1}}}',
  ),
  fc.string({ unit: 'binary', maxLength: 200 }),
);

/** Bodies close to valid ones (a quick-form run, a token, a secret, a user, a repository), to reach past the validators. */
const nearValid = fc
  .record(
    {
      command: fc.oneof(fc.constant('echo hi'), anyString),
      environment: fc.oneof(fc.constantFrom('python-3.11', 'python-3.11@latest', 'ubuntu-latest', 'constructor', 'toString'), anyString),
      files: fc.dictionary(fc.oneof(anyString, fc.constantFrom('a.txt', 'dir/b.py', '../x', '/abs')), anyString, { maxKeys: 5 }),
      shell: fc.constantFrom('bash', 'sh', 'python', 'zsh'),
      timeoutMinutes: fc.oneof(fc.integer({ min: -2, max: 20000 }), anyString),
      platform: fc.dictionary(anyString, fc.constantFrom('python-3.11', 'constructor', '__proto__', ''), { maxKeys: 3 }),
      job: anyString,
      workflow: anyString,
      workflowFile: anyString,
      ref: anyString,
      name: anyString,
      expiresInDays: fc.integer({ min: -1, max: 4000 }),
      value: anyString,
      admin: fc.boolean(),
      quota: fc.record({ concurrentJobs: fc.integer({ min: -1, max: 2000 }), artifactBytes: fc.double() }, { requiredKeys: [] }),
      fullName: fc.oneof(fc.constant('owner/name'), anyString),
      cloneUrl: anyString,
      secret: fc.constantFrom('0123456789abcdef0123', 'short'),
      branches: fc.array(anyString, { maxLength: 3 }),
      labelMap: fc.dictionary(anyString, anyString, { maxKeys: 3 }),
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

const body = fc.oneof(
  { weight: 6, arbitrary: jsonText(4) },
  { weight: 4, arbitrary: nearValid },
  { weight: 2, arbitrary: bigText },
  { weight: 1, arbitrary: oddText },
);
const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constant('multipart/form-data') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-16le',
      'application/json; charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/merge-patch+json',
    ),
  },
);
/** Multipart text fields: names multer nests (`platform[constructor]`), values of any kind; sometimes a tiny source file. */
const fieldName = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.constantFrom('command', 'platform', 'job', 'environment', 'shell', 'timeoutMinutes', 'workflow', 'workflowFile', 'ref', 'repository'),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom('platform', 'timeoutMinutes', 'command', '__proto__', 'constructor'), fc.constantFrom(...PROTO_KEYS, 'a', '0', ''))
      .map(([a, b]) => `${a}[${b}]`),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 30 }) },
);
const multipart = fc.tuple(fc.array(fc.tuple(fieldName, fc.oneof(anyString, fc.constant('5'))), { maxLength: 6 }), fc.boolean());

const param = fc.oneof(
  fc.constantFrom(...HOSTILE_STRINGS, 'latest', '20261128.1', 'x1'),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.tuple(fc.constantFrom('limit', 'format', 'follow', 'job', 'step', 'download', 'from', 'to', 'package', '__proto__', 'constructor'), param), {
      maxLength: 3,
    })
    .map((kv) => `?${kv.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&')}`),
);

describe('API fuzz (fast-check, every OpenAPI operation)', () => {
  let app: INestApplication;
  let url: string;
  let token: string;
  let operations: Operation[];

  before(async () => {
    app = await createTestApp(testConfig({ KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000', KILN_QUOTA_QUEUED_RUNS: '100000' }), { engine, role: 'api' });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    await app.get(CatalogueRepository).upsert(makeReport());
    const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const u = await fetch(`${url}/api/v1/users`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'fuzzer' }) });
    assert.equal(u.status, 201);
    const t = await fetch(`${url}/api/v1/users/${((await u.json()) as { id: string }).id}/tokens`, { method: 'POST', headers: admin, body: '{}' });
    token = ((await t.json()) as { token: string }).token;
    const doc = (await (await fetch(`${url}/api/docs-json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    operations = Object.entries(doc.paths).flatMap(([p, methods]) =>
      Object.keys(methods)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => ({ method: m.toUpperCase(), path: p, params: [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]) })),
    );
  });
  after(async () => {
    if (process.env.KILN_FUZZ_TRACE) process.stderr.write('closing\n');
    await app?.close();
    if (process.env.KILN_FUZZ_TRACE) process.stderr.write('closed\n');
  });

  test('no 5xx and no hang, whatever JSON is sent to whichever operation', async (t) => {
    assert.ok(operations.length >= 20, `${operations.length} operations in the document`);
    assert.ok(operations.some((o) => o.path === '/api/v1/webhooks/github'));
    let runs = 0;
    const statuses = new Map<number, number>();
    // Follow-mode log streams would wait for a job that never runs: they are asked for, and left after their headers.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...operations, ...operations.filter((o) => o.path === '/api/v1/runs' && o.method === 'POST').flatMap((o) => [o, o, o])),
        fc.array(param, { minLength: 3, maxLength: 3 }),
        query,
        body,
        contentType,
        fc.constantFrom('user', 'user', 'user', 'none', 'bad'),
        multipart,
        async (op, params, q, text, type, who, [fields, withSource]) => {
          fc.pre(!text.includes('://') && !text.includes(':\\/\\/')); // nothing that could be cloned or contacted
          runs++;
          let i = 0;
          const path = op.path.replace(/\{[^}]+\}/g, () => pct(params[i++] ?? 'x'));
          // The submission takes multipart too: half of its requests are forms.
          if (op.method === 'POST' && op.path === '/api/v1/runs' && fields.length % 2 === 1) type = 'multipart/form-data';
          const headers: Record<string, string> = type === 'multipart/form-data' ? {} : { 'content-type': type };
          if (who === 'user') headers.authorization = `Bearer ${token}`;
          if (who === 'bad') headers.authorization = `Bearer kiln_${'0'.repeat(40)}`;
          const hasBody = op.method !== 'GET';
          const encoded = type.includes('utf-16le') ? Buffer.from(text, 'utf16le') : Buffer.from(text);
          let form: FormData | undefined;
          if (type === 'multipart/form-data') {
            form = new FormData();
            for (const [k, v] of fields) form.append(k, v);
            if (withSource) form.append('source', new Blob([Buffer.alloc(1024)]), 'project.tar');
          }
          if (process.env.KILN_FUZZ_TRACE) process.stderr.write(`${op.method} ${path}${q} ${who} ${type} ${encoded.length}\n`);
          const t0 = Date.now();
          const abort = new AbortController();
          const timer = setTimeout(() => abort.abort(), ANSWER_MS * 2);
          try {
            const res = await fetch(`${url}${path}${q}`, { method: op.method, headers, body: hasBody ? (form ?? encoded) : undefined, signal: abort.signal });
            const ms = Date.now() - t0;
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            const what = `${op.method} ${path}${q} (${who}, ${type}, ${encoded.length} bytes: ${text.slice(0, 200)})`;
            if (res.headers.get('content-type')?.startsWith('text/event-stream')) abort.abort();
            else {
              const answer = await res.text();
              assert.ok(res.status < 500, `${what} answered ${res.status}: ${answer.slice(0, 300)}`);
            }
            assert.ok(res.status < 500, `${what} answered ${res.status}`);
            assert.ok(ms < ANSWER_MS, `${what} took ${ms} ms`);
          } catch (e) {
            if ((e as Error).name === 'AbortError' && Date.now() - t0 >= ANSWER_MS * 2)
              assert.fail(`${op.method} ${path}${q}: no answer in ${ANSWER_MS * 2} ms`);
            if ((e as Error).name !== 'AbortError') throw e;
          } finally {
            clearTimeout(timer);
          }
        },
      ),
      { numRuns: MAX_RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, endOnFailure: true, includeErrorInReport: true },
    );
    if (process.env.KILN_FUZZ_TRACE) process.stderr.write(`property done: ${runs}\n`);
    t.diagnostic(
      `${runs} requests to ${operations.length} operations; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    assert.ok(runs >= 200, `only ${runs} requests were sent`);
  });
});
