import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAccessLine, parseLookups, summarize } from './gateway-log';

test("squid's access lines (the kiln format) become requests: CONNECT's host:port, refusals, bytes and the user agent", () => {
  assert.deepEqual(parseAccessLine('1796670506.275 GET index.test 8080 200 TCP_MISS 439 133 172.18.0.2 "pip/23.0.1 {}"'), {
    time: 1796670506.275,
    method: 'GET',
    host: 'index.test',
    port: 8080,
    status: 200,
    refused: false,
    bytesIn: 439,
    bytesOut: 133,
    userAgent: 'pip/23.0.1 {}',
  });
  const connect = parseAccessLine('1796670506.342 CONNECT Files.Example.org 443 403 TCP_DENIED 3408 39 - "-"');
  assert.deepEqual(
    { ...connect, time: 0 },
    { time: 0, method: 'CONNECT', host: 'files.example.org', port: 443, status: 403, refused: true, bytesIn: 3408, bytesOut: 39, userAgent: '' },
  );
  assert.equal(parseAccessLine('2026/12/07 19:08:12| WARNING: BCP 177 violation.'), null);
  assert.equal(parseAccessLine(''), null);
});

test('dnsmasq query lines: each name once, reverse lookups left out', () => {
  const text =
    'dnsmasq[7]: query[A] pypi.org from 127.0.0.1\ndnsmasq[7]: query[AAAA] pypi.org from 127.0.0.1\ndnsmasq[7]: query[PTR] 4.0.18.172.in-addr.arpa from 127.0.0.1\ndnsmasq[7]: query[A] Files.X.org from 127.0.0.1\n';
  assert.deepEqual(parseLookups(text), ['pypi.org', 'files.x.org']);
});

test('the report: one row per host:port and verdict, requests and bytes summed', () => {
  const lines = [
    '1.0 GET a.test 80 200 TCP_MISS 100 10 1.2.3.4 "pip/23"',
    '2.0 GET a.test 80 404 TCP_MISS 50 10 1.2.3.4 "pip/23"',
    '3.0 CONNECT b.test 443 403 TCP_DENIED 3000 40 - "-"',
  ];
  const report = summarize(
    lines.map((l) => parseAccessLine(l)!),
    { rules: ['a.test:80'], lookups: ['a.test'], totalBytes: 999, maxBytes: 5000, capReached: false },
  );
  assert.deepEqual(report.hosts, [
    { host: 'a.test', port: 80, allowed: true, requests: 2, bytesIn: 150, bytesOut: 20 },
    { host: 'b.test', port: 443, allowed: false, requests: 1, bytesIn: 3000, bytesOut: 40 },
  ]);
  assert.equal(report.totalBytes, 999);
});
