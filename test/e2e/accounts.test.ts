import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTar } from '../fixtures/archives';
import { ROOT, runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client, followLines } from './runs-helpers';

describe('accounts, ownership, quotas and secrets (real engine)', () => {
  const data = tmpDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  let admin: Client;
  let alice: Client;
  let bob: Client;

  async function makeUser(name: string, quota: Record<string, number> = {}): Promise<Client> {
    const u = await admin.fetch('/api/v1/users', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, quota }) });
    assert.equal(u.status, 201, await u.clone().text());
    const { id } = (await u.json()) as { id: string };
    const t = await admin.fetch(`/api/v1/users/${id}/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'e2e' }),
    });
    assert.equal(t.status, 201);
    const { token } = (await t.json()) as { token: string };
    assert.match(token, /^kiln_[A-Za-z0-9_-]{43}$/);
    return new Client(server.url, token);
  }

  before(async () => {
    const images = await runKiln(['images', 'python-3.11'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({ KILN_DATA_DIR: data, KILN_QUEUE_PREFIX: `acct-${process.pid}`, KILN_WORKER_CONCURRENCY: '3', KILN_LOG_LEVEL: 'warn' });
    admin = new Client(server.url, TEST_ADMIN_TOKEN);
    alice = await makeUser('alice', { submissionsPerMinute: 30, queuedRuns: 8, concurrentJobs: 1 });
    bob = await makeUser('bob');
  });
  after(async () => server?.stop());

  test('without a valid token every endpoint but health and the catalogue answers 401 with no data', async () => {
    const routes: [string, string][] = [
      ['GET', '/api/v1/runs'],
      ['POST', '/api/v1/runs'],
      ['GET', '/api/v1/runs/abc'],
      ['GET', '/api/v1/runs/abc/logs'],
      ['GET', '/api/v1/runs/abc/logs?follow=1'],
      ['GET', '/api/v1/runs/abc/artifacts'],
      ['GET', '/api/v1/runs/abc/artifacts/x'],
      ['POST', '/api/v1/runs/abc/cancel'],
      ['GET', '/api/v1/me'],
      ['GET', '/api/v1/users'],
      ['POST', '/api/v1/users'],
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/tokens'],
      ['DELETE', '/api/v1/tokens/abc'],
      ['GET', '/api/v1/secrets'],
      ['PUT', '/api/v1/secrets/X'],
      ['DELETE', '/api/v1/secrets/X'],
      ['POST', '/api/v1/users/abc/tokens'],
    ];
    for (const [method, route] of routes) {
      for (const headers of [{}, { authorization: 'Bearer kiln_not_a_real_token' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }]) {
        const res = await fetch(`${server.url}${route}`, { method, headers: headers as Record<string, string> });
        assert.equal(res.status, 401, `${method} ${route} with ${JSON.stringify(headers)}`);
        const body = (await res.json()) as Record<string, unknown>;
        assert.deepEqual(Object.keys(body).sort(), ['error', 'message', 'statusCode'], `${method} ${route}: no data`);
      }
    }
    assert.equal((await fetch(`${server.url}/api/v1/health`)).status, 200);
    assert.equal((await fetch(`${server.url}/api/v1/environments`)).status, 200);
    assert.ok(fs.existsSync(path.join(data, 'secret-key')));
    assert.equal(fs.statSync(path.join(data, 'secret-key')).mode & 0o777, 0o600);
  });

  test("user B gets 404 on user A's run, logs, artifacts and cancel, exactly as for a missing run", async () => {
    const workflow =
      'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: mkdir out && echo private > out/p.txt\n      - uses: actions/upload-artifact@v4\n        with: { name: mine, path: out/ }\n';
    const run = await alice.accepted(alice.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const done = await alice.waitFor(run.id);
    assert.equal(done.conclusion, 'success');
    assert.equal((await alice.fetch(`/api/v1/runs/${run.id}/artifacts/mine`)).status, 200);
    const missing = 'AAAAAAAAAAAAAAAA';
    const paths = (id: string): [string, string][] => [
      ['GET', `/api/v1/runs/${id}`],
      ['GET', `/api/v1/runs/${id}/logs`],
      ['GET', `/api/v1/runs/${id}/logs?follow=1`],
      ['GET', `/api/v1/runs/${id}/artifacts`],
      ['GET', `/api/v1/runs/${id}/artifacts/mine`],
      ['POST', `/api/v1/runs/${id}/cancel`],
    ];
    const theirs = paths(run.id);
    const none = paths(missing);
    for (let i = 0; i < theirs.length; i++) {
      const a = await bob.fetch(theirs[i][1], { method: theirs[i][0] });
      const b = await bob.fetch(none[i][1], { method: none[i][0] });
      assert.equal(a.status, 404, `${theirs[i][0]} ${theirs[i][1]}`);
      assert.equal(b.status, 404);
      assert.equal((await a.text()).replace(run.id, 'ID'), (await b.text()).replace(missing, 'ID'), 'same answer as a missing run');
    }
    const bobsRuns = (await (await bob.fetch('/api/v1/runs')).json()) as { id: string }[];
    assert.ok(!bobsRuns.some((r) => r.id === run.id), "alice's run is not in bob's list");
    assert.equal((await admin.fetch(`/api/v1/runs/${run.id}`)).status, 200, 'an admin sees every run');
  });

  test('a revoked token is refused at once', async () => {
    const issued = await bob.fetch('/api/v1/tokens', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'short-lived' }),
    });
    const { token, id } = (await issued.json()) as { token: string; id: string };
    const temp = new Client(server.url, token);
    assert.equal((await temp.fetch('/api/v1/me')).status, 200);
    const listed = (await (await bob.fetch('/api/v1/tokens')).json()) as Record<string, unknown>[];
    assert.ok(
      listed.every((t) => !('token' in t) && !('hash' in t)),
      'tokens are never shown again',
    );
    assert.equal((await alice.fetch(`/api/v1/tokens/${id}`, { method: 'DELETE' })).status, 404, "alice cannot revoke bob's token");
    assert.equal((await bob.fetch(`/api/v1/tokens/${id}`, { method: 'DELETE' })).status, 204);
    const after = await temp.fetch('/api/v1/me');
    assert.equal(after.status, 401);
    assert.match(((await after.json()) as { message: string }).message, /unknown, revoked or expired/);
    assert.equal((await bob.fetch('/api/v1/me')).status, 200, "bob's other token still works");
    assert.equal((await bob.fetch('/api/v1/users')).status, 403, 'admin endpoints are for admins');
  });

  test("quotas hold under a burst of 100 submissions while another user's run still starts", async () => {
    const burst = await Promise.all(Array.from({ length: 100 }, () => alice.submitJson({ command: 'sleep 2' })));
    const accepted = burst.filter((r) => r.status === 201);
    const refused = burst.filter((r) => r.status === 429);
    assert.equal(accepted.length + refused.length, 100, `only 201 or 429: ${burst.map((r) => r.status).join(',')}`);
    assert.ok(accepted.length >= 1 && accepted.length <= 8, `at most 8 runs waiting or running (got ${accepted.length})`);
    for (const r of refused) {
      assert.ok(Number(r.headers.get('retry-after')) > 0, 'Retry-After is set');
      assert.match(((await r.json()) as { message: string }).message, /^quota: at most (30 submissions per minute|8 runs queued or running)/);
    }
    const ids = await Promise.all(accepted.map(async (r) => ((await r.json()) as { id: string }).id));
    const bobs = await bob.accepted(bob.submitJson({ command: 'echo bob-was-here' }));
    const bobDone = await bob.waitFor(bobs.id, 60_000);
    assert.equal(bobDone.conclusion, 'success');
    const states = await Promise.all(ids.map((id) => alice.run(id)));
    assert.ok(
      states.some((s) => s.status !== 'completed'),
      "bob's run finished while alice's burst was still waiting",
    );
    // Alice never has more than one job running at once.
    let maxRunning = 0;
    for (let i = 0; i < 10; i++) {
      const runs = await Promise.all(ids.map((id) => alice.run(id)));
      maxRunning = Math.max(maxRunning, runs.filter((r) => r.jobs[0].status === 'in_progress' || r.jobs[0].status === 'queued').length);
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(maxRunning <= 1, `concurrent jobs quota held (${maxRunning})`);
    await Promise.all(ids.map((id) => alice.fetch(`/api/v1/runs/${id}/cancel`, { method: 'POST' })));
  });

  test('admins republish environments from the manifests; others get 403', async () => {
    const denied = await bob.fetch('/api/v1/environments/publish', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ names: ['python-3.11'] }),
    });
    assert.equal(denied.status, 403);
    assert.equal(
      (await fetch(`${server.url}/api/v1/environments/publish`, { method: 'POST' })).status,
      401,
      'publish is not public like the rest of the catalogue',
    );
    const started = await admin.fetch('/api/v1/environments/publish', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ names: ['python-3.11'] }),
    });
    assert.equal(started.status, 202);
    let state: { state: string; outcomes: { name: string; action: string }[]; error: string | null } = { state: 'running', outcomes: [], error: null };
    for (let i = 0; i < 200 && state.state === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      state = (await (await admin.fetch('/api/v1/environments/publish')).json()) as typeof state;
    }
    assert.equal(state.state, 'done', JSON.stringify(state));
    // every version of python-3.11 the manifests hold, each already built and measured
    const versions = fs.readdirSync(path.join(ROOT, 'environments', 'python-3.11')).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(
      state.outcomes.map((o) => [o.name, o.action]),
      versions.map(() => ['python-3.11', 'cached']),
    );
  });

  test('a secret printed by a step never appears in stored or streamed logs, nor in any API answer', async () => {
    const value = 'sw0rdf1sh-' + Date.now().toString(36) + '-topsecret';
    const put = await bob.fetch('/api/v1/secrets/DEPLOY_KEY', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
    });
    assert.equal(put.status, 204);
    const names = await (await bob.fetch('/api/v1/secrets')).text();
    assert.ok(!names.includes(value));
    assert.match(names, /DEPLOY_KEY/);
    const workflow =
      [
        'jobs:',
        '  leak:',
        '    runs-on: python-3.11',
        '    env:',
        '      KEY: ${{ secrets.DEPLOY_KEY }}',
        '    steps:',
        '      - run: |',
        '          echo "direct: ${{ secrets.DEPLOY_KEY }}"',
        '          echo "env: $KEY"',
        '          printf %s "$KEY" | base64',
        '          printf %s "xx$KEY" | base64',
        '          echo "$KEY" >&2',
        '          sleep 1',
      ].join('\n') + '\n';
    const run = await bob.accepted(bob.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const streamed = followLines(bob, `/api/v1/runs/${run.id}/logs?follow=1`);
    const done = await bob.waitFor(run.id);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    const live = (await streamed.all).join('\n');
    const stored = await bob.logs(run.id);
    const files = fs
      .readdirSync(path.join(data, 'logs', run.id))
      .map((f) => fs.readFileSync(path.join(data, 'logs', run.id, f), 'utf8'))
      .join('');
    const b64 = Buffer.from(value).toString('base64');
    for (const [where, text] of [
      ['streamed', live],
      ['stored (API)', stored],
      ['stored (file)', files],
    ] as const) {
      assert.ok(!text.includes(value), `${where}: the value`);
      assert.ok(!text.includes(b64.slice(4, -4)), `${where}: its base64`);
      assert.match(text, /direct: \*\*\*/, `${where}: masked, not dropped`);
      assert.match(text, /env: \*\*\*/);
    }
    const view = await (await bob.fetch(`/api/v1/runs/${run.id}`)).text();
    assert.ok(!view.includes(value), 'the run view does not carry it');
  });
});
