import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { makeRepo, startGitServer, GitServer } from '../fixtures/git-server';
import { runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client } from './runs-helpers';

const examples = require('@octokit/webhooks-examples') as { name: string; examples: Record<string, unknown>[] }[];

interface Received {
  path: string;
  body: { state: string; context: string; target_url: string; description: string };
  auth: string | undefined;
}

/** A forge's statuses API on 127.0.0.1: records every POST; the first answer is a 500 (to be retried). */
async function statusReceiver(): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  let first = true;
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => {
      if (first) {
        first = false;
        res.writeHead(500).end('try again');
        return;
      }
      received.push({ path: req.url ?? '', body: JSON.parse(data), auth: req.headers.authorization });
      res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, close: () => new Promise((r) => server.close(() => r())) };
}

describe('git push webhooks (real payloads, real git, real engine)', () => {
  const data = tmpDir();
  const gitRoot = tmpDir('kiln-git-');
  const secret = 'a-webhook-secret-of-some-length';
  let server: Awaited<ReturnType<typeof startServer>>;
  let git: GitServer;
  let receiver: Awaited<ReturnType<typeof statusReceiver>>;
  let admin: Client;
  let repoId: string;
  let shas: string[];
  let sign: (secret: string, payload: string) => Promise<string>;

  const workflow =
    [
      'name: ci',
      'on:',
      '  push:',
      '    branches: [main]',
      '    paths-ignore: ["docs/**"]',
      'jobs:',
      '  check:',
      '    runs-on: python-3.11',
      '    steps:',
      '      - run: echo "building $(cat status.txt) at $GITHUB_SHA on $GITHUB_REF"',
      // github.event is the push payload, also as the file at GITHUB_EVENT_PATH.
      '      - run: echo "event after=${{ github.event.after }}"',
      `      - run: python3 -c "import json,os; e=json.load(open(os.environ['GITHUB_EVENT_PATH'])); print('event file', e['after'], e['repository']['full_name'])"`,
      '      - run: test "$(cat status.txt)" = ok',
    ].join('\n') + '\n';

  function payload(sha: string, ref = 'refs/heads/main', modified = ['status.txt']): Record<string, unknown> {
    const base = structuredClone(examples.find((e) => e.name === 'push')!.examples[0]) as Record<string, unknown> & { repository: Record<string, unknown> };
    return {
      ...base,
      ref,
      after: sha,
      before: '0'.repeat(39) + '1',
      deleted: false,
      created: false,
      repository: { ...base.repository, full_name: 'octo/demo', name: 'demo' },
      commits: [{ id: sha, added: [], modified, removed: [] }],
    };
  }

  async function deliver(body: Record<string, unknown>, opts: { event?: string; id?: string; signWith?: string } = {}) {
    const text = JSON.stringify(body);
    return fetch(`${server.url}/api/v1/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': opts.event ?? 'push',
        'x-github-delivery': opts.id ?? crypto.randomUUID(),
        'x-hub-signature-256': await sign(opts.signWith ?? secret, text),
        'user-agent': 'GitHub-Hookshot/test',
      },
      body: text,
    });
  }

  async function deliveries() {
    return (await (await admin.fetch(`/api/v1/repositories/${repoId}/deliveries`)).json()) as {
      id: string;
      state: string;
      detail: string | null;
      runIds: string[];
    }[];
  }

  async function settled(id: string) {
    for (let i = 0; i < 300; i++) {
      const d = (await deliveries()).find((x) => x.id === id);
      if (d && d.state !== 'queued') return d;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`delivery ${id} was not processed`);
  }

  before(async () => {
    sign = ((await import('@octokit/webhooks-methods')) as { sign: typeof sign }).sign;
    const images = await runKiln(['images', 'python-3.11'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    git = await startGitServer(gitRoot);
    ({ shas } = await makeRepo(gitRoot, 'demo', [
      { '.github/workflows/ci.yml': workflow, 'status.txt': 'ok\n' },
      { 'status.txt': 'broken\n' },
      { 'docs/readme.md': 'only docs\n' },
    ]));
    receiver = await statusReceiver();
    server = await startServer({
      KILN_DATA_DIR: data,
      KILN_QUEUE_PREFIX: `hooks-${process.pid}`,
      KILN_LOG_LEVEL: 'warn',
      KILN_GIT_SCHEMES: 'https,http',
      KILN_GIT_ALLOW_PRIVATE: 'true',
      KILN_PUBLIC_URL: 'http://kiln.example',
    });
    admin = new Client(server.url, TEST_ADMIN_TOKEN);
    const reg = await admin.fetch('/api/v1/repositories', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        fullName: 'octo/demo',
        cloneUrl: git.repoUrl('demo'),
        secret,
        statusUrl: receiver.url,
        statusToken: 'forge-token',
        branches: ['main', 'feature/**'],
      }),
    });
    assert.equal(reg.status, 201, await reg.clone().text());
    repoId = ((await reg.json()) as { id: string }).id;
  });
  after(async () => {
    await server?.stop();
    await git?.close();
    await receiver?.close();
  });

  test('a push builds exactly the pushed sha; the forge sees pending then success', async () => {
    const t0 = Date.now();
    const res = await deliver(payload(shas[0]), { id: 'delivery-1' });
    const took = Date.now() - t0;
    assert.equal(res.status, 202, await res.clone().text());
    assert.ok(took < 1000, `answered in ${took} ms`);
    const d = await settled('delivery-1');
    assert.equal(d.runIds.length, 1, JSON.stringify(d));
    const run = await admin.waitFor(d.runIds[0]);
    assert.equal(run.conclusion, 'success', JSON.stringify(run.jobs));
    const log = await admin.logs(run.id);
    assert.match(log, new RegExp(`building ok at ${shas[0]} on refs/heads/main`));
    assert.match(log, new RegExp(`\\| event after=${shas[0]}$`, 'm'));
    assert.match(log, new RegExp(`\\| event file ${shas[0]} octo/demo$`, 'm'));
    for (let i = 0; i < 50 && receiver.received.filter((r) => r.path.endsWith(shas[0])).length < 2; i++) await new Promise((r) => setTimeout(r, 200));
    const statuses = receiver.received.filter((r) => r.path === `/repos/octo/demo/statuses/${shas[0]}`);
    assert.deepEqual(
      statuses.map((s) => s.body.state),
      ['pending', 'success'],
      'the first 500 was retried',
    );
    assert.equal(statuses[0].auth, 'Bearer forge-token');
    assert.equal(statuses[1].body.context, 'kiln/ci');
    assert.equal(statuses[1].body.target_url, `http://kiln.example/api/v1/runs/${run.id}`);
  });

  test('a failing commit reports failure for its sha', async () => {
    const res = await deliver(payload(shas[1]), { id: 'delivery-2' });
    assert.equal(res.status, 202);
    const d = await settled('delivery-2');
    const run = await admin.waitFor(d.runIds[0]);
    assert.equal(run.conclusion, 'failure');
    for (let i = 0; i < 50 && receiver.received.filter((r) => r.path.endsWith(shas[1])).length < 2; i++) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      receiver.received.filter((r) => r.path.endsWith(`/statuses/${shas[1]}`)).map((s) => s.body.state),
      ['pending', 'failure'],
    );
  });

  test('a bad or missing signature is 401 and queues nothing', async () => {
    const before = (await deliveries()).length;
    const bad = await deliver(payload(shas[0]), { id: 'delivery-bad', signWith: 'not-the-secret-at-all' });
    assert.equal(bad.status, 401);
    assert.match(((await bad.json()) as { message: string }).message, /signature/);
    const text = JSON.stringify(payload(shas[0]));
    const none = await fetch(`${server.url}/api/v1/webhooks/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': 'delivery-unsigned' },
      body: text,
    });
    assert.equal(none.status, 401);
    assert.equal((await deliveries()).length, before, 'nothing recorded');
  });

  test('a redelivery answers 2xx and queues nothing new', async () => {
    const again = await deliver(payload(shas[0]), { id: 'delivery-1' });
    assert.equal(again.status, 200);
    const body = (await again.json()) as { duplicate: boolean; runs: string[] };
    assert.equal(body.duplicate, true);
    assert.equal((await deliveries()).filter((d) => d.id === 'delivery-1').length, 1);
    const runs = (await (await admin.fetch('/api/v1/runs?limit=500')).json()) as unknown[];
    assert.equal(runs.length, 2, 'still only the runs of the two real deliveries');
  });

  test('filtered pushes queue nothing: repository branches, workflow branches, paths-ignore, deletions', async () => {
    const other = await deliver(payload(shas[0], 'refs/heads/experiment'), { id: 'delivery-branch' });
    assert.equal(other.status, 202);
    assert.match(((await other.json()) as { reason: string }).reason, /branch experiment is not one the repository builds/);
    const feature = await deliver(payload(shas[0], 'refs/heads/feature/x'), { id: 'delivery-feature' });
    assert.equal(feature.status, 202);
    const f = await settled('delivery-feature');
    assert.deepEqual(f.runIds, [], 'the workflow builds main only');
    assert.match(f.detail ?? '', /no workflow is triggered/);
    const docs = await deliver(payload(shas[2], 'refs/heads/main', ['docs/readme.md']), { id: 'delivery-docs' });
    assert.equal(docs.status, 202);
    assert.deepEqual((await settled('delivery-docs')).runIds, [], 'paths-ignore');
    const deletion = await deliver({ ...payload('0'.repeat(40)), deleted: true }, { id: 'delivery-delete' });
    assert.equal(deletion.status, 202);
    assert.match(((await deletion.json()) as { reason: string }).reason, /deletion builds nothing/);
  });

  test('Gitea/Forgejo deliveries (their own headers, hex signature) build too', async () => {
    const text = JSON.stringify(payload(shas[0]));
    const hex = (await sign(secret, text)).replace(/^sha256=/, '');
    const res = await fetch(`${server.url}/api/v1/webhooks/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-gitea-event': 'push', 'x-gitea-delivery': 'gitea-1', 'x-gitea-signature': hex },
      body: text,
    });
    assert.equal(res.status, 202, await res.clone().text());
    const d = await settled('gitea-1');
    assert.equal(d.runIds.length, 1);
    assert.equal((await admin.waitFor(d.runIds[0])).conclusion, 'success');
  });

  test('concurrency with cancel-in-progress: a newer push cancels the older run', async () => {
    const slow =
      [
        'on: push',
        'concurrency:',
        '  group: slow-${{ github.ref }}',
        '  cancel-in-progress: true',
        'jobs:',
        '  wait:',
        '    runs-on: python-3.11',
        '    steps:',
        '      - run: sleep 120',
      ].join('\n') + '\n';
    const { shas: s2 } = await makeRepo(gitRoot, 'slow', [{ '.kiln.yml': slow, 'a.txt': '1' }, { 'a.txt': '2' }]);
    const reg = await admin.fetch('/api/v1/repositories', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fullName: 'octo/slow', cloneUrl: git.repoUrl('slow'), secret }),
    });
    assert.equal(reg.status, 201);
    const slowId = ((await reg.json()) as { id: string }).id;
    const push = (sha: string) => ({ ...payload(sha), repository: { full_name: 'octo/slow' } });
    const settledIn = async (id: string) => {
      for (let i = 0; i < 300; i++) {
        const d = ((await (await admin.fetch(`/api/v1/repositories/${slowId}/deliveries`)).json()) as { id: string; state: string; runIds: string[] }[]).find(
          (x) => x.id === id,
        );
        if (d && d.state !== 'queued') return d;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error('not processed');
    };
    assert.equal((await deliver(push(s2[0]), { id: 'slow-1' })).status, 202);
    const first = (await settledIn('slow-1')).runIds[0];
    await admin.waitFor(first, 60_000, (r) => r.jobs[0].status === 'in_progress');
    assert.equal((await deliver(push(s2[1]), { id: 'slow-2' })).status, 202);
    const second = (await settledIn('slow-2')).runIds[0];
    assert.equal((await admin.waitFor(first, 30_000)).conclusion, 'cancelled', 'the older run was cancelled');
    await admin.fetch(`/api/v1/runs/${second}/cancel`, { method: 'POST' });
  });

  test('ping is answered, other events are ignored saying so, unregistered repositories are refused', async () => {
    const ping = await deliver({ zen: 'Keep it logically awesome.', repository: { full_name: 'octo/demo' } }, { event: 'ping' });
    assert.equal(ping.status, 200);
    const issues = await deliver({ action: 'opened', repository: { full_name: 'octo/demo' } }, { event: 'issues' });
    assert.equal(issues.status, 202);
    assert.match(((await issues.json()) as { reason: string }).reason, /the 'issues' event does not start builds/);
    // An unregistered repository answers as a bad signature does: an unsigned caller learns nothing.
    const stranger = await deliver({ ...payload(shas[0]), repository: { full_name: 'someone/else' } });
    assert.equal(stranger.status, 401);
    assert.match(((await stranger.json()) as { message: string }).message, /signature .* does not match the webhook secret of a repository registered in Kiln/);
    const form = await fetch(`${server.url}/api/v1/webhooks/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-github-event': 'push', 'x-github-delivery': 'x' },
      body: 'payload=%7B%7D',
    });
    assert.equal(form.status, 415);
  });
});
