/**
 * Attack suite: what a hostile user can make the server keep or do on its own side, outside any job.
 * A run's source (the sanitized copy of an upload or a clone) must not outlive the run and counts in
 * the owner's storage while it exists; a compression bomb must not write more than the documented
 * expansion cap; a user's tokens and secrets are capped; `{repo}` submissions clone a bounded number
 * at a time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { startGitServer, GitServer } from '../fixtures/git-server';
import { tmpDir } from '../helpers';
import { Client } from '../e2e/runs-helpers';
import { assertServing, AttackServer, HostWatch, refusal, RUNTIME, startAttackServer } from './harness';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const CLONE_CONCURRENCY = 2;
const CLONE_QUEUE = 2;
const TOKENS = 3;
const SECRETS = 3;

// ---------------------------------------------------------------------------------------------
// Tarballs of zeros that cost almost nothing to send

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** A ustar header of a regular file. */
function fileHeader(name: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(0o644, 8), 100, 'latin1');
  b.write(octal(1000, 8), 108, 'latin1');
  b.write(octal(1000, 8), 116, 'latin1');
  b.write(octal(size, 12), 124, 'latin1');
  b.write(octal(1_700_000_000, 12), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write('0', 156, 'latin1');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function withBody(name: string, text: string): Buffer {
  const body = Buffer.from(text);
  const padded = Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
  return Buffer.concat([fileHeader(name, body.length), padded]);
}

/** 1 MiB of zeros as one gzip member (about 1 KiB): gzip members concatenate. */
let zeros1: Buffer | undefined;
function gzippedZerosMiB(n: number): Buffer[] {
  zeros1 ??= gzipSync(Buffer.alloc(MiB), { level: 9 });
  return Array.from({ length: n }, () => zeros1!);
}

/** A .tar.gz holding `.kiln.yml` and files of `mib` MiB of zeros each. */
function zerosTarball(workflow: string, files: { name: string; mib: number }[]): Buffer {
  return Buffer.concat([
    gzipSync(withBody('.kiln.yml', workflow)),
    ...files.flatMap((f) => [gzipSync(fileHeader(f.name, f.mib * MiB)), ...gzippedZerosMiB(f.mib)]),
    gzipSync(Buffer.alloc(1024)),
  ]);
}

const SKIPPED = 'jobs:\n  never:\n    runs-on: python-3.11\n    if: false\n    steps:\n      - run: echo never\n';
const SLEEPS = 'jobs:\n  sleeps:\n    runs-on: python-3.11\n    steps:\n      - run: echo started; sleep 60\n';
const FAILS = 'jobs:\n  fails:\n    runs-on: python-3.11\n    steps:\n      - run: exit 3\n';

// ---------------------------------------------------------------------------------------------
// The server's data folder

/** Every regular file under `dir` with its size (files vanishing while walked are skipped). */
function walk(dir: string, out: { file: string; size: number }[] = []): { file: string; size: number }[] {
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const d of names) {
    const full = path.join(dir, d.name);
    if (d.isDirectory()) walk(full, out);
    else if (d.isFile()) {
      const st = fs.statSync(full, { throwIfNoEntry: false });
      if (st) out.push({ file: full, size: st.size });
    }
  }
  return out;
}

const folderBytes = (dir: string) => walk(dir).reduce((n, f) => n + f.size, 0);

/** Files of the data folder that name one of the runs (a source is `<run>.tar` wherever it is kept), logs (kept by design) aside. */
function filesOfRuns(dir: string, runIds: string[]): string[] {
  const logs = path.join(dir, 'logs') + path.sep;
  return walk(dir)
    .map((f) => f.file)
    .filter((f) => !f.startsWith(logs) && runIds.some((id) => f.includes(id)));
}

interface Storage {
  usedBytes: number;
  sourceBytes: number;
  artifactBytes: number;
  quotaBytes: number;
}

async function storageOf(kiln: Client): Promise<Storage> {
  const res = await kiln.fetch('/api/v1/me');
  assert.equal(res.status, 200);
  const me = (await res.json()) as { storage?: Storage };
  assert.ok(me.storage, `GET /me shows the storage used: ${JSON.stringify(me)}`);
  return me.storage;
}

// ---------------------------------------------------------------------------------------------
// A git remote that answers slowly and counts the requests it serves at once

interface CountingRemote {
  repoUrl(name: string): string;
  maxInFlight(): number;
  close(): Promise<void>;
}

/** Forwards to `target` after `delayMs`, counting the requests in flight (a clone makes them one after another). */
async function countingRemote(target: GitServer, delayMs: number): Promise<CountingRemote> {
  let inFlight = 0;
  let max = 0;
  const upstream = new URL(target.url);
  const server = http.createServer((req, res) => {
    inFlight++;
    max = Math.max(max, inFlight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        inFlight--;
      }
    };
    res.on('close', finish);
    setTimeout(() => {
      const fwd = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on('error', () => res.destroy());
      req.pipe(fwd);
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    repoUrl: (name) => `${url}/${name}.git`,
    maxInFlight: () => max,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function git(cwd: string, args: string[]): Promise<string> {
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'a',
    GIT_AUTHOR_EMAIL: 'a@example.com',
    GIT_COMMITTER_NAME: 'a',
    GIT_COMMITTER_EMAIL: 'a@example.com',
    GIT_CONFIG_GLOBAL: '/dev/null',
  };
  return (await run('git', args, { cwd, env, encoding: 'utf8' })).stdout.trim();
}

async function makeRepo(root: string, name: string, workflow: string): Promise<void> {
  const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kiln-attack-repo-'));
  try {
    await git(work, ['init', '-q', '-b', 'main']);
    await fs.promises.writeFile(path.join(work, '.kiln.yml'), workflow);
    await git(work, ['add', '.kiln.yml']);
    await git(work, ['commit', '-q', '-m', 'skipped job']);
    await git(root, ['clone', '-q', '--bare', '--', work, `${name}.git`]);
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to 10 s) until no file of the data folder names these runs; returns what is left. */
async function sourcesLeft(data: string, runIds: string[]): Promise<string[]> {
  let left = filesOfRuns(data, runIds);
  for (let i = 0; i < 50 && left.length; i++) {
    await sleep(200);
    left = filesOfRuns(data, runIds);
  }
  return left;
}

describe(`attack: sources, storage and per-user caps (runtime ${RUNTIME})`, () => {
  let server: AttackServer;
  let kiln: Client;
  let watch: HostWatch;
  let remote: GitServer;
  let slowRemote: CountingRemote;
  const gitRoot = tmpDir('kiln-attack-git-');

  before(async () => {
    await makeRepo(gitRoot, 'skipped', SKIPPED);
    const started = await Promise.allSettled([
      startAttackServer({
        KILN_GIT_SCHEMES: 'https,http',
        KILN_GIT_ALLOW_PRIVATE: 'true',
        KILN_QUOTA_TOKENS: String(TOKENS),
        KILN_QUOTA_SECRETS: String(SECRETS),
        KILN_CLONE_CONCURRENCY: String(CLONE_CONCURRENCY),
        KILN_CLONE_QUEUE: String(CLONE_QUEUE),
        KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000',
        KILN_QUOTA_QUEUED_RUNS: '1000',
      }),
      startGitServer(gitRoot),
    ] as const);
    if (started[0].status === 'fulfilled') server = started[0].value;
    if (started[1].status === 'fulfilled') remote = started[1].value;
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    kiln = server.kiln;
    slowRemote = await countingRemote(remote, 1000);
    watch = await HostWatch.create(server);
  });

  after(async () => {
    await Promise.allSettled([server?.stop(), remote?.close(), slowRemote?.close()]);
    watch?.cleanup();
    fs.rmSync(gitRoot, { recursive: true, force: true });
  });

  test('finding 2: a 500 KiB upload of two 250 MiB zero files whose job is skipped leaves no source once the run concludes', async () => {
    const tarball = zerosTarball(SKIPPED, [
      { name: 'zeros-1.bin', mib: 250 },
      { name: 'zeros-2.bin', mib: 250 },
    ]);
    assert.ok(tarball.length < 600 * 1024, `the upload is small (${tarball.length} bytes)`);
    const before = folderBytes(server.data);
    const accepted = await kiln.accepted(kiln.submitTarball(tarball));
    const done = await kiln.waitFor(accepted.id, 60_000);
    assert.equal(done.jobs[0].conclusion, 'skipped');
    assert.deepEqual(await sourcesLeft(server.data, [accepted.id]), [], 'no file of the concluded run remains in the data folder');
    const grown = folderBytes(server.data) - before;
    assert.ok(grown < 16 * MiB, `the data folder grew by ${grown} bytes after the run concluded (the 500 MiB source is gone)`);
    assert.equal((await storageOf(kiln)).sourceBytes, 0, 'no source counts once its run concluded');
  });

  test('finding 2: a source counts in /me while its run runs; cancelled and failed runs leave none', async () => {
    const [sleeper, failer] = await Promise.all([
      kiln.accepted(kiln.submitTarball(zerosTarball(SLEEPS, [{ name: 'zeros.bin', mib: 20 }]))),
      kiln.accepted(kiln.submitTarball(zerosTarball(FAILS, [{ name: 'zeros.bin', mib: 20 }]))),
    ]);
    await kiln.waitFor(sleeper.id, 120_000, (r) => r.jobs[0].status === 'in_progress');
    const during = await storageOf(kiln);
    assert.ok(during.sourceBytes >= 20 * MiB, `the running run's source counts in /me: ${JSON.stringify(during)}`);
    assert.ok(during.usedBytes >= during.sourceBytes, `used storage includes the sources: ${JSON.stringify(during)}`);
    assert.ok(filesOfRuns(server.data, [sleeper.id]).length > 0, 'the running run has its source');
    const cancel = await kiln.fetch(`/api/v1/runs/${sleeper.id}/cancel`, { method: 'POST' });
    assert.ok(cancel.status < 300, `cancel answered ${cancel.status}`);
    const [cancelled, failed] = await Promise.all([kiln.waitFor(sleeper.id, 120_000), kiln.waitFor(failer.id, 120_000)]);
    assert.equal(cancelled.conclusion, 'cancelled');
    assert.equal(failed.conclusion, 'failure');
    assert.deepEqual(await sourcesLeft(server.data, [sleeper.id, failer.id]), [], 'neither the cancelled nor the failed run kept its source');
    assert.equal((await storageOf(kiln)).sourceBytes, 0, 'no source counts once the runs concluded');
  });

  test('finding 2: a gzip bomb expanding past 512 MiB is a 4xx naming 512 MiB, and no more than 512 MiB is ever written', async (t) => {
    // Three 255 MiB files (765 MiB) in 800 KiB: the third header passes the 512 MiB cap.
    const bomb = zerosTarball(
      SKIPPED,
      [1, 2, 3].map((i) => ({ name: `zeros-${i}.bin`, mib: 255 })),
    );
    assert.ok(bomb.length < MiB, `the bomb is small (${bomb.length} bytes)`);
    const baseline = folderBytes(server.data);
    let peak = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, folderBytes(server.data) - baseline);
      samples++;
    }, 20);
    let r: Awaited<ReturnType<typeof refusal>>;
    try {
      r = await refusal(kiln.submitTarball(bomb));
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, folderBytes(server.data) - baseline);
    t.diagnostic(`bomb of ${bomb.length} bytes: ${r.status} in ${samples} samples, the data folder grew by at most ${peak} bytes: ${r.message}`);
    assert.ok(r.status >= 400 && r.status < 500, `answered ${r.status}: ${r.message}`);
    assert.match(r.message, /512 MiB/, 'the refusal names the 512 MiB limit');
    // Slack: the upload itself (kept in uploads/ while it is checked), the tar headers of the kept entries
    // (512 bytes each) and the database and logs growing meanwhile (a few KiB): 4 MiB covers them.
    const slack = bomb.length + 4 * MiB;
    assert.ok(peak <= 512 * MiB + slack, `at most 512 MiB (+ ${slack} bytes) was written; the data folder grew by up to ${peak} bytes (${samples} samples)`);
    assert.ok(peak > 64 * MiB, `the sampler saw the copy being written (peak ${peak} bytes in ${samples} samples)`);
    const leftover = folderBytes(server.data) - baseline;
    assert.ok(leftover < 4 * MiB, `the partial copy and the upload were removed (${leftover} bytes left)`);
  });

  test('finding 11: a user holds at most KILN_QUOTA_TOKENS active tokens, admins issuing for them included', async () => {
    const created = await kiln.fetch('/api/v1/users', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'token-hoarder' }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const user = (await created.json()) as { id: string };
    const issueFor = () => kiln.fetch(`/api/v1/users/${user.id}/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const first = await issueFor();
    assert.equal(first.status, 201);
    const hoarder = new Client(server.url, ((await first.json()) as { token: string }).token);
    const issued: string[] = [];
    for (let i = 1; i < TOKENS; i++) {
      const res = await hoarder.fetch('/api/v1/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 201, `token ${i + 1} of ${TOKENS}`);
      issued.push(((await res.json()) as { id: string }).id);
    }
    const own = await refusal(hoarder.fetch('/api/v1/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }));
    assert.ok(own.status === 429 || own.status === 403, `the token past the cap answered ${own.status}: ${own.message}`);
    assert.match(own.message, new RegExp(`${TOKENS} active tokens.*KILN_QUOTA_TOKENS`), own.message);
    const byAdmin = await refusal(issueFor());
    assert.equal(byAdmin.status, own.status, `an admin issuing for the user is refused too: ${byAdmin.message}`);
    assert.match(byAdmin.message, /KILN_QUOTA_TOKENS/);
    // A revoked token does not count.
    assert.equal((await hoarder.fetch(`/api/v1/tokens/${issued[0]}`, { method: 'DELETE' })).status, 204);
    assert.equal(
      (await hoarder.fetch('/api/v1/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status,
      201,
      'a revoked token frees its place',
    );
  });

  test('finding 11: a user holds at most KILN_QUOTA_SECRETS secrets; replacing one is not a new one', async () => {
    const put = (name: string) =>
      kiln.fetch(`/api/v1/secrets/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: `v-${name}` }) });
    for (let i = 0; i < SECRETS; i++) assert.equal((await put(`S${i}`)).status, 204, `secret ${i + 1} of ${SECRETS}`);
    const past = await refusal(put('ONE_TOO_MANY'));
    assert.ok(past.status === 429 || past.status === 403, `the secret past the cap answered ${past.status}: ${past.message}`);
    assert.match(past.message, new RegExp(`${SECRETS} secrets.*KILN_QUOTA_SECRETS`), past.message);
    assert.equal((await put('S0')).status, 204, 'replacing an existing secret is allowed');
    assert.equal((await kiln.fetch('/api/v1/secrets/S1', { method: 'DELETE' })).status, 204);
    assert.equal((await put('ONE_TOO_MANY')).status, 204, 'a deleted secret frees its place');
    const names = (await (await kiln.fetch('/api/v1/secrets')).json()) as { name: string }[];
    assert.equal(names.length, SECRETS);
  });

  test('finding 11: parallel {repo} submissions clone at most KILN_CLONE_CONCURRENCY at once, the rest wait or get 503; health answers', async (t) => {
    const health = { polls: 0, slowest: 0, failures: [] as string[], stop: false };
    const poller = (async () => {
      while (!health.stop) {
        const t0 = Date.now();
        try {
          const res = await fetch(`${server.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer();
          if (res.status !== 200) health.failures.push(`health answered ${res.status}`);
        } catch (e) {
          health.failures.push(`health: ${(e as Error).message}`);
        }
        health.slowest = Math.max(health.slowest, Date.now() - t0);
        health.polls++;
        await sleep(200);
      }
    })();
    const n = CLONE_CONCURRENCY + CLONE_QUEUE + 2;
    let answers: { status: number; retryAfter: string | null; body: string }[];
    try {
      answers = await Promise.all(
        Array.from({ length: n }, async () => {
          const res = await kiln.submitJson({ repo: slowRemote.repoUrl('skipped'), ref: 'main' });
          return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
        }),
      );
    } finally {
      health.stop = true;
      await poller;
    }
    t.diagnostic(
      `answers ${answers.map((a) => a.status).join(' ')}; at most ${slowRemote.maxInFlight()} requests at the remote at once; health ${health.polls} polls, slowest ${health.slowest} ms`,
    );
    assert.ok(slowRemote.maxInFlight() >= 1, 'the remote was reached');
    assert.ok(
      slowRemote.maxInFlight() <= CLONE_CONCURRENCY,
      `at most ${CLONE_CONCURRENCY} clones talked to the remote at once (saw ${slowRemote.maxInFlight()})`,
    );
    const accepted = answers.filter((a) => a.status === 201);
    const busy = answers.filter((a) => a.status === 503);
    assert.equal(accepted.length + busy.length, n, `every answer is 201 or 503: ${JSON.stringify(answers)}`);
    assert.ok(accepted.length >= CLONE_CONCURRENCY + CLONE_QUEUE, `the clones running and those waiting were accepted: ${JSON.stringify(answers)}`);
    for (const b of busy) {
      assert.ok(Number(b.retryAfter) > 0, `a refused clone says when to retry: ${JSON.stringify(b)}`);
      assert.match(b.body, /KILN_CLONE_CONCURRENCY/, 'the refusal names the limit');
    }
    assert.deepEqual(health.failures, [], 'health answered while the clones ran');
    assert.ok(health.polls >= 1 && health.slowest < 5000, `health answered during the clones (${health.polls} polls, slowest ${health.slowest} ms)`);
    const ids = accepted.map((a) => (JSON.parse(a.body) as { id: string }).id);
    for (const id of ids) await kiln.waitFor(id, 60_000);
    assert.deepEqual(await sourcesLeft(server.data, ids), [], "the clones' sources are gone once their runs concluded");
  });

  test('the host is unchanged and the service still serves', async () => {
    await watch.assertUnchanged('sources and caps');
    await assertServing(kiln, 'sources and caps');
  });
});
