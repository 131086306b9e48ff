import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY, securityHeaders } from './security-headers';

function headersFor(url: string): Record<string, string> {
  const set: Record<string, string> = {};
  let called = false;
  securityHeaders(
    { url } as never,
    {
      setHeader: (k: string, v: string) => {
        set[k.toLowerCase()] = v;
      },
    } as never,
    () => {
      called = true;
    },
  );
  assert.ok(called);
  return set;
}

describe('securityHeaders', () => {
  it('sets a strict policy and the framing, sniffing and referrer headers on pages and API answers', () => {
    for (const url of ['/', '/app.js', '/api/v1/runs/x/logs?x=1', '/nope']) {
      const h = headersFor(url);
      assert.equal(h['content-security-policy'], CONTENT_SECURITY_POLICY);
      assert.equal(h['x-frame-options'], 'DENY');
      assert.equal(h['x-content-type-options'], 'nosniff');
      assert.equal(h['referrer-policy'], 'no-referrer');
    }
    for (const d of ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'", "style-src 'self'"])
      assert.ok(CONTENT_SECURITY_POLICY.includes(d), d);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe/);
  });
  it('the OpenAPI page may use inline styles and data: images, never inline scripts', () => {
    const h = headersFor('/api/docs');
    assert.equal(h['content-security-policy'], DOCS_CONTENT_SECURITY_POLICY);
    assert.match(DOCS_CONTENT_SECURITY_POLICY, /style-src 'self' 'unsafe-inline'/);
    assert.match(DOCS_CONTENT_SECURITY_POLICY, /script-src 'self';/);
    assert.equal(headersFor('/api/docs-json')['content-security-policy'], CONTENT_SECURITY_POLICY);
  });
});
