/**
 * Attack suite: hostile INPUTS through the real HTTP API of a real `kiln serve` (real engine, Redis,
 * images). Tarballs, repository URLs and refs, and job specs that try to get out of the workspace,
 * reach the host or the network, pick their own image or privileges, or exhaust the service.
 *
 * Every case asserts the safe outcome: a 4xx (never a 5xx) whose message says what is wrong, no run
 * recorded, nothing on the host changed; or, where Kiln legitimately accepts the input and
 * neutralises it while the job runs, the run's outcome. Each group ends by proving the service
 * still serves.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as dns } from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { makeTar } from '../fixtures/archives';
import { startGitServer, GitServer } from '../fixtures/git-server';
import { TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client, RunView } from '../e2e/runs-helpers';
import { assertServing, AttackServer, HostWatch, refusal, RUNTIME, runCount, startAttackServer } from './harness';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** In the server's environment: a job must never see it. */
const HOST_ENV_VALUE = `host-secret-${randomBytes(8).toString('hex')}`;
const PLAIN_HOST_ENV_VALUE = `plain-host-secret-${randomBytes(8).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// Raw tar building (headers the fixtures cannot make: devices, FIFOs, sparse, giant sizes, pax)

interface RawHeader {
  name: string;
  /** The typeflag character: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' FIFO, '7' contiguous, 'S' GNU sparse, 'x' pax, 'g' global pax, 'L' GNU long name. */
  type: string;
  size?: number;
  /** 12 raw bytes for the size field (base-256 tricks). */
  rawSize?: Buffer;
  linkname?: string;
  mode?: number;
  gnu?: boolean;
  /** GNU sparse: the real size (offset 483). */
  realSize?: Buffer;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(h: RawHeader): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode ?? 0o644, 8), 100, 'latin1');
  b.write(octal(1000, 8), 108, 'latin1');
  b.write(octal(1000, 8), 116, 'latin1');
  if (h.rawSize) h.rawSize.copy(b, 124);
  else b.write(octal(h.size ?? 0, 12), 124, 'latin1');
  b.write(octal(1_700_000_000, 12), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write(h.type, 156, 'latin1');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  if (h.gnu) b.write('ustar  \0', 257, 'latin1');
  else {
    b.write('ustar\0', 257, 'latin1');
    b.write('00', 263, 'latin1');
  }
  b.write('user', 265, 'latin1');
  b.write('user', 297, 'latin1');
  if (h.type === '3' || h.type === '4') {
    b.write(octal(1, 8), 329, 'latin1');
    b.write(octal(3, 8), 337, 'latin1');
  }
  if (h.realSize) h.realSize.copy(b, 483);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function pad(data: Buffer): Buffer {
  const rest = data.length % 512;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)]);
}

/** One entry: its header and its data padded to the block size. */
function rawEntry(h: RawHeader, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = Buffer.from(data);
  return Buffer.concat([header({ ...h, size: h.size ?? body.length }), pad(body)]);
}

/** A pax extended header ('x', or 'g' for global) with the given records. */
function pax(records: Record<string, string>, type = 'x'): Buffer {
  const text = Object.entries(records)
    .map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(rest) + 1;
      while (String(len).length + Buffer.byteLength(rest) !== len) len++;
      return `${len}${rest}`;
    })
    .join('');
  return rawEntry({ name: 'PaxHeaders/x', type }, text);
}

/** 64 MiB of zeros as one gzip member (computed once): gzip members concatenate, so bombs are cheap to build. */
let zeros64: Buffer | undefined;
function gzippedZeros64MiB(): Buffer {
  zeros64 ??= gzipSync(Buffer.alloc(64 * MiB), { level: 9 });
  return zeros64;
}

function rawTar(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

/** A base-256 size field (GNU extension): 0x80 then the number big-endian; 0xff then the complement for -n. */
function base256(n: bigint, negative = false): Buffer {
  const b = Buffer.alloc(12);
  let v = n;
  for (let i = 11; i >= 1; i--) {
    const digit = Number(v & 0xffn);
    b[i] = negative ? 0xff - digit : digit;
    v >>= 8n;
  }
  b[0] = negative ? 0xff : 0x80;
  return b;
}

const WORKFLOW = 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n';

/**
 * Alias amplification: 99 aliases of one 240 KB string stay within the alias cap (100) and the spec
 * size cap (256 KiB), yet expand to 24 MB of env in every job; with a 24-job matrix, to 580 MB of plan.
 */
const AMPLIFIED_ENV = `env:\n  A0: &a "${'x'.repeat(240 * 1024)}"\n${Array.from({ length: 99 }, (_, i) => `  A${i + 1}: *a\n`).join('')}jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n`;
const AMPLIFIED_MATRIX = AMPLIFIED_ENV.replace(
  'jobs:\n  a:\n',
  `jobs:\n  a:\n    strategy:\n      matrix:\n        k: [${Array.from({ length: 24 }, (_, i) => i).join(',')}]\n`,
);

/** A tarball of a small project with a valid .kiln.yml (to attach a hostile entry to). */
function withWorkflow(...entries: Buffer[]): Buffer {
  return gzipSync(rawTar(rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW), ...entries));
}

// ---------------------------------------------------------------------------------------------
// Git fixtures the shared helper cannot make (symlinks, executable hooks, raw trees)

const gitEnv = (home: string) => ({ PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: home });

async function git(cwd: string, args: string[], input?: string): Promise<string> {
  const p = run(
    'git',
    [
      '-c',
      'init.defaultBranch=main',
      '-c',
      'user.name=Kiln Attack',
      '-c',
      'user.email=attack@kiln.invalid',
      '-c',
      'commit.gpgSign=false',
      '-c',
      'core.hooksPath=/dev/null',
      ...args,
    ],
    { cwd, env: gitEnv(cwd), maxBuffer: 64 * MiB, encoding: 'utf8' },
  );
  if (input !== undefined) {
    p.child.stdin!.end(input);
  }
  return (await p).stdout.trim();
}

type RepoFile = string | { link: string } | { exec: string } | { gitlink: string };

/** A bare repo `name`.git under root with one commit of `files` (symlinks, executables and gitlinks allowed). */
async function makeRawRepo(root: string, name: string, files: Record<string, RepoFile>): Promise<string> {
  const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kiln-attack-repo-'));
  try {
    await git(work, ['init', '-q']);
    for (const [file, content] of Object.entries(files)) {
      const full = path.join(work, file);
      await fs.promises.mkdir(path.dirname(full), { recursive: true });
      if (typeof content === 'string') await fs.promises.writeFile(full, content);
      else if ('link' in content) await fs.promises.symlink(content.link, full);
      else if ('exec' in content) await fs.promises.writeFile(full, content.exec, { mode: 0o755 });
      if (typeof content === 'object' && 'gitlink' in content) {
        await git(work, ['update-index', '--add', '--cacheinfo', `160000,${content.gitlink},${file}`]);
      } else {
        await git(work, ['add', '--', file]);
      }
    }
    await git(work, ['commit', '-q', '-m', 'attack']);
    await git(root, ['clone', '-q', '--bare', '--', work, `${name}.git`]);
    return await git(work, ['rev-parse', 'HEAD']);
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

/** A bare repo whose only commit's tree holds `.git/hooks/post-checkout` (git itself refuses to add such a path). */
async function makeDotGitRepo(root: string, name: string, workflow: string): Promise<void> {
  const bare = path.join(root, `${name}.git`);
  await git(root, ['init', '-q', '--bare', bare]);
  const blob = async (text: string) => git(bare, ['hash-object', '-w', '--stdin'], text);
  const tree = async (lines: string[]) => git(bare, ['mktree'], lines.join('\n') + '\n');
  const hook = await blob('#!/bin/sh\ntouch /tmp/kiln-pwned-dotgit-hook\n');
  const hooks = await tree([`100755 blob ${hook}\tpost-checkout`]);
  const dotGit = await tree([`040000 tree ${hooks}\thooks`]);
  const kiln = await blob(workflow);
  const top = await tree([`100644 blob ${kiln}\t.kiln.yml`, `040000 tree ${dotGit}\t.git`]);
  const commit = await git(bare, ['commit-tree', '-m', 'dotgit', top]);
  await git(bare, ['update-ref', 'refs/heads/main', commit]);
}

// ---------------------------------------------------------------------------------------------
// Misbehaving remotes

interface SlowRemote {
  url: string;
  close: () => Promise<void>;
}

/** Accepts connections; `trickle` answers HTTP 200 then sends one byte every 250 ms forever, otherwise it never answers. */
async function slowRemote(trickle: boolean): Promise<SlowRemote> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    if (!trickle) return;
    sock.once('data', () => {
      sock.write(
        'HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: 1000000000\r\nCache-Control: no-cache\r\n\r\n',
      );
      const timer = setInterval(() => sock.write('0'), 250);
      sock.on('close', () => clearInterval(timer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/slow/${trickle ? 'trickle' : 'silent'}.git`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Processes whose command line mentions `needle` (a git left behind by a killed clone). */
async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await fs.promises.readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await fs.promises.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) found.push(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** 1-based line of the first line of `text` that contains `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `'${needle}' is in the text`);
  return i + 1;
}

interface Problem {
  path: string;
  line: number | null;
  message: string;
}

async function source(): Promise<Buffer> {
  return makeTar([['README.md', 'an innocent project\n']]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await p;
  return { value, ms: Date.now() - t0 };
}

describe(`attack: hostile inputs through the API (runtime ${RUNTIME})`, () => {
  let server: AttackServer;
  let kiln: Client;
  let watch: HostWatch;
  /** http + private hosts allowed, 1 MiB uploads (so clones are capped at 2 MiB): for local git remotes. */
  let gitServer: AttackServer;
  let gitKiln: Client;
  let gitWatch: HostWatch;
  let remote: GitServer;
  const gitRoot = tmpDir('kiln-attack-git-');
  const slow: SlowRemote[] = [];
  let slowClones: Promise<{ value: { status: number; message: string }; ms: number }>[] = [];
  /** A server of its own for the alias-amplification specs (they can hold its event loop for minutes). */
  let ampServer: AttackServer;
  let ampWatch: HostWatch;
  let amplification: Promise<{ name: string; error: unknown; ms: number }[]> | undefined;
  const ampHealth = { polls: 0, slowest: 0, failures: [] as string[], stop: false };

  before(async () => {
    // allSettled: whatever started is stopped by after() even when another start fails.
    const started = await Promise.allSettled([
      startAttackServer({
        KILN_ATTACK_HOST_ENV: HOST_ENV_VALUE,
        ATTACK_PLAIN_HOST_ENV: PLAIN_HOST_ENV_VALUE,
        KILN_UPLOAD_MAX: '8m',
        // Small workspaces keep the expansion budget of a source (and so a bomb's cost) small.
        KILN_JOB_WORKSPACE: '64m',
        KILN_JOB_WORKSPACE_MAX: '128m',
        KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000',
        KILN_QUOTA_QUEUED_RUNS: '1000',
      }),
      startAttackServer({
        KILN_GIT_SCHEMES: 'https,http',
        KILN_GIT_ALLOW_PRIVATE: 'true',
        KILN_UPLOAD_MAX: '1m',
        // The two slow remotes hold two clone places for the whole clone timeout (120 s): the other
        // repository cases need places of their own (KILN_CLONE_CONCURRENCY defaults to 2).
        KILN_CLONE_CONCURRENCY: '4',
        KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000',
        KILN_QUOTA_QUEUED_RUNS: '1000',
      }),
      startAttackServer({ KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000', KILN_QUOTA_QUEUED_RUNS: '1000' }),
      startGitServer(gitRoot),
    ] as const);
    const value = <T>(r: PromiseSettledResult<T>): T | undefined => (r.status === 'fulfilled' ? r.value : undefined);
    [server, gitServer, ampServer] = [value(started[0])!, value(started[1])!, value(started[2])!];
    remote = value(started[3])!;
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    kiln = server.kiln;
    gitKiln = gitServer.kiln;
    [watch, gitWatch, ampWatch] = await Promise.all([HostWatch.create(server), HostWatch.create(gitServer), HostWatch.create(ampServer)]);
    // The clone timeout is fixed (120 s): the slow remotes start now and are checked at the end.
    slow.push(await slowRemote(true), await slowRemote(false));
    slowClones = slow.map((s) => timed(refusal(gitKiln.submitJson({ repo: s.url, ref: 'main' }))));
    for (const c of slowClones) c.catch(() => undefined);
    // The amplification specs run in the background too; their test is at the end.
    void (async () => {
      while (!ampHealth.stop) {
        const t0 = Date.now();
        try {
          const res = await fetch(`${ampServer.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer();
          if (res.status !== 200) ampHealth.failures.push(`health answered ${res.status}`);
        } catch (e) {
          ampHealth.failures.push(`health: ${(e as Error).message} after ${Date.now() - t0} ms`);
        }
        ampHealth.slowest = Math.max(ampHealth.slowest, Date.now() - t0);
        ampHealth.polls++;
        await sleep(250);
      }
    })();
    amplification = (async () => {
      const on = { kiln: ampServer.kiln, watch: ampWatch };
      const out: { name: string; error: unknown; ms: number }[] = [];
      for (const [name, yaml] of [
        ['24 MB of env from a 247 KB spec', AMPLIFIED_ENV],
        ['the same times a 24-job matrix', AMPLIFIED_MATRIX],
      ]) {
        const t0 = Date.now();
        assert.ok(Buffer.byteLength(yaml) < 256 * 1024);
        const error = await refused(
          `alias amplification: ${name}`,
          async () => ampServer.kiln.submitTarball(await source(), { workflow: yaml }),
          400,
          /alias|too large|larger|expand|bytes/i,
          on,
        ).then(
          () => null,
          (e: unknown) => e,
        );
        out.push({ name, error, ms: Date.now() - t0 });
      }
      ampHealth.stop = true;
      return out;
    })();
    amplification.catch(() => undefined); // awaited (and reported) by its test
  });

  after(async () => {
    await Promise.allSettled([...slowClones, ...(amplification !== undefined ? [amplification] : [])]);
    ampHealth.stop = true;
    await Promise.all([server?.stop(), gitServer?.stop(), ampServer?.stop(), remote?.close(), ...slow.map((s) => s.close())]);
    watch?.cleanup();
    gitWatch?.cleanup();
    ampWatch?.cleanup();
    fs.rmSync(gitRoot, { recursive: true, force: true });
  });

  /** Sends, expects a refusal with `status` whose message matches, no run recorded, the host unchanged. */
  async function refused(
    what: string,
    send: () => Promise<Response>,
    status: number | number[],
    message: RegExp,
    on: { kiln: Client; watch: HostWatch } = { kiln, watch },
  ) {
    const before = await runCount(on.kiln);
    const r = await refusal(send());
    assert.ok((Array.isArray(status) ? status : [status]).includes(r.status), `${what}: answered ${r.status}, expected ${status}: ${r.message}`);
    assert.match(r.message, message, `${what}: the message says what is wrong`);
    on.watch.assertNoLeak(r.message, what);
    const [after] = await Promise.all([runCount(on.kiln), on.watch.assertUnchanged(what)]);
    assert.equal(after, before, `${what}: no run was recorded`);
    return r;
  }

  /** A refused workflow: 400, the problem at `problemPath` on the line holding `needle`, its message matching. */
  async function refusedWorkflow(
    what: string,
    send: () => Promise<Response>,
    yaml: string,
    expected: { path: string; needle: string | null; message: RegExp }[],
  ) {
    const r = await refused(what, send, 400, /is not valid/);
    const problems = (r.body.problems ?? []) as Problem[];
    for (const e of expected) {
      const p = problems.find((x) => x.path === e.path && e.message.test(x.message));
      assert.ok(p, `${what}: a problem at ${e.path} matching ${e.message}; got ${JSON.stringify(problems)}`);
      assert.equal(p.line, e.needle === null ? null : lineOf(yaml, e.needle), `${what}: the line of ${e.path}`);
      assert.ok(r.message.includes(e.path), `${what}: the message names ${e.path}`);
    }
    return r;
  }

  const viaField = (yaml: string) => async () => kiln.submitTarball(await source(), { workflow: yaml });

  // =============================================================================================
  describe('tarballs (multipart `source`)', () => {
    const tarCases: { name: string; tar: () => Promise<Buffer> | Buffer; status?: number | number[]; message: RegExp }[] = [
      // Traversal, absolute and backslash names
      {
        name: 'traversal ../',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['../kiln-pwned', 'x'],
          ]),
        message: /entry '\.\.\/kiln-pwned': path leaves the workspace/,
      },
      {
        name: 'traversal ../../../../tmp',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['../../../../tmp/kiln-pwned', 'x'],
          ]),
        message: /path leaves the workspace/,
      },
      {
        name: 'traversal hidden in the middle a/../../',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['a/../../kiln-pwned', 'x'],
          ]),
        message: /'a\/\.\.\/\.\.\/kiln-pwned': path leaves the workspace/,
      },
      {
        name: 'traversal ./../',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['./../kiln-pwned', 'x'],
          ]),
        message: /path leaves the workspace/,
      },
      {
        name: 'traversal through a pax path record',
        tar: () => withWorkflow(pax({ path: '../../tmp/kiln-pwned' }), rawEntry({ name: 'innocent', type: '0' }, 'x')),
        message: /'\.\.\/\.\.\/tmp\/kiln-pwned': path leaves the workspace/,
      },
      {
        name: 'traversal through a GNU long name',
        tar: () =>
          withWorkflow(
            rawEntry({ name: '././@LongLink', type: 'L', gnu: true }, `${'../'.repeat(40)}tmp/kiln-pwned\0`),
            rawEntry({ name: 'innocent', type: '0', gnu: true }, 'x'),
          ),
        message: /path leaves the workspace/,
      },
      {
        name: 'absolute /tmp/kiln-pwned',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['/tmp/kiln-pwned', 'x'],
          ]),
        message: /entry '\/tmp\/kiln-pwned': absolute paths are not allowed/,
      },
      {
        name: 'absolute /etc/cron.d/kiln-pwned',
        tar: () => withWorkflow(rawEntry({ name: '/etc/cron.d/kiln-pwned', type: '0' }, '* * * * * root touch /tmp/kiln-pwned\n')),
        message: /absolute paths are not allowed/,
      },
      {
        name: 'absolute via a Windows drive C:/',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['C:/kiln-pwned', 'x'],
          ]),
        message: /absolute paths are not allowed/,
      },
      {
        name: 'backslash ..\\..\\kiln-pwned',
        tar: () => withWorkflow(rawEntry({ name: '..\\..\\kiln-pwned', type: '0' }, 'x')),
        message: /backslashes are not allowed/,
      },
      {
        name: 'backslash UNC \\\\host\\share',
        tar: () => withWorkflow(rawEntry({ name: '\\\\host\\share\\kiln-pwned', type: '0' }, 'x')),
        message: /absolute paths are not allowed/,
      },
      {
        name: 'control characters in a name (newline forging a log line)',
        tar: () => withWorkflow(rawEntry({ name: 'a\nrun completed: success', type: '0' }, 'x')),
        message: /'a\\x0arun completed: success': the name contains control characters/,
      },
      {
        name: 'NUL inside a pax path',
        tar: () => withWorkflow(pax({ path: 'ok.txt\0../../kiln-pwned' }), rawEntry({ name: 'x', type: '0' }, 'x')),
        message: /control characters/,
      },
      // Symlinks and hard links
      {
        name: 'symlink to /etc',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'etc', type: 'symlink', linkname: '/etc' }]),
        message: /entry 'etc': symlink target '\/etc' is absolute/,
      },
      {
        name: 'symlink to the canary secret (absolute)',
        tar: async () => makeTar([['.kiln.yml', WORKFLOW], { name: 'canary', type: 'symlink', linkname: watch.secretPath }]),
        message: /symlink target '.*secret\.txt' is absolute/,
      },
      {
        name: 'symlink to ..',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'up', type: 'symlink', linkname: '..' }]),
        message: /entry 'up': symlink target '\.\.' points outside the workspace/,
      },
      {
        name: 'symlink sub/up -> ../../etc/passwd',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'sub/', type: 'directory' }, { name: 'sub/up', type: 'symlink', linkname: '../../etc/passwd' }]),
        message: /points outside the workspace/,
      },
      {
        name: "symlink with '..' after a name (sub/../..)",
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'l', type: 'symlink', linkname: 'sub/../..' }]),
        message: /has '\.\.' after a directory name/,
      },
      { name: 'symlink with a backslash target', tar: () => withWorkflow(rawEntry({ name: 'l', type: '2', linkname: '..\\..\\etc' })), message: /is absolute/ },
      {
        name: 'symlink with an empty target',
        tar: () => withWorkflow(rawEntry({ name: 'l', type: '2', linkname: '' })),
        message: /symlink has an empty target/,
      },
      {
        name: 'symlink carrying data',
        tar: () => withWorkflow(rawEntry({ name: 'l', type: '2', linkname: 'README', size: 512 }, Buffer.alloc(512, 0x41))),
        message: /a symlink entry must not carry data/,
      },
      {
        name: 'hard link to /etc/passwd',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'passwd', type: 'link', linkname: '/etc/passwd' }]),
        message: /entry 'passwd': hard links are not accepted/,
      },
      {
        name: 'hard link to ../../etc/shadow',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'shadow', type: 'link', linkname: '../../etc/shadow' }]),
        message: /hard links are not accepted/,
      },
      {
        name: 'hard link to a file inside the archive',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], ['a.txt', 'a'], { name: 'b.txt', type: 'link', linkname: 'a.txt' }]),
        message: /hard links are not accepted/,
      },
      // Link-then-write
      {
        name: 'symlink d -> /tmp, then d/kiln-pwned',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'd', type: 'symlink', linkname: '/tmp' }, ['d/kiln-pwned', 'x']]),
        message: /entry 'd': symlink target '\/tmp' is absolute/,
      },
      {
        name: 'symlink d -> sub (inside), then d/kiln-pwned through it',
        tar: () =>
          makeTar([['.kiln.yml', WORKFLOW], { name: 'sub/', type: 'directory' }, { name: 'd', type: 'symlink', linkname: 'sub' }, ['d/kiln-pwned', 'x']]),
        message: /entry 'd\/kiln-pwned': path goes through the symlink 'd' from an earlier entry/,
      },
      {
        name: 'symlink d -> ., then d/./x through it',
        tar: () => withWorkflow(rawEntry({ name: 'd', type: '2', linkname: '.' }), rawEntry({ name: 'd/./x', type: '0' }, 'x')),
        message: /path goes through the symlink 'd'/,
      },
      {
        name: 'a symlink replacing a directory that holds files',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], ['x/file', 'x'], { name: 'x', type: 'symlink', linkname: 'README' }]),
        message: /'x' is already a directory holding earlier entries/,
      },
      {
        name: 'a file, then an entry below it',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['f', 'x'],
            ['f/g', 'y'],
          ]),
        message: /its parent 'f' is a regular file/,
      },
      // Special files
      {
        name: 'character device (like /dev/mem)',
        tar: () => withWorkflow(rawEntry({ name: 'mem', type: '3' })),
        message: /entry 'mem': character devices are not accepted/,
      },
      { name: 'block device (like /dev/sda)', tar: () => withWorkflow(rawEntry({ name: 'sda', type: '4' })), message: /block devices are not accepted/ },
      { name: 'FIFO', tar: () => withWorkflow(rawEntry({ name: 'pipe', type: '6' })), message: /FIFOs \(named pipes\) are not accepted/ },
      { name: 'contiguous file', tar: () => withWorkflow(rawEntry({ name: 'contig', type: '7' }, 'x')), message: /contiguous files are not accepted/ },
      { name: 'GNU volume label', tar: () => withWorkflow(rawEntry({ name: 'label', type: 'V', gnu: true })), message: /unknown type/ },
      {
        name: 'directory entry carrying data (headers smuggled in its body)',
        tar: () => withWorkflow(rawEntry({ name: 'dir/', type: '5', size: 512 }, header({ name: '../kiln-pwned', type: '0' }))),
        message: /a directory entry must not carry data/,
      },
      // Size bombs
      {
        name: 'sparse giant: GNU sparse entry claiming 8 GiB',
        tar: () => withWorkflow(rawEntry({ name: 'sparse.img', type: 'S', gnu: true, realSize: Buffer.from(octal(0o77777777777, 12), 'latin1') })),
        message: /entries of an unknown type \(e\.g\. sparse files/,
      },
      {
        name: 'a header claiming 8 GiB (octal maximum), no data',
        tar: () =>
          gzipSync(Buffer.concat([rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW), header({ name: 'giant.bin', type: '0', size: 0o77777777777 })])),
        message: /entry 'giant\.bin': file is 8\.0 GiB, over the limit of 128 MiB per file/,
      },
      {
        name: 'a header claiming 2^62 bytes (base-256)',
        tar: () =>
          gzipSync(
            Buffer.concat([rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW), header({ name: 'giant.bin', type: '0', rawSize: base256(2n ** 62n) })]),
          ),
        message: /file is .* TiB, over the limit of 128 MiB per file/,
      },
      {
        name: 'a header with a negative base-256 size',
        tar: () =>
          gzipSync(
            Buffer.concat([
              rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW),
              header({ name: 'neg.bin', type: '0', rawSize: base256(1024n, true) }),
              Buffer.alloc(1024),
            ]),
          ),
        message: /not a valid tar or tar\.gz/,
      },
      {
        name: 'a pax size of 10^20',
        tar: () => withWorkflow(pax({ size: '100000000000000000000' }), rawEntry({ name: 'giant.bin', type: '0', size: 0 })),
        message: /file is .*, over the limit of 128 MiB per file/,
      },
      {
        name: 'a pax size that is not a number',
        tar: () => withWorkflow(pax({ size: 'NaN' }), rawEntry({ name: 'nan.bin', type: '0', size: 0 })),
        message: /not a valid tar or tar\.gz/,
      },
      {
        name: 'files adding up past the expanded limit (3 x 64 MiB of zeros)',
        tar: () =>
          Buffer.concat([
            gzipSync(rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW)),
            ...[1, 2, 3].flatMap((i) => [gzipSync(header({ name: `zeros-${i}`, type: '0', size: 64 * MiB })), gzippedZeros64MiB()]),
            gzipSync(Buffer.alloc(1024)),
          ]),
        status: [400, 413],
        message: /the files add up to more than 128 MiB uncompressed/,
      },
      // Deep and wide trees
      {
        name: 'deep tree: 3000 nested directories',
        tar: () =>
          withWorkflow(...Array.from({ length: 3000 }, (_, i) => Buffer.concat([pax({ path: 'd/'.repeat(i + 1) }), rawEntry({ name: 'd', type: '5' })]))),
        message: /path is 33 levels deep, over the limit of 32; flatten the directory tree/,
      },
      {
        name: 'a 2011-byte path',
        status: [400, 413],
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            [`${Array(10).fill('n'.repeat(200)).join('/')}/f`, 'x'],
          ]),
        message: /path is 2011 bytes long, over the limit of 1024/,
      },
      {
        name: 'wide tree: 25 000 files',
        tar: () => withWorkflow(...Array.from({ length: 25000 }, (_, i) => header({ name: `w/${i}`, type: '0', size: 0 }))),
        message: /the archive has more than 20000 entries/,
      },
      // Duplicates
      {
        name: 'duplicate name',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['a.txt', 'one'],
            ['a.txt', 'two'],
          ]),
        message: /entry 'a\.txt': duplicate name: 'a\.txt' appears more than once/,
      },
      {
        name: 'duplicate name spelled ./a.txt and a//./a.txt',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], { name: 'a/', type: 'directory' }, ['a/a.txt', 'one'], ['./a//./a.txt', 'two']]),
        message: /duplicate name: 'a\/a\.txt'/,
      },
      {
        name: 'duplicate .kiln.yml (a second workflow overriding the first)',
        tar: () =>
          makeTar([
            ['.kiln.yml', WORKFLOW],
            ['./.kiln.yml', 'jobs:\n  a:\n    runs-on: python-3.11\n    container: alpine\n    steps: [{run: id}]\n'],
          ]),
        message: /duplicate name: '\.kiln\.yml'/,
      },
      {
        name: 'a file and a symlink of the same name',
        tar: () => makeTar([['.kiln.yml', WORKFLOW], ['x', 'one'], { name: 'x', type: 'symlink', linkname: '/etc/passwd' }]),
        message: /symlink target '\/etc\/passwd' is absolute|duplicate name/,
      },
      // Not a tarball
      { name: 'garbage', tar: () => Buffer.from('this is not a tarball at all, just text'), message: /not a valid tar or tar\.gz/ },
      { name: 'random bytes', tar: () => randomBytes(4096), message: /not a valid tar or tar\.gz/ },
      {
        name: 'gzip magic, then garbage',
        tar: () => Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(2000)]),
        message: /not a valid tar or tar\.gz/,
      },
      { name: 'a gzip of text', tar: () => gzipSync('hello world, no tar here'), message: /not a valid tar or tar\.gz/ },
      {
        name: 'a truncated tar.gz',
        tar: async () =>
          (
            await makeTar([
              ['.kiln.yml', WORKFLOW],
              ['big.bin', randomBytes(100_000).toString('base64')],
            ])
          ).subarray(0, 5000),
        message: /not a valid tar or tar\.gz/,
      },
      { name: 'a zip file', tar: () => Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), randomBytes(200)]), message: /not a valid tar or tar\.gz/ },
      { name: 'an empty file', tar: () => Buffer.alloc(0), message: /the archive is empty/ },
      { name: 'a tar of only end-of-archive blocks', tar: () => Buffer.alloc(10240), message: /the archive is empty/ },
    ];

    for (const c of tarCases) {
      test(`refused: ${c.name}`, async () => {
        const tar = await c.tar();
        await sleep(50); // building a big tar blocks the loop: let idle keep-alive sockets close first
        await refused(c.name, () => kiln.submitTarball(tar), c.status ?? 400, c.message);
      });
    }

    test('refused: gzip bomb, a 1 GiB file of zeros (1 MiB compressed) is refused at its header', async () => {
      const zeros = gzippedZeros64MiB();
      const bomb = Buffer.concat([
        gzipSync(rawEntry({ name: '.kiln.yml', type: '0' }, WORKFLOW)),
        gzipSync(header({ name: 'zeros.bin', type: '0', size: 1024 * MiB })),
        ...Array.from({ length: 16 }, () => zeros),
        gzipSync(Buffer.alloc(1024)),
      ]);
      assert.ok(bomb.length < 2 * MiB, `the bomb is small (${bomb.length} bytes)`);
      const { ms } = await timed(
        refused('1 GiB zeros file', () => kiln.submitTarball(bomb), 400, /entry 'zeros\.bin': file is 1 GiB, over the limit of 128 MiB per file/),
      );
      assert.ok(ms < 10_000, `refused in ${ms} ms`);
    });

    test('refused: gzip bomb, 2 GiB of zero blocks (2 MiB compressed) stops at the expansion budget; health answers meanwhile', async () => {
      const bomb = Buffer.concat(Array.from({ length: 32 }, () => gzippedZeros64MiB()));
      let slowest = 0;
      let polls = 0;
      let done = false;
      const poller = (async () => {
        while (!done) {
          const t0 = Date.now();
          const res = await fetch(`${kiln.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
          slowest = Math.max(slowest, Date.now() - t0);
          polls++;
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      try {
        const { ms } = await timed(
          refused(
            '2 GiB zero blocks',
            () => kiln.submitTarball(bomb),
            400,
            /the archive expands to more than .* of tar data; it looks like a compression bomb/,
          ),
        );
        assert.ok(ms < 60_000, `refused in ${ms} ms`);
      } finally {
        done = true;
        await poller;
      }
      assert.ok(polls >= 1 && slowest < 5000, `health answered during the bomb (${polls} polls, slowest ${slowest} ms)`);
    });

    test('refused: an upload over KILN_UPLOAD_MAX (8 MiB) is 413 naming the limit', async () => {
      const big = randomBytes(9 * MiB);
      await refused('9 MiB upload', () => kiln.submitTarball(big), 413, /the upload is too large: the limit is 8388608 bytes \(KILN_UPLOAD_MAX\)/);
    });

    test('refused: multipart without a `source` file, and a multipart body that ends early', async () => {
      await refused(
        'multipart without source',
        async () => {
          const form = new FormData();
          form.append('workflow', WORKFLOW);
          return kiln.fetch('/api/v1/runs', { method: 'POST', body: form });
        },
        400,
        /multipart submissions need a `source` file/,
      );
      await refused(
        'two source files',
        async () => {
          const form = new FormData();
          form.append('source', new Blob([await source()]), 'a.tar.gz');
          form.append('source', new Blob([await source()]), 'b.tar.gz');
          return kiln.fetch('/api/v1/runs', { method: 'POST', body: form });
        },
        400,
        /Unexpected field|too many|source/i,
      );
      await refused(
        'an empty multipart body',
        () =>
          kiln.fetch('/api/v1/runs', {
            method: 'POST',
            headers: { 'content-type': 'multipart/form-data; boundary=kilnboundary' },
            body: '',
          }),
        400,
        /multipart|form|source/i,
      );
      await refused(
        'a multipart body cut inside the source',
        () =>
          kiln.fetch('/api/v1/runs', {
            method: 'POST',
            headers: { 'content-type': 'multipart/form-data; boundary=kilnboundary' },
            body: '--kilnboundary\r\nContent-Disposition: form-data; name="source"; filename="p.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n\x1f\x8b\x08\x00partial',
          }),
        400,
        /multipart|form|end/i,
      );
    });

    test('refused: empty and non-object bodies', async () => {
      await refused(
        'no body at all',
        () => kiln.fetch('/api/v1/runs', { method: 'POST' }),
        400,
        /send either \{repo, ref\} \(a git repository\) or \{command\}|the body must be a JSON object/,
      );
      await refused(
        'JSON null',
        () => kiln.fetch('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'null' }),
        400,
        /JSON|object|token/i,
      );
      await refused('JSON array', () => kiln.submitJson([{ command: 'id' }]), 400, /the body must be a JSON object/);
      await refused(
        'malformed JSON',
        () => kiln.fetch('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"command": ' }),
        400,
        /JSON|Unexpected|position/i,
      );
      await refused(
        'a 7 MB JSON body',
        () => kiln.submitJson({ command: 'true', files: { 'a.txt': 'x'.repeat(7 * MiB) } }),
        413,
        /the request body is too large/,
      );
    });

    test('accepted: symlinks inside the workspace work in the job; modes are tamed; nothing on the host changes', async () => {
      const job = `jobs:
  links:
    runs-on: python-3.11
    steps:
      - run: |
          echo "link=[$(cat link)] up=[$(cat sub/up)] root=[$(cat deep/a/b/root/top.txt)]"
          echo "readlink=[$(readlink link)]"
          echo "uid=[$(id -u)]"
      # python's os.stat, not coreutils' stat: see the report on statx under runsc.
      - shell: python
        run: |
          import os
          st = lambda p: os.stat(p)
          print(f"dirlink=[{' '.join(sorted(os.listdir('dirlink')))}]")
          print(f"suid=[{st('suid.sh').st_mode & 0o7777:o} {st('suid.sh').st_uid}] world=[{st('world.txt').st_mode & 0o7777:o}]")
          print(f"sparse=[{st('GNUSparseFile.0/huge.img').st_size}] huge=[{'present' if os.path.lexists('huge.img') else 'absent'}]")
      - run: |
          cat ${watch.secretPath} 2>&1 || echo "canary=[unreachable]"
          ln -s /etc/shadow shadow-link && (cat shadow-link 2>&1 | head -c 200; echo) || true
`;
      const tar = gzipSync(
        rawTar(
          rawEntry({ name: '.kiln.yml', type: '0' }, job),
          rawEntry({ name: 'top.txt', type: '0' }, 'top-content\n'),
          rawEntry({ name: 'sub/', type: '5', mode: 0o755 }),
          rawEntry({ name: 'sub/file.txt', type: '0' }, 'sub-content\n'),
          rawEntry({ name: 'link', type: '2', linkname: 'sub/file.txt' }),
          rawEntry({ name: 'sub/up', type: '2', linkname: '../top.txt' }),
          rawEntry({ name: 'dirlink', type: '2', linkname: 'sub' }),
          rawEntry({ name: 'deep/a/b/root', type: '2', linkname: '../../..' }),
          rawEntry({ name: 'suid.sh', type: '0', mode: 0o6777 }, '#!/bin/sh\nid\n'),
          rawEntry({ name: 'world.txt', type: '0', mode: 0o666 }, 'w\n'),
          // PAX sparse 1.0 records: stripped by the sanitizer, so GNU tar in the job sees a plain small file.
          pax({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'huge.img', 'GNU.sparse.realsize': '1099511627776' }),
          rawEntry({ name: 'GNUSparseFile.0/huge.img', type: '0' }, '1\n1099511627775\n1\n'),
        ),
      );
      const accepted = await kiln.accepted(kiln.submitTarball(tar));
      const done = await kiln.waitFor(accepted.id, 120_000);
      const log = await kiln.logs(accepted.id);
      assert.equal(done.conclusion, 'success', `${JSON.stringify(done.jobs)}\n${log}`);
      assert.match(log, /link=\[sub-content\] up=\[top-content\] root=\[top-content\]/);
      assert.match(log, /dirlink=\[file\.txt up\]/);
      assert.match(log, /readlink=\[sub\/file\.txt\]/);
      assert.match(log, /suid=\[755 1001\] world=\[644\]/, 'setuid/setgid and group/other write are dropped; the job user owns the files');
      assert.match(log, /sparse=\[\d{1,3}\] huge=\[absent\]/, 'the pax sparse records were not honoured');
      assert.match(log, /uid=\[1001\]/);
      assert.match(log, /No such file or directory/);
      watch.assertNoLeak(log, 'symlink job log');
      await watch.assertUnchanged('symlinks inside the workspace');
    });

    test('the service still serves after the tarball attacks', async () => {
      await assertServing(kiln, 'after tarball attacks');
      await watch.assertUnchanged('after tarball attacks');
    });
  });

  // =============================================================================================
  describe('repository URLs and refs (default: https only, public hosts only)', () => {
    const RE_OPTION = /repo: the repository URL must not start with '-'/;
    const RE_NOT_URL = /repo: '.*' is not a URL \(local paths are not accepted\); allowed schemes: https:\/\//;
    const RE_SCHEME = (s: string) => new RegExp(`repo: the URL scheme '${s}' is not accepted; allowed schemes: https://`);
    const RE_PRIVATE = (host: string) =>
      new RegExp(`repo: the host '${host.replace(/[.[\]]/g, '\\$&')}' is a private or local address \\(.+\\); only public hosts are accepted`);
    const RE_REF_DASH = /repo: the ref '.*' must not start with '-'/;

    const repoCases: { name: string; repo: string | (() => string); ref?: string; message: RegExp }[] = [
      // Option injection as the URL
      { name: '-u as the URL', repo: '-utouch /tmp/kiln-pwned', message: RE_OPTION },
      { name: '--upload-pack=', repo: '--upload-pack=touch /tmp/kiln-pwned', message: RE_OPTION },
      { name: '--upload-pack (separate value)', repo: '--upload-pack', message: RE_OPTION },
      { name: '-c core.sshCommand=', repo: '-c core.sshCommand=touch /tmp/kiln-pwned', message: RE_OPTION },
      { name: '-ccore.sshCommand=', repo: '-ccore.sshCommand=touch${IFS}/tmp/kiln-pwned', message: RE_OPTION },
      { name: '--config=core.hooksPath=', repo: '--config=core.hooksPath=/tmp', message: RE_OPTION },
      { name: '--template=', repo: '--template=/tmp', message: RE_OPTION },
      { name: '-oProxyCommand=', repo: '-oProxyCommand=touch /tmp/kiln-pwned', message: RE_OPTION },
      { name: 'leading space then --upload-pack', repo: ' --upload-pack=touch /tmp/kiln-pwned', message: RE_NOT_URL },
      { name: 'leading tab then -c', repo: '\t-c core.sshCommand=touch /tmp/kiln-pwned', message: RE_NOT_URL },
      { name: 'leading newline then --config', repo: '\n--config=core.sshCommand=touch /tmp/kiln-pwned', message: RE_NOT_URL },
      { name: 'percent-encoded %2D%2Dupload-pack', repo: '%2D%2Dupload-pack=touch%20/tmp/kiln-pwned', message: RE_NOT_URL },
      { name: 'unicode dashes ‐‐upload-pack', repo: '\u2010\u2010upload-pack=touch /tmp/kiln-pwned', message: RE_NOT_URL },
      {
        name: 'a URL followed by an option',
        repo: 'https://github.com/kiln/demo.git --upload-pack=touch /tmp/kiln-pwned',
        message: /whitespace or control characters/,
      },
      {
        name: 'a URL with a newline and an option',
        repo: 'https://github.com/kiln/demo.git\n--upload-pack=touch',
        message: /whitespace or control characters/,
      },
      // Option injection as the ref (checked before any network)
      { name: 'ref --upload-pack=', repo: 'https://github.com/kiln/demo.git', ref: '--upload-pack=touch /tmp/kiln-pwned', message: RE_REF_DASH },
      { name: 'ref -c', repo: 'https://github.com/kiln/demo.git', ref: '-c', message: RE_REF_DASH },
      { name: 'ref -ccore.sshCommand=', repo: 'https://github.com/kiln/demo.git', ref: '-ccore.sshCommand=touch', message: RE_REF_DASH },
      { name: 'ref --output=', repo: 'https://github.com/kiln/demo.git', ref: '--output=/tmp/kiln-pwned', message: RE_REF_DASH },
      {
        name: 'ref with leading space',
        repo: 'https://github.com/kiln/demo.git',
        ref: ' --upload-pack=touch',
        message: /the ref contains whitespace or control characters/,
      },
      {
        name: 'ref with a shell command',
        repo: 'https://github.com/kiln/demo.git',
        ref: 'main;touch${IFS}/tmp/kiln-pwned',
        message: /may only contain letters, digits/,
      },
      { name: 'ref with $(...)', repo: 'https://github.com/kiln/demo.git', ref: '$(touch${IFS}/tmp/kiln-pwned)', message: /may only contain letters, digits/ },
      { name: 'ref with a refspec', repo: 'https://github.com/kiln/demo.git', ref: 'main:refs/heads/x', message: /may only contain letters, digits/ },
      { name: 'ref climbing ../', repo: 'https://github.com/kiln/demo.git', ref: '../../etc/passwd', message: /must not contain '\.\.'/ },
      { name: 'ref with @{', repo: 'https://github.com/kiln/demo.git', ref: 'HEAD@{-1}', message: /must not contain '@\{'/ },
      // Dangerous transports and local paths
      { name: 'ext::sh -c touch% /tmp/kiln-pwned', repo: 'ext::sh -c touch% /tmp/kiln-pwned', message: RE_SCHEME('ext') },
      { name: 'fd::3', repo: 'fd::3', message: RE_SCHEME('fd') },
      { name: 'file:///etc', repo: 'file:///etc', message: RE_SCHEME('file') },
      { name: 'FILE:///etc (upper case)', repo: 'FILE:///etc', message: RE_SCHEME('file') },
      { name: 'file:// the canary dir', repo: () => `file://${watch.canaryDir}`, message: RE_SCHEME('file') },
      { name: 'ssh://', repo: 'ssh://git@127.0.0.1/srv/x.git', message: RE_SCHEME('ssh') },
      { name: 'git://', repo: 'git://127.0.0.1/x.git', message: RE_SCHEME('git') },
      { name: 'http:// (only https is on)', repo: 'http://github.com/kiln/demo.git', message: RE_SCHEME('http') },
      { name: 'the canary dir as a path', repo: () => watch.canaryDir, message: RE_NOT_URL },
      { name: '/tmp', repo: '/tmp', message: RE_NOT_URL },
      { name: './x', repo: './x', message: RE_NOT_URL },
      { name: '~', repo: '~', message: RE_NOT_URL },
      { name: '~root/.ssh', repo: '~root/.ssh', message: RE_NOT_URL },
      { name: '..', repo: '..', message: RE_NOT_URL },
      {
        name: 'scp-like git@host:path',
        repo: 'git@github.com:kiln/demo.git',
        message: /scp-like SSH addresses such as 'git@github\.com:kiln\/demo\.git' are not accepted/,
      },
      { name: 'scp-like 127.0.0.1:/etc', repo: '127.0.0.1:/etc', message: /scp-like SSH addresses/ },
      {
        name: 'scp-like localhost:canary (parsed as a scheme)',
        repo: () => `localhost:${watch.canaryDir}`,
        message: /scp-like SSH addresses|the URL scheme 'localhost' is not accepted/,
      },
      { name: 'credentials in the URL', repo: 'https://user:token@github.com/kiln/demo.git', message: /credentials in the URL are not accepted/ },
      // Internal addresses
      { name: '127.0.0.1 (our own git server)', repo: () => remote.repoUrl('demo').replace('http:', 'https:'), message: RE_PRIVATE('127.0.0.1') },
      { name: 'localhost', repo: 'https://localhost/kiln/demo.git', message: RE_PRIVATE('localhost') },
      { name: 'LOCALHOST:3000 (case, port)', repo: 'https://LOCALHOST:3000/x.git', message: RE_PRIVATE('localhost') },
      { name: 'a name under .localhost', repo: 'https://kiln.localhost/x.git', message: RE_PRIVATE('kiln.localhost') },
      { name: '10.x', repo: 'https://10.0.0.1/x.git', message: RE_PRIVATE('10.0.0.1') },
      { name: '172.16.x', repo: 'https://172.16.0.1/x.git', message: RE_PRIVATE('172.16.0.1') },
      { name: '192.168.x', repo: 'https://192.168.1.1/x.git', message: RE_PRIVATE('192.168.1.1') },
      { name: 'CGNAT 100.64.x', repo: 'https://100.64.0.1/x.git', message: RE_PRIVATE('100.64.0.1') },
      { name: 'cloud metadata 169.254.169.254', repo: 'https://169.254.169.254/latest/meta-data/', message: RE_PRIVATE('169.254.169.254') },
      { name: '0.0.0.0', repo: 'https://0.0.0.0/x.git', message: RE_PRIVATE('0.0.0.0') },
      { name: '[::1]', repo: 'https://[::1]/x.git', message: RE_PRIVATE('[::1]') },
      { name: '[::]', repo: 'https://[::]/x.git', message: RE_PRIVATE('[::]') },
      { name: 'IPv4-mapped [::ffff:127.0.0.1]', repo: 'https://[::ffff:127.0.0.1]/x.git', message: /is a private or local address/ },
      { name: 'ULA [fd00::1]', repo: 'https://[fd00::1]/x.git', message: RE_PRIVATE('[fd00::1]') },
      { name: 'link-local [fe80::1]', repo: 'https://[fe80::1]/x.git', message: RE_PRIVATE('[fe80::1]') },
      { name: 'hex 0x7f000001', repo: 'https://0x7f000001/x.git', message: RE_PRIVATE('127.0.0.1') },
      { name: 'decimal 2130706433', repo: 'https://2130706433/x.git', message: RE_PRIVATE('127.0.0.1') },
      { name: 'octal 0177.0.0.1', repo: 'https://0177.0.0.1/x.git', message: RE_PRIVATE('127.0.0.1') },
      { name: 'short 127.1', repo: 'https://127.1/x.git', message: RE_PRIVATE('127.0.0.1') },
      { name: 'bare 0', repo: 'https://0/x.git', message: RE_PRIVATE('0.0.0.0') },
    ];

    for (const c of repoCases) {
      test(`refused: repo ${c.name}`, async () => {
        const before = remote.requestCount();
        const repo = typeof c.repo === 'function' ? c.repo() : c.repo;
        await refused(c.name, () => kiln.submitJson({ repo, ref: c.ref ?? 'main' }), 400, c.message);
        assert.equal(remote.requestCount(), before, `${c.name}: no request reached the local git server`);
      });
    }

    test("refused: a host name that resolves to loopback (this machine's own name)", async () => {
      const name = os.hostname();
      const addresses = await dns.lookup(name, { all: true }).catch(() => []);
      assert.ok(addresses.length > 0, `${name} resolves`);
      const loop = addresses.find((a) => a.address.startsWith('127.') || a.address === '::1');
      if (!loop) {
        // A private address is refused the same way.
        assert.ok(
          addresses.some((a) => /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|fd|fe80)/.test(a.address)),
          `${name} resolves to ${JSON.stringify(addresses)}`,
        );
      }
      await refused(`host ${name}`, () => kiln.submitJson({ repo: `https://${name}/kiln/demo.git`, ref: 'main' }), 400, RE_PRIVATE(name.toLowerCase()));
    });

    test('refused: malformed repo submissions (types, lengths, extra fields) before any clone', async () => {
      await refused('repo not a string', () => kiln.submitJson({ repo: ['--upload-pack=touch /tmp/kiln-pwned'], ref: 'main' }), 400, /repo must be a string/);
      await refused('ref not a string', () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: { $gt: '' } }), 400, /ref must be a string/);
      await refused('no ref', () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git' }), 400, /ref is required with repo/);
      await refused(
        'a 3000-character URL',
        () => kiln.submitJson({ repo: `https://github.com/${'a'.repeat(3000)}`, ref: 'main' }),
        400,
        /repo must be shorter than or equal to 2048 characters/,
      );
      await refused(
        'a 300-character ref',
        () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: 'a'.repeat(300) }),
        400,
        /ref must be shorter than or equal to 255 characters/,
      );
      await refused(
        'an unknown field (git options smuggled as a field)',
        () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: 'main', gitArgs: ['--upload-pack=touch /tmp/kiln-pwned'] }),
        400,
        /property gitArgs should not exist/,
      );
      await refused(
        'repo with quick-form fields',
        () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: 'main', environment: 'docker://alpine' }),
        400,
        /files, shell and environment belong to the quick form/,
      );
      await refused(
        'repo with a platform mapping to an image',
        () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: 'main', platform: { 'ubuntu-latest': 'docker://alpine' } }),
        400,
        /platform: 'ubuntu-latest' must map a runs-on label to an environment name/,
      );
    });

    test('the service still serves after the repository attacks', async () => {
      await assertServing(kiln, 'after repository attacks');
      await watch.assertUnchanged('after repository attacks');
    });
  });

  // =============================================================================================
  describe('job specs (the `workflow` field, a .kiln.yml, the quick form)', () => {
    const ALIAS_BOMB = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...'bcdefghij'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(',')}]`),
      'jobs:',
      '  test:',
      '    runs-on: python-3.11',
      '    steps:',
      '      - run: echo *j',
      '',
    ].join('\n');

    test('refused: YAML alias bomb (billion laughs)', async () => {
      await refusedWorkflow('alias bomb', viaField(ALIAS_BOMB), ALIAS_BOMB, [
        { path: '(workflow)', needle: null, message: /the YAML aliases expand too much/ },
      ]);
    });

    test('refused: alias bomb as .kiln.yml in the tarball', async () => {
      const tar = await makeTar([['.kiln.yml', ALIAS_BOMB]]);
      await refused(
        'alias bomb in .kiln.yml',
        () => kiln.submitTarball(tar),
        400,
        /the workflow \.kiln\.yml is not valid:\n\(workflow\): the YAML aliases expand too much/,
      );
    });

    const nesting: { name: string; yaml: string }[] = [
      { name: '10 000 levels of [', yaml: `jobs: ${'['.repeat(10000)}${']'.repeat(10000)}\n` },
      { name: '10 000 levels of {', yaml: `jobs: ${'{a: '.repeat(10000)}1${'}'.repeat(10000)}\n` },
      { name: '10 000 unclosed [', yaml: `jobs: ${'['.repeat(10000)}\n` },
      { name: '5000 levels of "- " on one line', yaml: `jobs:\n  a:\n    ${'- '.repeat(5000)}x\n` },
      {
        name: '700 levels of indented mappings (below the pre-scan, caught on the parsed nodes)',
        yaml: `jobs:\n${Array.from({ length: 700 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')} 1\n`,
      },
    ];
    for (const c of nesting) {
      test(`refused: deep nesting, ${c.name}`, async () => {
        const { value: r, ms } = await timed(refused(c.name, viaField(c.yaml), 400, /the YAML is nested deeper than 64 levels: flatten it/));
        assert.ok(ms < 5000, `${c.name}: answered in ${ms} ms`);
        const problems = (r.body.problems ?? []) as Problem[];
        assert.ok(problems.length >= 1 && problems[0].line !== null, `${c.name}: the problem has a line: ${JSON.stringify(problems)}`);
      });
    }

    test('refused: specs over the size cap, in every channel', async () => {
      const huge = `${WORKFLOW}# ${'x'.repeat(300 * 1024)}\n`;
      await refused('300 KB workflow field', viaField(huge), 400, /workflow must be shorter than or equal to 262144 characters/);
      await refused(
        '600 KB workflow field (over the multipart field cap)',
        viaField(`${WORKFLOW}# ${'x'.repeat(600 * 1024)}\n`),
        400,
        /field|too long|workflow/i,
      );
      await refused(
        '300 KB workflow file part',
        async () => {
          const form = new FormData();
          form.append('source', new Blob([await source()]), 'p.tar.gz');
          form.append('workflow', new Blob([huge]), 'ci.yml');
          return kiln.fetch('/api/v1/runs', { method: 'POST', body: form });
        },
        413,
        /workflow: larger than 262144 bytes/,
      );
      const tar = await makeTar([['.kiln.yml', huge]]);
      await refused(
        '300 KB .kiln.yml in the tarball',
        () => kiln.submitTarball(tar),
        400,
        /file '\.kiln\.yml' is 300\.\d KiB, over the limit of 256 KiB for this file/,
      );
      await refused(
        '300 KB workflow with a repo (checked before the clone)',
        () => kiln.submitJson({ repo: 'https://github.com/kiln/demo.git', ref: 'main', workflow: huge }),
        400,
        /workflow must be shorter than or equal to 262144 characters/,
      );
      await refused(
        '70 KB quick-form command',
        () => kiln.submitJson({ command: 'x'.repeat(70 * 1024) }),
        400,
        /command must be shorter than or equal to 65536 characters/,
      );
    });

    const specCases: { name: string; yaml: string; expected: { path: string; needle: string | null; message: RegExp }[] }[] = [
      {
        name: 'container: alpine',
        yaml: 'jobs:\n  a:\n    runs-on: python-3.11\n    container: alpine\n    steps:\n      - run: id\n',
        expected: [{ path: 'jobs.a.container', needle: 'container:', message: /'container' is not supported by Kiln/ }],
      },
      {
        name: 'container with --privileged, volumes, network and user',
        yaml: 'jobs:\n  a:\n    runs-on: python-3.11\n    container:\n      image: alpine\n      options: --privileged --pid=host --network=host\n      volumes:\n        - /:/host\n        - /var/run/docker.sock:/var/run/docker.sock\n      credentials: {username: a, password: b}\n    steps:\n      - run: chroot /host touch /tmp/kiln-pwned\n',
        expected: [{ path: 'jobs.a.container', needle: 'container:', message: /'container' is not supported by Kiln/ }],
      },
      {
        name: 'services',
        yaml: 'jobs:\n  a:\n    runs-on: python-3.11\n    services:\n      db:\n        image: postgres\n        options: --privileged\n        ports: ["5432:5432"]\n    steps:\n      - run: id\n',
        expected: [{ path: 'jobs.a.services', needle: 'services:', message: /'services' is not supported by Kiln/ }],
      },
      {
        name: 'uses: docker://alpine',
        yaml: 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - uses: docker://alpine:latest\n        with:\n          entrypoint: /bin/sh\n          args: -c "touch /tmp/kiln-pwned"\n',
        expected: [{ path: 'jobs.a.steps[0].uses', needle: 'uses: docker://', message: /the action 'docker:\/\/alpine:latest' is not available in Kiln/ }],
      },
      {
        name: 'uses: a local action and a marketplace action',
        yaml: 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - uses: ./.github/actions/evil\n      - uses: evil/action@v1\n',
        expected: [
          { path: 'jobs.a.steps[0].uses', needle: './.github', message: /is not available in Kiln/ },
          { path: 'jobs.a.steps[1].uses', needle: 'evil/action', message: /is not available in Kiln/ },
        ],
      },
      {
        name: 'a reusable workflow call',
        yaml: 'jobs:\n  a:\n    uses: evil/repo/.github/workflows/x.yml@main\n    secrets: inherit\n',
        expected: [{ path: 'jobs.a.uses', needle: 'uses:', message: /reusable workflows/ }],
      },
      {
        name: 'sandbox keys on a job (volumes, options, privileged, network, runtime, user, image, ...)',
        yaml: [
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    volumes: ["/:/host"]',
          '    options: --privileged',
          '    privileged: true',
          '    network: host',
          '    runtime: runc',
          '    user: root',
          '    image: alpine',
          '    cap-add: [SYS_ADMIN]',
          '    devices: [/dev/mem]',
          '    security-opt: [seccomp=unconfined]',
          '    pid: host',
          '    workdir: /',
          '    steps:',
          '      - run: id',
          '',
        ].join('\n'),
        expected: ['volumes', 'options', 'privileged', 'network', 'runtime', 'user', 'image', 'cap-add', 'devices', 'security-opt', 'pid', 'workdir'].map(
          (k) => ({ path: `jobs.a.${k}`, needle: `    ${k}:`, message: new RegExp(`unknown key '${k}' in job 'a'`) }),
        ),
      },
      {
        name: 'sandbox keys on a step and at the top',
        yaml: [
          'volumes: ["/:/host"]',
          'container: alpine',
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    steps:',
          '      - run: id',
          '        user: root',
          '        image: alpine',
          '        options: --privileged',
          '        network: host',
          '',
        ].join('\n'),
        expected: [
          { path: 'volumes', needle: 'volumes:', message: /unknown key 'volumes' in the workflow/ },
          { path: 'container', needle: 'container:', message: /unknown key 'container' in the workflow/ },
          ...['user', 'image', 'options', 'network'].map((k) => ({
            path: `jobs.a.steps[0].${k}`,
            needle: `        ${k}:`,
            message: new RegExp(`unknown key '${k}' in a step`),
          })),
        ],
      },
      {
        name: 'runs-on an image: alpine, docker://alpine, ubuntu:22.04, a digest, a path',
        yaml: [
          'jobs:',
          '  a: {runs-on: alpine, steps: [{run: id}]}',
          '  b: {runs-on: "docker://alpine", steps: [{run: id}]}',
          '  c: {runs-on: "ubuntu:22.04", steps: [{run: id}]}',
          '  d: {runs-on: "python-3.11@sha256:0123456789abcdef", steps: [{run: id}]}',
          '  e: {runs-on: "../../../var/lib/docker", steps: [{run: id}]}',
          '  f: {runs-on: "${{ \'alpine\' }}", steps: [{run: id}]}',
          '  g: {runs-on: [self-hosted, alpine], steps: [{run: id}]}',
          '  h: {runs-on: {group: privileged}, steps: [{run: id}]}',
          '  i: {runs-on: "python-3.11 --privileged", steps: [{run: id}]}',
          '',
        ].join('\n'),
        expected: [
          { path: 'jobs.a.runs-on', needle: '  a:', message: /no environment or label named 'alpine'/ },
          { path: 'jobs.b.runs-on', needle: '  b:', message: /no environment or label named 'docker:\/\/alpine'/ },
          { path: 'jobs.c.runs-on', needle: '  c:', message: /no environment or label named 'ubuntu:22\.04'/ },
          { path: 'jobs.d.runs-on', needle: '  d:', message: /python-3\.11 has no version 'sha256:0123456789abcdef'/ },
          { path: 'jobs.e.runs-on', needle: '  e:', message: /no environment or label named '\.\.\/\.\.\/\.\.\/var\/lib\/docker'/ },
          { path: 'jobs.f.runs-on', needle: '  f:', message: /no environment or label named 'alpine'/ },
          { path: 'jobs.g.runs-on', needle: '  g:', message: /runs-on lists 2 labels/ },
          { path: 'jobs.h.runs-on', needle: '  h:', message: /runner groups\) is not supported/ },
          { path: 'jobs.i.runs-on', needle: '  i:', message: /no environment or label named 'python-3\.11 --privileged'/ },
        ],
      },
      {
        name: 'working-directory outside the workspace',
        yaml: [
          'defaults:',
          '  run:',
          '    working-directory: /',
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    defaults:',
          '      run:',
          '        working-directory: /root',
          '    steps:',
          '      - run: touch kiln-pwned',
          '        working-directory: /etc',
          '      - run: touch kiln-pwned',
          '        working-directory: ../..',
          '      - run: touch kiln-pwned',
          '        working-directory: /workspace/../etc',
          '      - run: touch kiln-pwned',
          '        working-directory: /tmp/../proc/1/root',
          '',
        ].join('\n'),
        expected: [
          { path: 'defaults.run.working-directory', needle: 'working-directory: /', message: /working-directory '\/' is outside the workspace/ },
          { path: 'jobs.a.defaults.run.working-directory', needle: '/root', message: /outside the workspace/ },
          { path: 'jobs.a.steps[0].working-directory', needle: '/etc', message: /working-directory '\/etc' is outside the workspace/ },
          { path: 'jobs.a.steps[1].working-directory', needle: '../..', message: /outside the workspace/ },
          { path: 'jobs.a.steps[2].working-directory', needle: '/workspace/../etc', message: /outside the workspace/ },
          { path: 'jobs.a.steps[3].working-directory', needle: '/tmp/../proc', message: /outside the workspace/ },
        ],
      },
      {
        name: 'setup-python python-version-file outside the workspace, through an expression, or absent',
        yaml: [
          'jobs:',
          '  a:',
          '    runs-on: ubuntu-latest',
          '    steps:',
          '      - uses: actions/setup-python@v5',
          '        with:',
          '          python-version-file: /etc/os-release',
          '      - uses: actions/setup-python@v5',
          '        with:',
          '          python-version-file: ../../../etc/passwd',
          '      - uses: actions/setup-python@v5',
          '        with:',
          "          python-version-file: ${{ '/proc/self/environ' }}",
          '      - uses: actions/setup-python@v5',
          '        with:',
          '          python-version-file: .python-version',
          '',
        ].join('\n'),
        expected: [
          {
            path: 'jobs.a.steps[0].with.python-version-file',
            needle: '/etc/os-release',
            message: /python-version-file \/etc\/os-release must be a path inside the workspace/,
          },
          { path: 'jobs.a.steps[1].with.python-version-file', needle: '../../../etc/passwd', message: /must be a path inside the workspace/ },
          {
            path: 'jobs.a.steps[2].with.python-version-file',
            needle: '/proc/self/environ',
            message: /python-version-file \/proc\/self\/environ must be a path inside the workspace/,
          },
          {
            path: 'jobs.a.steps[3].with.python-version-file',
            needle: 'python-version-file: .python-version',
            message: /\.python-version is not in the submitted source/,
          },
        ],
      },
      {
        name: 'env names with =, newline, NUL, reserved names; values with NUL',
        yaml: [
          'env:',
          '  "A=B": x',
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    env:',
          '      "LINE\\nBREAK": x',
          '      GITHUB_TOKEN: forged',
          '    steps:',
          '      - run: env',
          '        env:',
          '          "NUL\\0NAME": x',
          '          "1ST": x',
          '          RUNNER_TEMP: /etc',
          '          NULVALUE: "a\\0b"',
          '',
        ].join('\n'),
        expected: [
          { path: 'env.A=B', needle: '"A=B"', message: /invalid environment variable name 'A=B'/ },
          { path: 'jobs.a.env.LINE\nBREAK', needle: 'LINE', message: /invalid environment variable name/ },
          { path: 'jobs.a.env.GITHUB_TOKEN', needle: 'GITHUB_TOKEN', message: /is reserved/ },
          { path: 'jobs.a.steps[0].env.NUL\0NAME', needle: 'NUL\\0NAME', message: /invalid environment variable name/ },
          { path: 'jobs.a.steps[0].env.1ST', needle: '1ST', message: /invalid environment variable name '1ST'/ },
          { path: 'jobs.a.steps[0].env.RUNNER_TEMP', needle: 'RUNNER_TEMP', message: /is reserved/ },
          { path: 'jobs.a.steps[0].env.NULVALUE', needle: 'NULVALUE', message: /contains a NUL character/ },
        ],
      },
      {
        name: "env reading the host's variables where no env context exists",
        yaml: [
          'env:',
          '  LEAK: ${{ env.KILN_ATTACK_HOST_ENV }}',
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    env:',
          '      LEAK2: ${{ env.KILN_ADMIN_TOKEN }}',
          '    steps:',
          '      - run: echo $LEAK',
          '',
        ].join('\n'),
        expected: [
          { path: 'env.LEAK', needle: 'LEAK:', message: /Unrecognized named-value: 'env'/ },
          { path: 'jobs.a.env.LEAK2', needle: 'LEAK2', message: /Unrecognized named-value: 'env'/ },
        ],
      },
      {
        name: 'absurd job timeout-minutes',
        yaml: [
          'jobs:',
          ...[
            ['neg', '-5'],
            ['zero', '0'],
            ['huge', '1e9'],
            ['nanstr', '"NaN"'],
            ['nan', '.nan'],
            ['inf', '.inf'],
            ['expr', `"\${{ fromJSON('-5') }}"`],
            ['unit', '10m'],
            ['list', '[1]'],
          ].map(([id, v]) => `  ${id}: {runs-on: python-3.11, timeout-minutes: ${v}, steps: [{run: id}]}`),
          '',
        ].join('\n'),
        expected: [
          { path: 'jobs.expr.timeout-minutes', needle: '  expr:', message: /timeout-minutes evaluated to no number greater than 0 for expr/ },
          ...['neg', 'zero', 'nanstr', 'nan', 'inf', 'unit', 'list'].map((id) => ({
            path: `jobs.${id}.timeout-minutes`,
            needle: `  ${id}:`,
            message: /'timeout-minutes' must be a number greater than 0/,
          })),
          { path: 'jobs.huge.timeout-minutes', needle: '  huge:', message: /'timeout-minutes' is 1000000000, more than the 360 minutes allowed/ },
        ],
      },
      {
        name: 'absurd step timeout-minutes',
        yaml: [
          'jobs:',
          '  a:',
          '    runs-on: python-3.11',
          '    steps:',
          '      - run: id',
          '        timeout-minutes: -1',
          '      - run: id',
          '        timeout-minutes: NaN',
          '',
        ].join('\n'),
        expected: [
          { path: 'jobs.a.steps[0].timeout-minutes', needle: 'timeout-minutes: -1', message: /must be a number greater than 0/ },
          { path: 'jobs.a.steps[1].timeout-minutes', needle: 'timeout-minutes: NaN', message: /must be a number greater than 0/ },
        ],
      },
      {
        name: 'malformed resource asks',
        yaml: [
          'jobs:',
          '  a: {runs-on: python-3.11, limits: {memory: -1g}, steps: [{run: id}]}',
          '  b: {runs-on: python-3.11, limits: {cpus: 0}, steps: [{run: id}]}',
          '  c: {runs-on: python-3.11, limits: {cpus: .inf}, steps: [{run: id}]}',
          '  d: {runs-on: python-3.11, limits: {pids: 1.5}, steps: [{run: id}]}',
          '  e: {runs-on: python-3.11, limits: {memory: 99999999999999999999t}, steps: [{run: id}]}',
          '  f: {runs-on: python-3.11, limits: {gpus: 8, swap: 1t, privileged: true}, steps: [{run: id}]}',
          '  g: {runs-on: python-3.11, limits: unlimited, steps: [{run: id}]}',
          '',
        ].join('\n'),
        expected: [
          { path: 'jobs.a.limits.memory', needle: '  a:', message: /'memory' must be a size/ },
          { path: 'jobs.b.limits.cpus', needle: '  b:', message: /'cpus' must be a number greater than 0/ },
          { path: 'jobs.c.limits.cpus', needle: '  c:', message: /'cpus' must be a number greater than 0/ },
          { path: 'jobs.d.limits.pids', needle: '  d:', message: /'pids' must be a whole number/ },
          { path: 'jobs.e.limits.memory', needle: '  e:', message: /'memory' must be a size/ },
          { path: 'jobs.f.limits.gpus', needle: '  f:', message: /unknown key 'gpus' in 'limits'/ },
          { path: 'jobs.f.limits.privileged', needle: '  f:', message: /unknown key 'privileged' in 'limits'/ },
          { path: 'jobs.g.limits', needle: '  g:', message: /'limits' must be a mapping/ },
        ],
      },
      {
        name: 'a matrix of 2^30 combinations',
        yaml: `jobs:\n  a:\n    strategy:\n      matrix:\n${Array.from({ length: 30 }, (_, i) => `        k${i}: [0, 1]\n`).join('')}    runs-on: python-3.11\n    steps:\n      - run: id\n`,
        expected: [{ path: 'jobs.a.strategy.matrix', needle: 'matrix:', message: /more than/ }],
      },
      {
        name: '101 steps',
        yaml: `jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n${'      - run: id\n'.repeat(101)}`,
        expected: [{ path: 'jobs.a.steps', needle: 'steps:', message: /the job has 101 steps, more than the 100 allowed/ }],
      },
      {
        name: '__proto__ keys',
        yaml: 'jobs:\n  __proto__:\n    runs-on: python-3.11\n    steps: [{run: id}]\n',
        expected: [{ path: 'jobs.__proto__', needle: '__proto__', message: /the key '__proto__' is not allowed/ }],
      },
    ];

    for (const c of specCases) {
      test(`refused: ${c.name}`, async () => {
        await refusedWorkflow(c.name, viaField(c.yaml), c.yaml, c.expected);
      });
    }

    test('a NUL in a mapping key is reported on the line of that key', async () => {
      const yaml = 'jobs:\n  a:\n    runs-on: python-3.11\n    env:\n      OK: 1\n      "NUL\\0NAME": x\n    steps:\n      - run: env\n';
      await refusedWorkflow('NUL in a key', viaField(yaml), yaml, [
        { path: 'jobs.a.env.NUL\0NAME', needle: 'NUL\\0NAME', message: /contains a NUL character/ },
      ]);
    });

    test('refused: the same spec attacks as .kiln.yml inside the tarball and from a workflows folder', async () => {
      const c = specCases[1];
      const tar = await makeTar([['.kiln.yml', c.yaml]]);
      const r = await refused(
        'container in .kiln.yml',
        () => kiln.submitTarball(tar),
        400,
        /the workflow \.kiln\.yml is not valid:\n\(workflow\): no job of this workflow can run here[^\n]*\njobs\.a\.container \(line 4\): a: 'container' is not supported/,
      );
      assert.deepEqual(
        ((r.body.problems ?? []) as Problem[]).map((p) => [p.path, p.line]),
        [
          ['(workflow)', null],
          ['jobs.a.container', 4],
        ],
      );
      const tar2 = await makeTar([['.github/workflows/ci.yml', specCases[3].yaml]]);
      await refused(
        'docker:// in .github/workflows/ci.yml',
        () => kiln.submitTarball(tar2),
        400,
        /the workflow \.github\/workflows\/ci\.yml is not valid:\n\(workflow\): no job of this workflow can run here[^\n]*\njobs\.a\.steps\[0\]\.uses \(line 5\)/,
      );
    });

    test("refused: resource asks above the server's maxima, naming each", async () => {
      const yaml =
        'jobs:\n  greedy:\n    runs-on: python-3.11\n    limits:\n      memory: 1t\n      cpus: 1000\n      pids: 1000000\n      workspace: 1t\n    steps:\n      - run: id\n';
      // The documented shape of a workflow refusal names the line too (docs/compatibility.md: "refused at submission with its line number").
      await refusedWorkflow('limits above the maxima', viaField(yaml), yaml, [
        { path: 'jobs.greedy.limits.memory', needle: 'memory:', message: /memory 1099511627776 bytes is above the maximum 8589934592/ },
        { path: 'jobs.greedy.limits.cpus', needle: 'cpus:', message: /cpus 1000 is above the maximum 2/ },
        { path: 'jobs.greedy.limits.pids', needle: 'pids:', message: /pids 1000000 is above the maximum 1024/ },
        { path: 'jobs.greedy.limits.workspace', needle: 'workspace:', message: /workspace 1099511627776 bytes is above the maximum 134217728/ },
      ]);
    });

    test('refused: resource asks below the minima', async () => {
      const yaml = 'jobs:\n  tiny:\n    runs-on: python-3.11\n    limits: {memory: 1m, pids: 1}\n    steps:\n      - run: id\n';
      await refusedWorkflow('limits below the minima', viaField(yaml), yaml, [
        { path: 'jobs.tiny.limits.memory', needle: 'limits:', message: /memory must be at least 64m/ },
        { path: 'jobs.tiny.limits.pids', needle: 'limits:', message: /pids must be at least 16/ },
      ]);
    });

    test('refused: choosing the image through platform, environment or a pinned digest', async () => {
      const ubuntu = 'jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: id\n';
      await refused(
        'platform field mapping to alpine',
        async () => kiln.submitTarball(await source(), { workflow: ubuntu, platform: 'ubuntu-latest=alpine' }),
        400,
        /no environment or label named 'alpine'/,
      );
      await refused(
        'platform field mapping to docker://',
        async () => kiln.submitTarball(await source(), { workflow: ubuntu, platform: 'ubuntu-latest=docker://alpine' }),
        400,
        /platform must be LABEL=ENVIRONMENT pairs/,
      );
      await refused(
        'quick form environment alpine',
        () => kiln.submitJson({ command: 'id', environment: 'alpine' }),
        400,
        /no environment or label named 'alpine'/,
      );
      await refused(
        'quick form environment docker://',
        () => kiln.submitJson({ command: 'id', environment: 'docker://alpine:latest' }),
        400,
        /no environment or label named 'docker:\/\/alpine:latest'/,
      );
      await refused(
        'quick form environment as YAML injection',
        () => kiln.submitJson({ command: 'id', environment: 'python-3.11\n    container: alpine' }),
        400,
        /no environment or label named|not valid/,
      );
      await refused(
        'quick form shell outside the list',
        () => kiln.submitJson({ command: 'id', shell: 'bash -c "touch /tmp/kiln-pwned" {0}' }),
        400,
        /shell must be bash, sh or python/,
      );
      await refused(
        'quick form file outside the workspace',
        () => kiln.submitJson({ command: 'id', files: { '../../tmp/kiln-pwned': 'x' } }),
        400,
        /files: file '\.\.\/\.\.\/tmp\/kiln-pwned': path leaves the workspace/,
      );
      await refused(
        'quick form absolute file',
        () => kiln.submitJson({ command: 'id', files: { '/etc/cron.d/kiln-pwned': 'x' } }),
        400,
        /files: file '\/etc\/cron\.d\/kiln-pwned': absolute paths are not allowed/,
      );
      await refused(
        'quick form file content not a string',
        () => kiln.submitJson({ command: 'id', files: { 'a.txt': { text: 1 } } }),
        400,
        /files\.a\.txt: content must be a string/,
      );
      await refused(
        'quick form file content with a reserved key',
        () => kiln.submitJson({ command: 'id', files: { 'a.txt': { toString: 1 } } }),
        400,
        /files\.a\.txt\.toString is not accepted in a request body: rename it/,
      );
    });

    test('refused: absurd quick-form timeouts', async () => {
      await refused('timeoutMinutes -1', () => kiln.submitJson({ command: 'id', timeoutMinutes: -1 }), 400, /timeoutMinutes must not be less than 1/);
      await refused('timeoutMinutes 1e9', () => kiln.submitJson({ command: 'id', timeoutMinutes: 1e9 }), 400, /timeoutMinutes must not be greater than 10080/);
      await refused('timeoutMinutes NaN', () => kiln.submitJson({ command: 'id', timeoutMinutes: 'NaN' }), 400, /timeoutMinutes must be an integer number/);
      await refused(
        'timeoutMinutes Infinity string',
        async () => kiln.submitTarball(await source(), { command: 'id', timeoutMinutes: 'Infinity' }),
        400,
        /timeoutMinutes must be an integer number/,
      );
      await refused('timeoutMinutes 1.5', () => kiln.submitJson({ command: 'id', timeoutMinutes: 1.5 }), 400, /timeoutMinutes must be an integer number/);
    });

    test('the service still serves after the spec attacks', async () => {
      await assertServing(kiln, 'after spec attacks');
      await watch.assertUnchanged('after spec attacks');
    });
  });

  // =============================================================================================
  describe('accepted specs neutralised at run time', () => {
    let done: RunView;
    let logsByJob: Record<string, string> = {};

    before(async () => {
      const yaml = `
jobs:
  envleak:
    runs-on: python-3.11
    steps:
      - run: |
          echo "host=[\${KILN_ATTACK_HOST_ENV-}][\${ATTACK_PLAIN_HOST_ENV-}][\${KILN_ADMIN_TOKEN-}][$FROM_EXPR][$FROM_SECRET]"
          env | sort
          echo 'envctx=\${{ toJSON(env) }}'
          echo 'secrets=\${{ toJSON(secrets) }}'
          echo "uid=[$(id -u)] user=[$(id -un)]"
          tr '\\0' '\\n' < /proc/1/environ 2>&1 || true
          cat /proc/1/cmdline 2>&1 | tr '\\0' ' ' || true
        env:
          FROM_EXPR: \${{ env.KILN_ATTACK_HOST_ENV }}
          FROM_SECRET: \${{ secrets.KILN_ATTACK_HOST_ENV }}
          USER: root
          HOME: /root
  envfile:
    runs-on: python-3.11
    steps:
      - run: |
          printf 'A=B\\nC\\n' >> "$GITHUB_ENV"
          printf 'Z<<EOF\\nQ=injected\\nEOF\\n' >> "$GITHUB_ENV"
          printf 'BAD NAME=1\\n=novalue\\nN=a\\0b\\n' >> "$GITHUB_ENV"
          printf 'PATH=/nonexistent\\nGITHUB_ENV=/etc/passwd\\nKILN_ATTACK_HOST_ENV=from-job\\nE=x=y\\n' >> "$GITHUB_ENV"
          printf '/tmp/evil:/usr/sbin\\n' >> "$GITHUB_PATH"
      - run: |
          echo "A=[$A] C=[\${C-unset}] Z=[$Z] Q=[\${Q-unset}] N=[\${N-unset}] E=[$E] H=[$KILN_ATTACK_HOST_ENV]"
          echo "GE=[$GITHUB_ENV]"
          echo "bash=[$(command -v bash)]"
          echo "path=[$PATH]"
  workdir:
    runs-on: python-3.11
    steps:
      - run: touch kiln-pwned
        working-directory: \${{ '/etc' }}
        continue-on-error: true
      - run: touch kiln-pwned
        working-directory: \${{ '../../../../proc/1/root/tmp' }}
        continue-on-error: true
      - run: pwd; ls
        working-directory: \${{ 'sub/../.' }}
  nulexpr:
    runs-on: python-3.11
    steps:
      - run: echo "nv=[$NV]"
        env:
          NV: \${{ fromJSON('"a\\u0000b"') }}
        continue-on-error: true
      - run: echo after-nul
  tinytimeout:
    runs-on: python-3.11
    timeout-minutes: 0.00001
    steps:
      - run: sleep 30
      - run: echo never
  clamped:
    runs-on: python-3.11
    steps:
      - run: echo clamped-ok
        timeout-minutes: 1000000000
  limits:
    runs-on: python-3.11
    limits: {memory: 128m, pids: 64, cpus: 0.5, workspace: 32m}
    steps:
      - run: echo limits-ok
`;
      const accepted = await kiln.accepted(kiln.submitTarball(await makeTar([['sub/keep.txt', 'k\n']]), { workflow: yaml }));
      done = await kiln.waitFor(accepted.id, 180_000);
      for (const j of done.jobs) logsByJob[j.key] = await kiln.logs(accepted.id, j.id);
    });

    const job = (key: string) => {
      const j = done.jobs.find((x) => x.key === key);
      assert.ok(j, `job ${key}`);
      return j;
    };

    test("the job sees none of the server's environment (host env, admin token, canary)", async () => {
      const log = logsByJob.envleak;
      assert.equal(job('envleak').conclusion, 'success', log);
      assert.match(log, /host=\[\]\[\]\[\]\[\]\[\]/);
      for (const secret of [HOST_ENV_VALUE, PLAIN_HOST_ENV_VALUE, TEST_ADMIN_TOKEN]) assert.ok(!log.includes(secret), `the job's log holds '${secret}'`);
      assert.doesNotMatch(log, /^\s*#?\d*\s*\|?\s*(KILN_DATA_DIR|KILN_QUEUE_PREFIX|REDIS_URL|KILN_ADMIN_TOKEN)=/m);
      assert.match(log, /uid=\[1001\] user=\[runner\]/, 'USER=root in env does not make the job root');
      watch.assertNoLeak(log, 'envleak');
    });

    test("GITHUB_ENV / GITHUB_PATH tricks: bad lines are dropped with a warning; reserved variables stay the runner's", async () => {
      const log = logsByJob.envfile;
      assert.equal(job('envfile').conclusion, 'success', log);
      assert.match(log, /A=\[B\] C=\[unset\] Z=\[Q=injected\] Q=\[unset\] N=\[unset\] E=\[x=y\] H=\[from-job\]/);
      assert.match(log, /GITHUB_ENV: line \d+ is neither NAME=value nor NAME<<DELIMITER/);
      assert.match(log, /GITHUB_ENV: 'BAD NAME' is not a valid name/);
      assert.match(log, /GITHUB_ENV: the value of N contains a NUL byte/);
      assert.doesNotMatch(log, /GE=\[\/etc\/passwd\]/);
      assert.match(log, /bash=\[\/\S*bash\]/, "PATH from GITHUB_ENV did not break the runner's PATH");
      assert.doesNotMatch(log, /path=\[[^\]]*\/tmp\/evil:\/usr\/sbin/, 'a GITHUB_PATH line with ":" is not added');
    });

    test('a working-directory expression that leaves the workspace fails its step, clearly', async () => {
      const j = job('workdir');
      const log = logsByJob.workdir;
      assert.equal(j.steps[0].outcome, 'failure', log);
      assert.equal(j.steps[1].outcome, 'failure', log);
      assert.equal(j.steps[2].outcome, 'success', log);
      assert.match(log, /working-directory '\/etc' is outside \/workspace and \/tmp/);
      assert.match(log, /working-directory '\.\.\/\.\.\/\.\.\/\.\.\/proc\/1\/root\/tmp' is outside \/workspace and \/tmp/);
      assert.match(log, /\/workspace\/?\s*\n/);
    });

    test('a NUL produced by an expression in env fails that step only, not the sandbox', async () => {
      const j = job('nulexpr');
      const log = logsByJob.nulexpr;
      assert.notEqual(j.steps[0].reason, 'infrastructure', `the NUL is the job's doing, not the engine's: ${JSON.stringify(j.steps)}\n${log}`);
      assert.equal(j.steps[1].conclusion, 'success', `the next step still runs: ${JSON.stringify(j.steps)}\n${log}`);
      assert.match(log, /after-nul/);
    });

    test('a tiny job timeout stops the job as job-timeout', async () => {
      const j = job('tinytimeout');
      assert.equal(j.conclusion, 'failure', JSON.stringify(j));
      assert.equal(j.steps[0].reason, 'job-timeout', JSON.stringify(j.steps));
      assert.equal(j.steps[1].conclusion, 'skipped');
      assert.match(j.error ?? '', /the job exceeded its timeout/);
    });

    test('a step timeout of 1e9 minutes is capped, and the step runs', async () => {
      assert.equal(job('clamped').conclusion, 'success', logsByJob.clamped);
      assert.match(logsByJob.clamped, /clamped-ok/);
    });

    test('small limits within the accepted range (memory 128m, pids 64, cpus 0.5, workspace 32m) run a trivial step', async () => {
      assert.equal(job('limits').conclusion, 'success', logsByJob.limits);
      assert.match(logsByJob.limits, /limits-ok/);
    });

    test('nothing on the host changed and the service still serves', async () => {
      for (const [k, log] of Object.entries(logsByJob)) watch.assertNoLeak(log, k);
      await watch.assertUnchanged('after run-time attacks');
      await assertServing(kiln, 'after run-time attacks');
    });
  });

  // =============================================================================================
  describe('a hostile job drives the plan of the jobs that need it; old workflow commands; inputs and the event file', () => {
    let done: RunView;
    let dispatched: RunView;
    const logsByJob: Record<string, string> = {};

    before(async () => {
      // 1000 x 1000 combinations, a label named like an Object member, JSON nested 5000 deep.
      const yaml = `
jobs:
  setup:
    runs-on: python-3.11
    outputs:
      bomb: \${{ steps.o.outputs.bomb }}
      label: \${{ steps.o.outputs.label }}
      deep: \${{ steps.o.outputs.deep }}
    steps:
      - id: o
        shell: python
        run: |
          import json, os
          with open(os.environ['GITHUB_OUTPUT'], 'a') as f:
              f.write('bomb=%s\\n' % json.dumps({'a': list(range(1000)), 'b': list(range(1000))}))
              f.write('label=__proto__\\n')
              f.write('deep=%s\\n' % ('[' * 5000 + ']' * 5000))
  bomb:
    needs: setup
    runs-on: python-3.11
    strategy:
      matrix: \${{ fromJSON(needs.setup.outputs.bomb) }}
    steps:
      - run: echo never-bomb
  proto:
    needs: setup
    runs-on: \${{ needs.setup.outputs.label }}
    steps:
      - run: echo never-proto
  deep:
    needs: setup
    runs-on: python-3.11
    strategy:
      matrix:
        x: \${{ fromJSON(needs.setup.outputs.deep) }}
    steps:
      - run: echo never-deep
  commands:
    runs-on: python-3.11
    steps:
      - run: |
          echo "::set-env name=INJECTED::no-opt-in"
        continue-on-error: true
      - env:
          ACTIONS_ALLOW_UNSECURE_COMMANDS: 'true'
        run: |
          echo "::set-env name=GITHUB_ENV::/etc/passwd"
          echo "::set-env name=KILN_ATTACK_HOST_ENV::from-set-env"
          echo "::set-env name=NODE_OPTIONS::--require /tmp/evil.js"
          echo "::add-path::/tmp/evil"
      - run: echo "INJECTED=[\${INJECTED-unset}] GE=[$GITHUB_ENV] H=[$KILN_ATTACK_HOST_ENV] NO=[\${NODE_OPTIONS-unset}] bash=[$(command -v bash)]"
`;
      const accepted = await kiln.accepted(kiln.submitTarball(await makeTar([['keep.txt', 'k\n']]), { workflow: yaml }));
      done = await kiln.waitFor(accepted.id, 180_000);
      for (const j of done.jobs) logsByJob[j.key] = await kiln.logs(accepted.id, j.id);
      // Inputs are data: a value that is shell syntax reaches the job through env and the event file unexecuted.
      const dispatch = `
on:
  workflow_dispatch:
    inputs:
      text: {type: string}
jobs:
  read:
    runs-on: python-3.11
    steps:
      - env:
          TEXT: \${{ inputs.text }}
        run: |
          echo "text=[$TEXT]"
          python3 -c 'import json, os; print("event=", json.load(open(os.environ["GITHUB_EVENT_PATH"]))["inputs"]["text"][:40])'
          test -r "$GITHUB_EVENT_PATH" && echo event-readable
          ls /tmp | grep -c kiln-pwned || true
`;
      const hostile = '$(touch /tmp/kiln-pwned-input)`touch /tmp/kiln-pwned-tick`"; touch /tmp/kiln-pwned-quote';
      const res = kiln.submitTarball(await makeTar([['keep.txt', 'k\n']]), { workflow: dispatch, inputs: JSON.stringify({ text: hostile }) });
      const run = await kiln.accepted(res);
      dispatched = await kiln.waitFor(run.id, 180_000);
      logsByJob.read = await kiln.logs(run.id, dispatched.jobs[0].id);
    });

    const job = (key: string) => {
      const j = done.jobs.find((x) => x.key === key);
      assert.ok(j, `job ${key} in ${JSON.stringify(done.jobs.map((x) => x.key))}`);
      return j;
    };

    test('a matrix of a million combinations from a job output fails that job, naming the limit; no job of it is recorded', async () => {
      assert.equal(job('bomb').conclusion, 'failure', JSON.stringify(job('bomb')));
      assert.match(job('bomb').error ?? '', /could not be planned now that its needs are done:[\s\S]*more than 256 jobs/);
      assert.ok(done.jobs.length <= 8, `jobs recorded: ${done.jobs.length}`);
      assert.ok(!Object.values(logsByJob).some((l) => l.includes('never-')), 'no job planned from hostile output ran');
    });

    test('a runs-on from a job output named like an Object member is a name: not runnable, said so', async () => {
      assert.equal(job('proto').conclusion, 'skipped', JSON.stringify(job('proto')));
      assert.match(job('proto').error ?? '', /^not runnable here: no environment or label named '__proto__'/);
    });

    test('JSON nested 5000 deep from a job output fails its job with a message, not the service', async () => {
      assert.equal(job('deep').conclusion, 'failure', JSON.stringify(job('deep')));
      assert.match(job('deep').error ?? '', /could not be planned/);
    });

    test('set-env without the opt-in fails its step; with it, the runner keeps its own variables and refuses NODE_OPTIONS', async () => {
      const log = logsByJob.commands;
      const steps = job('commands').steps;
      assert.equal(steps[0].outcome, 'failure', log);
      assert.match(log, /INJECTED=\[unset\]/);
      assert.doesNotMatch(log, /GE=\[\/etc\/passwd\]/);
      assert.match(log, /NO=\[unset\]/);
      assert.match(log, /bash=\[\/\S*bash\]/);
      assert.ok(!log.includes(HOST_ENV_VALUE));
    });

    test('an input holding shell syntax reaches the job as data (env and GITHUB_EVENT_PATH), executing nothing', async () => {
      const log = logsByJob.read;
      assert.equal(dispatched.conclusion, 'success', log);
      assert.match(log, /text=\[\$\(touch \/tmp\/kiln-pwned-input\)`touch \/tmp\/kiln-pwned-tick`"; touch \/tmp\/kiln-pwned-quote\]/);
      assert.match(log, /event= \$\(touch \/tmp\/kiln-pwned-input\)/);
      assert.match(log, /^\[read\] #0 +\| 0$/m, "nothing named kiln-pwned in the job's /tmp");
    });

    test('nothing on the host changed and the service still serves', async () => {
      for (const [k, log] of Object.entries(logsByJob)) watch.assertNoLeak(log, k);
      await watch.assertUnchanged('after hostile plans');
      await assertServing(kiln, 'after hostile plans');
    });
  });

  // =============================================================================================
  describe('repositories from a local git server (http and private hosts allowed, 2 MiB clone cap)', () => {
    const on = () => ({ kiln: gitKiln, watch: gitWatch });
    const KILN_YML = `jobs:
  look:
    runs-on: python-3.11
    steps:
      - run: |
          echo "lib=[$(ls -A vendor/lib 2>/dev/null | tr '\\n' ' ')] ext=[$(ls -A vendor/ext 2>/dev/null | tr '\\n' ' ')]"
          echo "modules=[$(test -e .git/modules && echo present || echo absent)]"
          echo "hooks=[$(ls -A .git/hooks 2>/dev/null | tr '\\n' ' ')]"
          cat .gitmodules
`;

    test('submodules (file:// the canary, ext::, command updates) and hooks are never fetched or run', async () => {
      await makeRawRepo(gitRoot, 'submodules', {
        '.kiln.yml': KILN_YML,
        '.gitmodules':
          `[submodule "lib"]\n\tpath = vendor/lib\n\turl = file://${gitWatch.canaryDir}\n\tupdate = !touch /tmp/kiln-pwned-update\n` +
          '[submodule "ext"]\n\tpath = vendor/ext\n\turl = ext::sh -c touch% /tmp/kiln-pwned-ext\n',
        'vendor/lib': { gitlink: '1'.repeat(40) },
        'vendor/ext': { gitlink: '2'.repeat(40) },
        '.githooks/post-checkout': { exec: '#!/bin/sh\ntouch /tmp/kiln-pwned-hook\n' },
        'hooks/post-checkout': { exec: '#!/bin/sh\ntouch /tmp/kiln-pwned-hook2\n' },
        '.gitconfig': '[core]\n\thooksPath = .githooks\n[filter "pwn"]\n\tsmudge = touch /tmp/kiln-pwned-filter\n',
        '.gitattributes': '* filter=pwn diff=pwn\n',
        '.lfsconfig': '[lfs]\n\turl = file:///etc\n',
      });
      const accepted = await gitKiln.accepted(gitKiln.submitJson({ repo: remote.repoUrl('submodules'), ref: 'main' }));
      const done = await gitKiln.waitFor(accepted.id, 120_000);
      const log = await gitKiln.logs(accepted.id);
      assert.equal(done.conclusion, 'success', `${JSON.stringify(done.jobs)}\n${log}`);
      assert.match(log, /lib=\[\] ext=\[\]/, 'the submodules are empty');
      assert.match(log, /modules=\[absent\]/);
      assert.match(log, /hooks=\[\]/, 'no hook was installed');
      gitWatch.assertNoLeak(log, 'submodule job');
      await gitWatch.assertUnchanged('submodules and hooks');
    });

    test('refused: a tree holding .git/hooks/post-checkout is refused as bad content, not as a transient failure', async () => {
      await makeDotGitRepo(gitRoot, 'dotgit', WORKFLOW);
      await refused(
        '.git in the tree',
        () => gitKiln.submitJson({ repo: remote.repoUrl('dotgit'), ref: 'main' }),
        400,
        /invalid path '\.git\/hooks\/post-checkout'/,
        on(),
      );
    });

    test('refused: symlinks in a repository that point out of the workspace', async () => {
      await makeRawRepo(gitRoot, 'abslink', { '.kiln.yml': WORKFLOW, canary: { link: gitWatch.secretPath } });
      await refused(
        'absolute symlink in a repo',
        () => gitKiln.submitJson({ repo: remote.repoUrl('abslink'), ref: 'main' }),
        400,
        /source: entry '(\.\/)?canary': symlink target '.*secret\.txt' is absolute/,
        on(),
      );
      await makeRawRepo(gitRoot, 'uplink', { '.kiln.yml': WORKFLOW, 'a/up': { link: '../../../../../etc/shadow' } });
      await refused(
        'climbing symlink in a repo',
        () => gitKiln.submitJson({ repo: remote.repoUrl('uplink'), ref: 'main' }),
        400,
        /source: entry '(\.\/)?a\/up': symlink target '.*' points outside the workspace/,
        on(),
      );
    });

    test('refused: a repository over the clone cap, and a compressed bomb, fail fast and clean', async () => {
      await makeRawRepo(gitRoot, 'huge', { '.kiln.yml': WORKFLOW, 'blob.txt': randomBytes(6 * MiB).toString('base64') });
      const { ms } = await timed(
        refused(
          'huge repo',
          () => gitKiln.submitJson({ repo: remote.repoUrl('huge'), ref: 'main' }),
          400,
          /repo: the repository is larger than 2 MiB; use a smaller repository or ref/,
          on(),
        ),
      );
      assert.ok(ms < 30_000, `huge repo refused in ${ms} ms`);
      await makeRawRepo(gitRoot, 'bomb', { '.kiln.yml': WORKFLOW, 'zeros.txt': '0'.repeat(64 * MiB) });
      const bomb = await timed(
        refused(
          'compressed bomb repo',
          () => gitKiln.submitJson({ repo: remote.repoUrl('bomb'), ref: 'main' }),
          400,
          /repo: the repository is larger than 2 MiB/,
          on(),
        ),
      );
      assert.ok(bomb.ms < 30_000, `bomb repo refused in ${bomb.ms} ms`);
    });

    test('refused: redirects, options as ref against a real remote, a bad workflow inside a repo', async () => {
      await makeRawRepo(gitRoot, 'plain', { '.kiln.yml': WORKFLOW, 'README.md': 'plain\n' });
      await refused(
        'redirect',
        () => gitKiln.submitJson({ repo: `${remote.url}/redirect/plain.git`, ref: 'main' }),
        400,
        /repo: the server redirected .*redirects are not followed/,
        on(),
      );
      const before = remote.requestCount();
      await refused(
        'ref --upload-pack against a live remote',
        () => gitKiln.submitJson({ repo: remote.repoUrl('plain'), ref: '--upload-pack=touch /tmp/kiln-pwned' }),
        400,
        /must not start with '-'/,
        on(),
      );
      await refused(
        'ref -c against a live remote',
        () => gitKiln.submitJson({ repo: remote.repoUrl('plain'), ref: '-cprotocol.ext.allow=always' }),
        400,
        /must not start with '-'/,
        on(),
      );
      assert.equal(remote.requestCount(), before, 'a refused ref causes no traffic');
      await refused(
        'ext:: with private hosts allowed',
        () => gitKiln.submitJson({ repo: 'ext::sh -c touch% /tmp/kiln-pwned', ref: 'main' }),
        400,
        /the URL scheme 'ext' is not accepted; allowed schemes: https:\/\/, http:\/\//,
        on(),
      );
      await refused(
        'file:// with private hosts allowed',
        () => gitKiln.submitJson({ repo: `file://${gitWatch.canaryDir}`, ref: 'main' }),
        400,
        /the URL scheme 'file' is not accepted/,
        on(),
      );
      await makeRawRepo(gitRoot, 'badspec', {
        '.kiln.yml': 'jobs:\n  a:\n    runs-on: python-3.11\n    container: {image: alpine, options: --privileged}\n    steps: [{run: id}]\n',
      });
      await refused(
        'container: in a cloned .kiln.yml',
        () => gitKiln.submitJson({ repo: remote.repoUrl('badspec'), ref: 'main' }),
        400,
        /the workflow \.kiln\.yml is not valid:\n\(workflow\): no job of this workflow can run here[^\n]*\njobs\.a\.container \(line 4\)/,
        on(),
      );
    });

    test('refused: slow remotes (one that never answers, one that trickles a byte every 250 ms) end at the clone timeout; nothing is left running', async () => {
      // Health answers while the clones hang.
      const t0 = Date.now();
      const health = await fetch(`${gitKiln.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
      assert.equal(health.status, 200, `health during slow clones: ${health.status} after ${Date.now() - t0} ms`);
      const before = await runCount(gitKiln);
      for (const [i, p] of slowClones.entries()) {
        const { value: r, ms } = await p;
        assert.equal(r.status, 400, `${slow[i].url}: answered ${r.status}: ${r.message}`);
        assert.match(r.message, /repo: the clone took longer than 120 s; try a smaller repository or ref, or try again later/);
        assert.ok(ms >= 115_000 && ms < 150_000, `${slow[i].url}: refused after ${ms} ms`);
        assert.deepEqual(await processesMentioning(new URL(slow[i].url).host), [], 'no git process is left for the slow remote');
      }
      assert.equal(await runCount(gitKiln), before, 'no run was recorded');
      await gitWatch.assertUnchanged('slow remotes');
    });

    test('the service still serves after the repository attacks', async () => {
      await assertServing(gitKiln, 'after local repository attacks');
      await gitWatch.assertUnchanged('after local repository attacks');
      await watch.assertUnchanged('the main server, at the end');
    });
  });

  // =============================================================================================
  describe('job specs that amplify through YAML aliases (a server of their own, run in the background)', () => {
    test('refused: alias amplification past the spec cap, and the service stays responsive meanwhile', async () => {
      assert.ok(amplification, 'the amplification specs were started (before() ran)');
      const results = await amplification;
      const problems: string[] = [];
      for (const r of results) {
        if (r.error) problems.push(`${r.name} (${r.ms} ms): ${(r.error as Error).message.slice(0, 600)}`);
      }
      if (ampHealth.slowest >= 5000 || ampHealth.failures.length) {
        problems.push(
          `health during the amplification: slowest ${ampHealth.slowest} ms over ${ampHealth.polls} polls; ${ampHealth.failures.slice(0, 3).join('; ')}`,
        );
      }
      assert.deepEqual(problems, [], 'alias amplification is refused at submission without stalling the service');
    });

    test('the amplification server still serves, and nothing on the host changed', async () => {
      await assertServing(ampServer.kiln, 'after alias amplification');
      await ampWatch.assertUnchanged('after alias amplification');
    });
  });
});
