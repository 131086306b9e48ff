import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { API_JSON_LIMITS, checkJsonShape, JsonShapeError, refuseReservedKeys, reservedKeyPath, verifyJsonBody, WEBHOOK_JSON_LIMITS } from './json-limits';

const wide = (n: number) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])));
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

function refused(fn: () => void, status: number, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof JsonShapeError && e.status === status && message.test(e.message));
}

describe('checkJsonShape', () => {
  const limits = { maxItems: 100, maxDepth: 4 };
  it('accepts a body at the limits, as bytes or text', () => {
    checkJsonShape(Buffer.from(wide(100)), limits);
    checkJsonShape(wide(100), limits);
    checkJsonShape(deep(4), limits);
    checkJsonShape('{"a":{"b":[1,2,{"c":0}]}}', limits);
  });
  it('refuses one key more with 413 naming the limit', () => {
    refused(() => checkJsonShape(Buffer.from(wide(101)), limits), 413, /more than 100 keys and array elements/);
  });
  it('counts array elements as items', () => {
    checkJsonShape(JSON.stringify({ a: Array(99).fill(0) }), limits);
    refused(() => checkJsonShape(JSON.stringify({ a: Array(100).fill(0) }), limits), 413, /100 keys and array elements/);
    refused(() => checkJsonShape(JSON.stringify({ a: Array(100).fill('') }), limits), 413, /100/);
    checkJsonShape(JSON.stringify({ a: Array(20).fill({ b: 1, c: 2, d: 3 }) }), limits);
  });
  it('refuses one level more with 400 naming the limit, objects and arrays alike', () => {
    refused(() => checkJsonShape(deep(5), limits), 400, /more than 4 deep/);
    refused(() => checkJsonShape('{"a":{"b":{"c":{"d":{}}}}}', limits), 400, /depth 4/);
  });
  it('does not count colons, brackets or escaped quotes inside strings', () => {
    const s = JSON.stringify({ a: ':::{{{[[[', b: 'x\\":{[', c: '\\', d: '"\'' });
    checkJsonShape(Buffer.from(s), { maxItems: 4, maxDepth: 1 });
    checkJsonShape(JSON.stringify([',,,,', 'a,b']), { maxItems: 3, maxDepth: 1 });
    checkJsonShape(JSON.stringify({ files: { 'a.txt': '{'.repeat(1000) + ':'.repeat(1000) } }), { maxItems: 2, maxDepth: 2 });
  });
  it('multi-byte UTF-8 does not confuse the scan', () => {
    checkJsonShape(Buffer.from(JSON.stringify({ 'é✓😀': '"\u2028{' })), { maxItems: 1, maxDepth: 1 });
  });
  it('is linear: 300 000 keys and 3 000 000 brackets are refused at once', () => {
    const t0 = Date.now();
    refused(() => checkJsonShape(Buffer.from(wide(300_000)), API_JSON_LIMITS), 413, /10000 keys/);
    refused(() => checkJsonShape(Buffer.from(deep(3_000_000)), API_JSON_LIMITS), 400, /32 deep/);
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('verifyJsonBody', () => {
  it('keeps the raw bytes and applies the webhook limits to the webhook route only', () => {
    const body = Buffer.from(wide(20_000));
    const hook = { url: '/api/v1/webhooks/github', originalUrl: '/api/v1/webhooks/github' } as never as { rawBody?: Buffer };
    verifyJsonBody(hook as never, {}, body, 'utf-8');
    assert.equal(hook.rawBody, body);
    assert.ok(WEBHOOK_JSON_LIMITS.maxItems >= 20_000 && API_JSON_LIMITS.maxItems < 20_000);
    refused(() => verifyJsonBody({ url: '/api/v1/tokens', originalUrl: '/api/v1/tokens' } as never, {}, body, 'utf-8'), 413, /10000 keys/);
  });
  it('scans UTF-16 as text and refuses a charset it cannot decode with 415', () => {
    const body = Buffer.from(wide(20_000), 'utf16le');
    refused(() => verifyJsonBody({ url: '/api/v1/tokens' } as never, {}, body, 'utf-16le'), 413, /10000 keys/);
    refused(() => verifyJsonBody({ url: '/api/v1/tokens' } as never, {}, Buffer.from('{}'), 'utf-7'), 415, /UTF-8/);
  });
});

describe('reserved keys', () => {
  it('finds __proto__ and constructor as own keys at any depth, not other prototype names', () => {
    assert.equal(reservedKeyPath(JSON.parse('{"files":{"a":"1","constructor":"2"}}')), 'files.constructor');
    assert.equal(reservedKeyPath(JSON.parse('{"x":[1,{"__proto__":{"admin":true}}]}')), 'x[1].__proto__');
    assert.equal(reservedKeyPath(JSON.parse('{"a":[{"b":{"toString":{}}}]}')), 'a[0].b.toString');
    assert.equal(reservedKeyPath(JSON.parse('{"valueOf":1}')), 'valueOf');
    assert.equal(reservedKeyPath(JSON.parse('{"hasOwnProperty":1,"files":{"then":"x","prototype":"y"}}')), null);
    assert.equal(reservedKeyPath([1, 'constructor', null]), null);
  });
  it('the middleware answers 400 naming the key, and leaves the webhook route alone', () => {
    let got: unknown = 'not called';
    refuseReservedKeys({ url: '/api/v1/runs', body: JSON.parse('{"files":{"constructor":"x"}}') } as never, {}, (e) => {
      got = e;
    });
    assert.ok(got instanceof JsonShapeError && got.status === 400 && /files\.constructor/.test(got.message), String(got));
    refuseReservedKeys({ url: '/api/v1/webhooks/github', body: JSON.parse('{"constructor":1}') } as never, {}, (e) => {
      got = e;
    });
    assert.equal(got, undefined);
  });
});
