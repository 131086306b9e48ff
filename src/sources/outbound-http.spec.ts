import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_OUTBOUND_POLICY, OutboundError, type OutboundPolicy, pinnedLookup } from './outbound';
import { outboundRequest } from './outbound-http';

interface Seen {
  method: string;
  url: string;
  host: string | undefined;
  body: string;
}

/** A loopback listener that records what reaches it and answers with `answer`. */
async function listener(answer: (res: http.ServerResponse) => void): Promise<{ port: number; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host, body });
      answer(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const open: OutboundPolicy = { allowedSchemes: ['https', 'http'], allowPrivateHosts: true };
const httpButPublicOnly: OutboundPolicy = { allowedSchemes: ['https', 'http'], allowPrivateHosts: false };
const post = { method: 'POST' as const, headers: { 'content-type': 'application/json' }, body: '{"state":"success"}', timeoutMs: 5000 };

let target: Awaited<ReturnType<typeof listener>>;
let second: Awaited<ReturnType<typeof listener>>;
let redirecting: Awaited<ReturnType<typeof listener>>;

before(async () => {
  target = await listener((res) => res.writeHead(201).end('{}'));
  second = await listener((res) => res.writeHead(201).end('{}'));
  redirecting = await listener((res) => res.writeHead(302, { location: `http://127.0.0.1:${second.port}/stolen` }).end());
});
after(async () => {
  await Promise.all([target.close(), second.close(), redirecting.close()]);
});

test('sends the request when the operator allows http and private hosts', async () => {
  const res = await outboundRequest(`http://127.0.0.1:${target.port}/repos/o/r/statuses/abc`, post, open);
  assert.equal(res.status, 201);
  assert.deepEqual(target.seen.at(-1), { method: 'POST', url: '/repos/o/r/statuses/abc', host: `127.0.0.1:${target.port}`, body: '{"state":"success"}' });
});

test('a redirect is returned as it is, never followed', async () => {
  const before = second.seen.length;
  const res = await outboundRequest(`http://127.0.0.1:${redirecting.port}/repos/o/r/statuses/abc`, post, open);
  assert.equal(res.status, 302);
  assert.equal(res.location, `http://127.0.0.1:${second.port}/stolen`);
  assert.equal(second.seen.length, before, 'the redirect target received nothing');
});

test('a private address is refused before any connection (literal, or what a name resolves to at send time)', async () => {
  const before = target.seen.length;
  for (const url of [
    `http://127.0.0.1:${target.port}/x`,
    `http://[::ffff:127.0.0.1]:${target.port}/x`,
    `http://[::127.0.0.1]:${target.port}/x`,
    `http://localhost:${target.port}/x`,
  ]) {
    const e = await outboundRequest(url, post, httpButPublicOnly).catch((x: unknown) => x);
    assert.ok(e instanceof OutboundError && e.permanent, `${url}: ${String(e)}`);
    assert.match(e.message, /private or local address/);
  }
  // DNS rebinding: the name resolved to a public address at registration, to loopback now.
  const rebound = await outboundRequest(`http://status.example:${target.port}/x`, post, httpButPublicOnly, async () => ['127.0.0.1']).catch((x: unknown) => x);
  assert.match(String(rebound), /the host 'status.example' is a private or local address \(127\.0\.0\.1: loopback\)/);
  const mixed = await outboundRequest(`http://status.example:${target.port}/x`, post, httpButPublicOnly, async () => ['140.82.112.3', '127.0.0.1']).catch(
    (x: unknown) => x,
  );
  assert.match(String(mixed), /127\.0\.0\.1: loopback/);
  assert.equal(target.seen.length, before, 'the listener received nothing');
});

test('http is refused unless the operator allows it', async () => {
  const before = target.seen.length;
  await assert.rejects(
    outboundRequest(`http://127.0.0.1:${target.port}/x`, post, DEFAULT_OUTBOUND_POLICY),
    /the URL scheme 'http' is not accepted; allowed schemes: https:\/\//,
  );
  assert.equal(target.seen.length, before);
});

test('the connection goes to the address that was checked, not to a second DNS answer', async () => {
  // outboundRequest pins only addresses that passed the check, and loopback never passes it; so the
  // pin is shown with node:http itself: a name that does not resolve arrives through the pinned address.
  const res = await new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: 'pinned.invalid', port: target.port, path: '/pinned', method: 'GET', lookup: pinnedLookup(['127.0.0.1']), agent: false },
      (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(res, 201);
  assert.deepEqual(target.seen.at(-1)?.url, '/pinned');
  assert.equal(target.seen.at(-1)?.host, `pinned.invalid:${target.port}`, "the Host header (and TLS name) stay the URL's");
});

test('an unreachable port is a transient error', async () => {
  const closed = await listener((res) => res.end());
  const port = closed.port;
  await closed.close();
  const e = await outboundRequest(`http://127.0.0.1:${port}/x`, post, open).catch((x: unknown) => x);
  assert.ok(e instanceof OutboundError && !e.permanent, String(e));
  assert.match(e.message, /could not reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
});

test("a pinned HTTPS connection still verifies the certificate against the URL's host name (SNI too)", async (t) => {
  const { execFileSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const https = await import('node:https');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=forge.test',
      '-addext',
      'subjectAltName=DNS:forge.test',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  let sni: string | undefined;
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert }, (req, res) => res.writeHead(204).end());
  server.on('secureConnection', (s) => {
    sni = (s as unknown as { servername?: string }).servername;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const get = (host: string) =>
    new Promise<number>((resolve, reject) => {
      const req = https.request({ host, port, path: '/', ca: cert, agent: false, lookup: pinnedLookup(['127.0.0.1']) }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  assert.equal(await get('forge.test'), 204);
  assert.equal(sni, 'forge.test', 'SNI carries the name, not the pinned address');
  await assert.rejects(get('other.test'), /Hostname\/IP does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/);
});
