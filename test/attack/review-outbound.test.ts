/**
 * Attack cases of the review: what the server itself contacts (statusUrl, repository URLs),
 * webhooks (signature first, per-repository delivery ids, fullName and labelMap), the cap on a
 * user's repositories.
 *
 * Two servers: `strict` has the default outbound policy (https only, public addresses only), as a
 * default `npm run up`; `open` allows http and private hosts, as an operator with a forge on the
 * local network would (and as the webhooks e2e test does), so statuses to loopback listeners and
 * clones from a local git server can be shown.
 *
 * No case sends traffic off the machine: refused URLs are IP literals (no DNS), and the only
 * servers contacted are the loopback listeners and git server started here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { makeRepo, startGitServer, symlink, type GitServer } from '../fixtures/git-server';
import { tmpDir } from '../helpers';
import { Client } from '../e2e/runs-helpers';
import { assertServing, AttackServer, HostWatch, refusal, RUNTIME, startAttackServer } from './harness';

interface Listener {
  url: string;
  port: number;
  hits: { method: string; url: string }[];
  close: () => Promise<void>;
}

/** A loopback HTTP listener that records every request and answers with `answer`. */
async function listen(answer: (res: http.ServerResponse) => void = (res) => res.writeHead(201).end('{}')): Promise<Listener> {
  const hits: Listener['hits'] = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const SECRET = 'a-webhook-secret-of-some-length';
const PUBLIC_CLONE = 'https://140.82.112.3/octo/never-contacted.git'; // an IP literal: checked without DNS, never fetched here

async function makeUser(admin: Client, name: string): Promise<{ client: Client; id: string }> {
  const u = await admin.fetch('/api/v1/users', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  assert.equal(u.status, 201, await u.clone().text());
  const { id } = (await u.json()) as { id: string };
  const t = await admin.fetch(`/api/v1/users/${id}/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'attack' }),
  });
  assert.equal(t.status, 201);
  return { client: new Client(admin.url, ((await t.json()) as { token: string }).token), id };
}

function register(client: Client, body: Record<string, unknown>): Promise<Response> {
  return client.fetch('/api/v1/repositories', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ secret: SECRET, ...body }),
  });
}

function pushPayload(fullName: string, sha: string, ref = 'refs/heads/main'): Record<string, unknown> {
  return {
    ref,
    after: sha,
    before: '0'.repeat(40),
    deleted: false,
    repository: { full_name: fullName },
    commits: [{ id: sha, added: [], modified: ['README'], removed: [] }],
  };
}

async function deliver(url: string, body: Record<string, unknown>, opts: { id?: string; secret?: string | null; event?: string } = {}): Promise<Response> {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': opts.event ?? 'push',
    'x-github-delivery': opts.id ?? randomUUID(),
  };
  if (opts.secret !== null)
    headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', opts.secret ?? SECRET)
      .update(text)
      .digest('hex')}`;
  return fetch(`${url}/api/v1/webhooks/github`, { method: 'POST', headers, body: text });
}

describe(`attack: outbound addresses, commit statuses and webhooks (runtime ${RUNTIME})`, () => {
  let strict: AttackServer;
  let open: AttackServer;
  let strictWatch: HostWatch;
  let openWatch: HostWatch;
  let git: GitServer;
  let sha: string;
  const gitRoot = tmpDir('kiln-attack-outbound-git-');
  const listeners: Listener[] = [];

  before(async () => {
    const started = await Promise.allSettled([
      startAttackServer({ KILN_QUOTA_REPOSITORIES: '3' }),
      // Both names: KILN_OUTBOUND_* and their former names KILN_GIT_* (which agree, so both are read).
      startAttackServer({
        KILN_OUTBOUND_SCHEMES: 'https,http',
        KILN_OUTBOUND_ALLOW_PRIVATE: 'true',
        KILN_GIT_SCHEMES: 'https,http',
        KILN_GIT_ALLOW_PRIVATE: 'true',
      }),
      startGitServer(gitRoot),
    ] as const);
    const value = <T>(r: PromiseSettledResult<T>): T | undefined => (r.status === 'fulfilled' ? r.value : undefined);
    [strict, open, git] = [value(started[0])!, value(started[1])!, value(started[2])!];
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    ({
      shas: [sha],
    } = await makeRepo(gitRoot, 'demo', [{ '.kiln.yml': 'jobs:\n  hello:\n    runs-on: python-3.11\n    steps:\n      - run: echo hello\n', README: 'x\n' }]));
    [strictWatch, openWatch] = await Promise.all([HostWatch.create(strict), HostWatch.create(open)]);
  });

  after(async () => {
    await Promise.allSettled([strict?.stop(), open?.stop(), git?.close(), ...listeners.map((l) => l.close())]);
    strictWatch?.cleanup();
    openWatch?.cleanup();
  });

  test('finding 3: a statusUrl at a loopback listener or a private/special address is refused at registration, with the reason; a signed push reaches nothing', async () => {
    const target = await listen();
    listeners.push(target);
    const { client: mallory } = await makeUser(strict.kiln, 'mallory');
    const cases: [string, RegExp][] = [
      [`http://127.0.0.1:${target.port}`, /statusUrl: the URL scheme 'http' is not accepted; allowed schemes: https:\/\//],
      [`http://127.0.0.1:${target.port}/?`, /statusUrl: the URL scheme 'http' is not accepted/],
      [`https://127.0.0.1:${target.port}`, /statusUrl: the host '127\.0\.0\.1' is a private or local address \(127\.0\.0\.1: loopback\)/],
      ['https://127.0.0.1:6379/x?', /statusUrl must be a base URL without '\?' or '#'/],
      [`https://localhost:${target.port}`, /private or local address \(localhost\)/],
      [`https://[::1]:${target.port}`, /\(::1: loopback\)/],
      [`https://[::127.0.0.1]:${target.port}`, /\(::7f00:1: ipv4Compatible, which carries 127\.0\.0\.1 \(loopback\)\)/],
      [`https://[::ffff:127.0.0.1]:${target.port}`, /\(::ffff:7f00:1: ipv4Mapped, which carries 127\.0\.0\.1 \(loopback\)\)/],
      [`https://[64:ff9b::7f00:1]:${target.port}`, /\(64:ff9b::7f00:1: rfc6052, which carries 127\.0\.0\.1 \(loopback\)\)/],
      [`https://[2002:7f00:1::1]:${target.port}`, /\(2002:7f00:1::1: 6to4, which carries 127\.0\.0\.1 \(loopback\)\)/],
      ['https://169.254.169.254/latest/meta-data', /\(169\.254\.169\.254: linkLocal\)/],
      ['https://10.0.0.1', /\(10\.0\.0\.1: private\)/],
      ['https://100.64.0.1', /\(100\.64\.0\.1: carrierGradeNat\)/],
      ['https://198.18.0.1', /\(198\.18\.0\.1: reserved\)/],
      ['https://240.0.0.1', /\(240\.0\.0\.1: reserved\)/],
      ['https://224.0.0.1', /\(224\.0\.0\.1: multicast\)/],
      ['https://[fd00::1]', /\(fd00::1: uniqueLocal\)/],
      ['https://[ff02::1]', /\(ff02::1: multicast\)/],
      ['https://forge.example/api?', /statusUrl must be a base URL without '\?' or '#'/],
    ];
    for (const [i, [statusUrl, reason]] of cases.entries()) {
      const r = await refusal(register(mallory, { fullName: `mallory/ssrf-${i}`, cloneUrl: PUBLIC_CLONE, statusUrl, statusToken: 'stolen-token' }));
      assert.equal(r.status, 400, `${statusUrl}: ${r.status} ${r.message}`);
      assert.match(r.message, reason, statusUrl);
    }
    // The push for such a name finds no repository: the same 401 as a bad signature, nothing sent.
    const push = await refusal(deliver(strict.url, pushPayload('mallory/ssrf-0', '1'.repeat(40))));
    assert.equal(push.status, 401, push.message);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(target.hits, [], 'the loopback listener received nothing');
    assert.deepEqual(await (await mallory.fetch('/api/v1/repositories')).json(), [], 'nothing was registered');
  });

  test('finding 6: repository URLs at the addresses the old hand list took for public are refused', async () => {
    const { client: eve } = await makeUser(strict.kiln, 'eve');
    const cases: [string, RegExp][] = [
      ['https://[::127.0.0.1]/x.git', /::7f00:1: ipv4Compatible, which carries 127\.0\.0\.1/],
      ['https://[::7f00:1]/x.git', /ipv4Compatible/],
      ['https://[64:ff9b::7f00:1]/x.git', /rfc6052, which carries 127\.0\.0\.1/],
      ['https://[64:ff9b::a9fe:a9fe]/x.git', /rfc6052, which carries 169\.254\.169\.254 \(linkLocal\)/],
      ['https://[2002:a00:1::1]/x.git', /6to4, which carries 10\.0\.0\.1 \(private\)/],
      ['https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.git', /teredo, which carries 127\.0\.0\.1/],
      ['https://198.18.0.1/x.git', /198\.18\.0\.1: reserved/],
      ['https://198.19.255.254/x.git', /reserved/],
      ['https://240.0.0.1/x.git', /240\.0\.0\.1: reserved/],
      ['https://255.255.255.255/x.git', /broadcast/],
      ['https://224.0.0.1/x.git', /224\.0\.0\.1: multicast/],
      ['https://[ff05::1:3]/x.git', /multicast/],
      ['https://192.0.0.8/x.git', /reserved/],
      ['https://[2001:db8::1]/x.git', /reserved/],
    ];
    for (const [i, [cloneUrl, reason]] of cases.entries()) {
      const r = await refusal(register(eve, { fullName: `eve/gap-${i}`, cloneUrl }));
      assert.equal(r.status, 400, `${cloneUrl}: ${r.status} ${r.message}`);
      assert.match(r.message, /^cloneUrl: the host '.*' is a private or local address \(/, cloneUrl);
      assert.match(r.message, reason, cloneUrl);
    }
    // The same policy guards `{repo}` submissions (refused before any clone).
    const run = await refusal(eve.submitJson({ repo: 'https://[64:ff9b::7f00:1]/x.git', ref: 'main' }));
    assert.equal(run.status, 400, run.message);
    assert.match(run.message, /private or local address/);
  });

  test('finding 3: with http and private hosts allowed, a status redirect is not followed and only an owner sets a statusUrl', async () => {
    const second = await listen();
    const first = await listen((res) => res.writeHead(302, { location: `${second.url}/repos/stolen` }).end());
    listeners.push(first, second);
    const [alice, bob] = await Promise.all([makeUser(open.kiln, 'alice'), makeUser(open.kiln, 'bob')]);
    // Only the owner (or an admin) sets a statusUrl: bob can neither register for alice nor touch her repository.
    const forAlice = await refusal(register(bob.client, { fullName: 'alice/by-bob', cloneUrl: git.repoUrl('demo'), statusUrl: first.url, owner: alice.id }));
    assert.equal(forAlice.status, 403, forAlice.message);
    const reg = await register(alice.client, { fullName: 'alice/demo', cloneUrl: git.repoUrl('demo'), statusUrl: first.url, statusToken: 'forge-token' });
    assert.equal(reg.status, 201, await reg.clone().text());
    const repoId = ((await reg.json()) as { id: string }).id;
    assert.equal((await bob.client.fetch(`/api/v1/repositories/${repoId}`, { method: 'DELETE' })).status, 404);
    assert.equal((await bob.client.fetch(`/api/v1/repositories/${repoId}/deliveries`)).status, 404);

    const push = await deliver(open.url, pushPayload('alice/demo', sha), { id: 'redirect-1' });
    assert.equal(push.status, 202, await push.clone().text());
    // pending (when the run is queued) and then the conclusion: one request each to the first listener.
    const deadline = Date.now() + 180_000;
    let runId: string | undefined;
    while (Date.now() < deadline) {
      const ds = (await (await alice.client.fetch(`/api/v1/repositories/${repoId}/deliveries`)).json()) as {
        id: string;
        state: string;
        runIds: string[];
        detail: string | null;
      }[];
      const d = ds.find((x) => x.id === 'redirect-1');
      if (d && d.state !== 'queued') {
        assert.equal(d.runIds.length, 1, JSON.stringify(d));
        runId = d.runIds[0];
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(runId, 'the delivery was built');
    const done = await alice.client.waitFor(runId, 180_000);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    for (let i = 0; i < 40 && first.hits.length < 2; i++) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 1500)); // room for a retry or a followed redirect to show
    assert.deepEqual(
      first.hits.map((h) => `${h.method} ${h.url}`),
      [`POST /repos/alice/demo/statuses/${sha}`, `POST /repos/alice/demo/statuses/${sha}`],
      'pending and success, each sent once: a 3xx is not retried',
    );
    assert.deepEqual(second.hits, [], 'the redirect target received nothing');
  });

  test('a pushed workflow that is a symbolic link is not read: a link to a host file or folder neither runs it nor shows its text', async () => {
    // The canary is a valid workflow on the host: had Kiln followed a link, it would run and be named in the delivery.
    const canaryText = 'name: host-canary-7f3a\non: push\njobs:\n  x:\n    runs-on: python-3.11\n    steps:\n      - run: echo host-canary-7f3a\n';
    const canary = path.join(gitRoot, 'host-canary.yml');
    fs.writeFileSync(canary, canaryText);
    const hostGithub = path.join(gitRoot, 'host-github');
    fs.mkdirSync(path.join(hostGithub, 'workflows'), { recursive: true });
    fs.writeFileSync(path.join(hostGithub, 'workflows', 'ci.yml'), canaryText);
    const trees: Record<string, Record<string, string>> = {
      linked: {
        '.kiln.yml': symlink(canary),
        '.github/workflows/passwd.yml': symlink('/etc/passwd'),
        '.github/workflows/inside.yml': symlink('../../README'),
        README: 'on: push\n',
      },
      'linked-folder': { '.github': symlink(hostGithub), README: 'x\n' },
    };
    const { client: eve } = await makeUser(open.kiln, 'eve');
    for (const [name, files] of Object.entries(trees)) {
      const {
        shas: [linked],
      } = await makeRepo(gitRoot, name, [files]);
      const reg = await register(eve, { fullName: `eve/${name}`, cloneUrl: git.repoUrl(name) });
      assert.equal(reg.status, 201, await reg.clone().text());
      const repoId = ((await reg.json()) as { id: string }).id;
      const push = await deliver(open.url, pushPayload(`eve/${name}`, linked), { id: `${name}-1` });
      assert.equal(push.status, 202, await push.clone().text());
      let delivery: { state: string; detail: string | null; runIds: string[] } | undefined;
      for (let i = 0; i < 240 && !delivery; i++) {
        const ds = (await (await eve.fetch(`/api/v1/repositories/${repoId}/deliveries`)).json()) as {
          id: string;
          state: string;
          detail: string | null;
          runIds: string[];
        }[];
        delivery = ds.find((d) => d.id === `${name}-1` && d.state !== 'queued');
        if (!delivery) await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(delivery, `${name}: the delivery was processed`);
      const { state, detail, runIds } = delivery;
      assert.deepEqual({ state, detail, runIds }, { state: 'done', detail: 'no workflow is triggered by this push', runIds: [] }, JSON.stringify(delivery));
    }
    const runs = await (await eve.fetch('/api/v1/runs')).text();
    assert.doesNotMatch(runs, /host-canary/, 'no run of the host file');
  });

  test('finding 10: an unknown repository and a bad signature answer the same 401 (the signature is checked first)', async () => {
    const reg = await register(open.kiln, { fullName: 'octo/known', cloneUrl: git.repoUrl('demo'), branches: ['main'] });
    assert.equal(reg.status, 201, await reg.clone().text());
    const answers = [
      await refusal(deliver(open.url, pushPayload('octo/unknown', sha), { secret: null })),
      await refusal(deliver(open.url, pushPayload('octo/unknown', sha), { secret: 'a-guess-at-the-secret-value' })),
      await refusal(deliver(open.url, pushPayload('octo/known', sha), { secret: null })),
      await refusal(deliver(open.url, pushPayload('octo/known', sha), { secret: 'a-guess-at-the-secret-value' })),
      await refusal(deliver(open.url, pushPayload('OCTO/KNOWN', sha), { secret: 'a-guess-at-the-secret-value', event: 'ping' })),
    ];
    for (const a of answers) {
      assert.equal(a.status, 401, a.message);
      assert.equal(a.message, answers[0].message, 'the same message whether or not the repository exists');
    }
    assert.doesNotMatch(answers[0].message, /octo|not registered/);
    const good = await deliver(open.url, pushPayload('octo/known', sha), { event: 'ping' });
    assert.equal(good.status, 200, await good.clone().text());
  });

  test('finding 10: delivery ids are unique per repository, not across tenants', async () => {
    const [carol, dave] = await Promise.all([makeUser(open.kiln, 'carol'), makeUser(open.kiln, 'dave')]);
    for (const [u, name] of [
      [carol, 'carol/app'],
      [dave, 'dave/app'],
    ] as const) {
      const reg = await register(u.client, { fullName: name, cloneUrl: git.repoUrl('demo'), branches: ['main'] });
      assert.equal(reg.status, 201, await reg.clone().text());
    }
    // Pushes to a branch the repositories do not build: recorded, nothing queued (no job runs).
    const first = await deliver(open.url, pushPayload('carol/app', sha, 'refs/heads/elsewhere'), { id: 'shared-delivery-id' });
    assert.equal(first.status, 202, await first.clone().text());
    const other = await deliver(open.url, pushPayload('dave/app', sha, 'refs/heads/elsewhere'), { id: 'shared-delivery-id' });
    const body = (await other.json()) as { duplicate?: boolean; ignored?: boolean };
    assert.equal(other.status, 202, `dave's delivery is his own: ${JSON.stringify(body)}`);
    assert.equal(body.duplicate, undefined);
    assert.equal(body.ignored, true);
    const again = await deliver(open.url, pushPayload('carol/app', sha, 'refs/heads/elsewhere'), { id: 'shared-delivery-id' });
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { duplicate: boolean }).duplicate, true, 'a redelivery to the same repository is still one');
  });

  test('finding 10: fullName is capped and labelMap labels and environments are checked (400 naming the entry)', async () => {
    const { client: frank } = await makeUser(strict.kiln, 'frank');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ fullName: `${'a'.repeat(100)}/${'b'.repeat(101)}` }, /fullName must be at most 200 characters/],
      [{ fullName: `${'a'.repeat(39)}/${'b'.repeat(10_000)}` }, /fullName must be at most 200 characters/],
      [{ fullName: '../..' }, /has a part '\.' or '\.\.'/],
      [{ fullName: 'frank/a', labelMap: { 'ubuntu-latest': 'Python 3; rm -rf /' } }, /labelMap: the value for "ubuntu-latest" must be an environment name/],
      [{ fullName: 'frank/b', labelMap: { 'ubuntu-latest': { nested: true } } }, /labelMap: the value for "ubuntu-latest"/],
      [{ fullName: 'frank/c', labelMap: { 'bad label': 'python-3.11' } }, /labelMap: the label "bad label" is not a runs-on label/],
      [{ fullName: 'frank/d', labelMap: { constructor: 'python-3.11' } }, /labelMap\.constructor is not accepted in a request body: rename it/],
      [
        { fullName: 'frank/e', labelMap: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`l${i}`, 'python-3.11'])) },
        /labelMap has 500 entries; the limit is 50/,
      ],
    ];
    for (const [body, message] of cases) {
      const r = await refusal(register(frank, { cloneUrl: PUBLIC_CLONE, ...body }));
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.status} ${r.message}`);
      assert.match(r.message, message);
    }
    assert.deepEqual(await (await frank.fetch('/api/v1/repositories')).json(), []);
  });

  test("finding 11: a user's registered repositories are capped (KILN_QUOTA_REPOSITORIES, here 3), also when an admin registers for them", async () => {
    const grace = await makeUser(strict.kiln, 'grace');
    for (let i = 0; i < 3; i++) {
      const ok = await register(grace.client, { fullName: `grace/r${i}`, cloneUrl: PUBLIC_CLONE });
      assert.equal(ok.status, 201, await ok.clone().text());
    }
    const more = await refusal(register(grace.client, { fullName: 'grace/r3', cloneUrl: PUBLIC_CLONE }));
    assert.equal(more.status, 403, more.message);
    assert.match(more.message, /quota: you have 3 registered repositories, the most allowed \(KILN_QUOTA_REPOSITORIES/);
    const byAdmin = await refusal(register(strict.kiln, { fullName: 'grace/r4', cloneUrl: PUBLIC_CLONE, owner: grace.id }));
    assert.equal(byAdmin.status, 403, byAdmin.message);
    assert.match(byAdmin.message, new RegExp(`user ${grace.id} has 3 registered repositories`));
    assert.equal(((await (await grace.client.fetch('/api/v1/repositories')).json()) as unknown[]).length, 3);
  });

  test('both servers still serve, and the host is unchanged', async () => {
    await Promise.all([assertServing(strict.kiln, 'strict server'), assertServing(open.kiln, 'open server')]);
    await strictWatch.assertUnchanged('strict server');
    await openWatch.assertUnchanged('open server');
  });
});
