/**
 * Attack suite, review of the HTTP surface: request bodies that cost far more than their size,
 * names that are Object.prototype members, control characters in the text logs, and the security
 * headers of the pages and the API. One `kiln serve` for the file; an ordinary user's token.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../e2e/runs-helpers';
import { makeTar } from '../fixtures/archives';
import { assertServing, AttackServer, HostWatch, refusal, startAttackServer } from './harness';

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Just under the 6 MiB body cap: 300 000 keys of 20 bytes each (`"k000001":"xxxxxxx",`). */
function wideBody(): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < 300_000; i++) parts.push(`"k${String(i).padStart(6, '0')}":"xxxxxxx"`);
  const body = Buffer.from(`{${parts.join(',')}}`);
  assert.ok(body.length > 5.7 * 1024 * 1024 && body.length <= 6 * 1024 * 1024, `${body.length} bytes`);
  return body;
}

/** 100 000 objects nested in one another, under a key a DTO knows (`files`, `platform`). */
function deepBody(key: string): Buffer {
  return Buffer.from(`{"${key}":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`);
}

interface Operation {
  method: string;
  path: string;
}

/** Every operation of the server's OpenAPI document that takes a body (POST, PUT, PATCH, DELETE), path parameters filled. */
async function bodyOperations(url: string): Promise<Operation[]> {
  const res = await fetch(`${url}/api/docs-json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
  const ops: Operation[] = [];
  for (const [p, methods] of Object.entries(doc.paths)) {
    for (const method of Object.keys(methods)) {
      if (['post', 'put', 'patch', 'delete'].includes(method)) ops.push({ method: method.toUpperCase(), path: p.replace(/\{[^}]+\}/g, 'x1') });
    }
  }
  return ops;
}

/**
 * Follows a run's live log (server-sent events) and notes when each chunk holding a `tick-` line arrived.
 */
function followTicks(kiln: Client, runId: string): { times: number[]; stop: () => void; firstTick: Promise<void> } {
  const times: number[] = [];
  const abort = new AbortController();
  let first!: () => void;
  const firstTick = new Promise<void>((r) => {
    first = r;
  });
  void (async () => {
    const res = await kiln.fetch(`/api/v1/runs/${runId}/logs?follow=1`, { signal: abort.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (dec.decode(value, { stream: true }).includes('tick-')) {
        times.push(Date.now());
        first();
      }
    }
  })().catch(() => {
    /* aborted */
  });
  return { times, stop: () => abort.abort(), firstTick };
}

describe('attack review: the HTTP surface', () => {
  let server: AttackServer;
  let watch: HostWatch;
  let user: Client;
  let admin: Client;

  before(async () => {
    server = await startAttackServer();
    watch = await HostWatch.create(server);
    admin = server.kiln;
    const u = await admin.fetch('/api/v1/users', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ name: 'mallory-http' }) });
    assert.equal(u.status, 201, await u.clone().text());
    const t = await admin.fetch(`/api/v1/users/${((await u.json()) as { id: string }).id}/tokens`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ name: 'attack' }),
    });
    assert.equal(t.status, 201);
    user = new Client(server.url, ((await t.json()) as { token: string }).token);
  });

  after(async () => {
    try {
      await watch.assertUnchanged('after the HTTP review cases');
      await assertServing(user, 'after the HTTP review cases');
    } finally {
      watch.cleanup();
      await server.stop();
    }
  });

  test('finding 1: 300 000 keys and 100 000-deep bodies to every JSON endpoint answer 4xx within 1 s; health and a live log keep flowing', async (t) => {
    const ops = await bodyOperations(server.url);
    assert.ok(
      ops.some((o) => o.path === '/api/v1/webhooks/github'),
      `the webhook route is in the document: ${JSON.stringify(ops)}`,
    );
    assert.ok(ops.some((o) => o.path === '/api/v1/tokens') && ops.some((o) => o.path === '/api/v1/runs'), JSON.stringify(ops));

    // A job printing a line every 100 ms, followed live.
    const run = await user.accepted(user.submitJson({ command: 'for i in $(seq 1 900); do echo tick-$i; sleep 0.1; done' }));
    const ticks = followTicks(user, run.id);
    await Promise.race([ticks.firstTick, new Promise((_, reject) => setTimeout(() => reject(new Error('the job printed nothing in 120 s')), 120_000))]);

    // Health polled continuously while the bodies are sent (and a few times before, for the figures).
    const quiet: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await (await fetch(`${server.url}/api/v1/health`)).arrayBuffer();
      quiet.push(Date.now() - t0);
    }
    let polling = true;
    const waits: number[] = [];
    const rawWaits: number[] = [];
    const poller = (async () => {
      while (polling) {
        const t0 = Date.now();
        const h = await fetch(`${server.url}/api/v1/health`, { signal: AbortSignal.timeout(30_000) });
        const { checks } = (await h.json()) as { checks: Record<'engine' | 'redis' | 'database', { ms: number }> };
        const wait = Date.now() - t0;
        rawWaits.push(wait);
        // The Docker engine's own slowness (a busy shared engine answers `info` in 100-300 ms) is not the
        // API's: it is taken out, but only beyond what Redis and the database took in parallel, so a
        // blocked event loop (which delays all three the same) still counts in full.
        waits.push(wait - Math.max(0, checks.engine.ms - Math.max(checks.redis.ms, checks.database.ms)));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const wide = wideBody();
    const bodies: [string, Buffer][] = [
      ['300 000 keys', wide],
      ['100 000 deep in files', deepBody('files')],
      ['100 000 deep in platform', deepBody('platform')],
    ];
    const slow: string[] = [];
    let slowest = 0;
    const sendStart = Date.now();
    try {
      for (const op of ops) {
        for (const [what, body] of bodies) {
          const t0 = Date.now();
          const res = await user.fetch(op.path, { method: op.method, headers: JSON_HEADERS, body, signal: AbortSignal.timeout(15_000) });
          const r = await refusal(res);
          const ms = Date.now() - t0;
          assert.ok(r.status >= 400 && r.status < 500, `${op.method} ${op.path} with ${what}: ${r.status} ${r.message}`);
          slowest = Math.max(slowest, ms);
          if (ms > 1000) slow.push(`${op.method} ${op.path} with ${what}: ${ms} ms (${r.status})`);
          if (op.path === '/api/v1/tokens' || op.path === '/api/v1/webhooks/github') {
            assert.match(
              r.message,
              what.includes('keys') ? /more than \d+ keys and array elements/ : /nests objects or arrays more than \d+ deep/,
              `${op.path}: ${r.message}`,
            );
          }
        }
      }
    } finally {
      polling = false;
      await poller;
    }
    const sendEnd = Date.now();
    assert.deepEqual(slow, [], 'every refusal within 1 s');
    assert.ok(waits.length > 5, `health was polled ${waits.length} times`);
    // The finding froze the loop for over a minute; a body is now checked in one synchronous pass of a few
    // megabytes, which a loaded 2-core machine does in up to ~250 ms. 500 ms proves the loop is not held.
    assert.ok(
      Math.max(...waits) <= 500,
      `health waited up to ${Math.max(...waits)} ms besides the engine's own time (${waits.length} polls: ${waits.join(',')}; with the engine: ${rawWaits.join(',')})`,
    );

    // The live log kept arriving during the sends: no gap over 2 s.
    await new Promise((r) => setTimeout(r, 1500));
    ticks.stop();
    const during = [sendStart, ...ticks.times.filter((t) => t > sendStart && t < sendEnd + 1500), sendEnd];
    const gaps = during.slice(1).map((t, i) => t - during[i]);
    t.diagnostic(
      `${ops.length} operations x ${bodies.length} bodies in ${sendEnd - sendStart} ms; slowest refusal ${slowest} ms; health ${waits.length} polls, longest ${Math.max(...waits)} ms (${Math.max(...rawWaits)} ms with the engine's own time; before the sends ${Math.max(...quiet)} ms); longest live-log gap ${Math.max(...gaps)} ms`,
    );
    assert.ok(Math.max(...gaps) <= 2000, `the live log stalled for ${Math.max(...gaps)} ms during ${sendEnd - sendStart} ms of sends`);
    await user.fetch(`/api/v1/runs/${run.id}/cancel`, { method: 'POST' });
    await user.waitFor(run.id, 120_000);
  });

  test('finding 7: runs-on and environment named constructor, __proto__ or toString are 400 naming the label; the catalogue answers 404', async () => {
    for (const label of ['constructor', '__proto__', 'toString']) {
      const wf = `jobs:\n  a:\n    runs-on: ${label}\n    steps:\n      - run: echo hi\n`;
      const form = new FormData();
      form.append('workflow', new Blob([wf]), 'kiln.yml');
      form.append('source', new Blob([await makeTar([['README', 'hi']], false)]), 'project.tar');
      const up = await refusal(user.fetch('/api/v1/runs', { method: 'POST', body: form }));
      assert.equal(up.status, 400, `runs-on: ${label}: ${up.status} ${up.message}`);
      assert.match(up.message, new RegExp(`runs-on.*'${label}'`), up.message);
      const quick = await refusal(user.submitJson({ command: 'echo hi', environment: label }));
      assert.equal(quick.status, 400, `environment: ${label}: ${quick.status} ${quick.message}`);
      assert.match(quick.message, new RegExp(`'${label}'`), quick.message);
      for (const p of [
        `/api/v1/environments/${label}`,
        `/api/v1/environments/${label}/latest`,
        `/api/v1/environments/python-3.11/${label}`,
        `/api/v1/environments/${label}/diff`,
      ]) {
        const c = await refusal(user.fetch(p));
        assert.ok(c.status === 404 || c.status === 400, `${p}: ${c.status} ${c.message}`);
      }
    }
  });

  test('finding 9: text logs show ESC, OSC 52 and CR as \\xNN; the raw bytes only as an attachment', async () => {
    const run = await user.accepted(
      user.submitJson({ command: String.raw`printf 'a\033[32m\342\226\240 build success\033[0m\rforged\n'; printf '\033]52;c;cHduZWQ=\007tab\there\n'` }),
    );
    const done = await user.waitFor(run.id, 180_000);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    const res = await user.fetch(`/api/v1/runs/${run.id}/logs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(res.headers.get('content-disposition'), null);
    const text = await res.text();
    assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, `a control character passed: ${JSON.stringify(text)}`);
    assert.ok(text.includes(String.raw`a\x1b[32m■ build success\x1b[0m\x0dforged`), JSON.stringify(text));
    assert.ok(text.includes(String.raw`\x1b]52;c;cHduZWQ=\x07tab`) && text.includes('tab\there'), JSON.stringify(text));
    const raw = await user.fetch(`/api/v1/runs/${run.id}/logs?download=1`);
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-disposition') ?? '', /^attachment; filename="[A-Za-z0-9_-]+\.log"$/);
    const bytes = await raw.text();
    assert.ok(bytes.includes('a\x1b[32m■ build success\x1b[0m\rforged') && bytes.includes('\x1b]52;c;cHduZWQ=\x07'), JSON.stringify(bytes));
    const bad = await refusal(user.fetch(`/api/v1/runs/${run.id}/logs?download=yes`));
    assert.equal(bad.status, 400, bad.message);
  });

  test('finding 12: pages and API answers carry CSP, X-Frame-Options, nosniff and Referrer-Policy', async () => {
    for (const p of ['/', '/index.html', '/app.js', '/style.css', '/api/v1/health', '/api/v1/runs', '/api/v1/nope', '/api/docs', '/api/docs-json']) {
      const res = await fetch(`${server.url}${p}`);
      await res.arrayBuffer();
      const csp = res.headers.get('content-security-policy') ?? '';
      for (const d of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"])
        assert.ok(csp.includes(d), `${p} (${res.status}): CSP '${csp}' lacks ${d}`);
      if (p !== '/api/docs') assert.doesNotMatch(csp, /unsafe/, `${p}: ${csp}`);
      assert.doesNotMatch(csp, /script-src[^;]*unsafe/, `${p}: ${csp}`);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', p);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', p);
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer', p);
    }
  });
});
