/**
 * Medium tier for git sources: real git (through simple-git) against a local smart-HTTP server.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cloneRepo } from '../../src/sources/git-source';
import { DEFAULT_GIT_OPTIONS, GitSourceError, GitSourceOptions, type GitSourceErrorCode } from '../../src/sources/git-policy';
import { GitServer, gitlink, makeRepo, startGitServer } from '../fixtures/git-server';

const MiB = 1024 * 1024;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-git-repos-'));
const marker = path.join(root, 'pwned-by-submodule');
let server: GitServer;
let strictServer: GitServer; // protocol v0 without allowAnySHA1InWant, like many hosted servers
let demo: string[];
const parents: string[] = [];

/** Options for the local server, with a parent temp dir of its own so leftovers are visible. */
function options(extra: Partial<GitSourceOptions> = {}): GitSourceOptions & { tmpDir: string } {
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-git-parent-'));
  parents.push(tmpDir);
  return { ...DEFAULT_GIT_OPTIONS, allowedSchemes: ['https', 'http'], allowPrivateHosts: true, timeoutMs: 30_000, tmpDir, ...extra };
}

function read(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8');
}

function worktree(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f !== '.git')
    .sort();
}

function rejection(message: RegExp, permanent: boolean, code: GitSourceErrorCode) {
  return (e: unknown) => {
    assert.ok(e instanceof GitSourceError, `expected a GitSourceError, got ${String(e)}`);
    assert.match(e.message, message);
    assert.equal(e.code, code, `code for: ${e.message}`);
    assert.equal(e.permanent, permanent, `permanent for: ${e.message}`);
    return true;
  };
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Linux: git processes still running for url (a killed git must not leave its helpers behind). */
function gitProcessesFor(url: string): string[] {
  if (process.platform !== 'linux') return [];
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    let state = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
    } catch {
      continue;
    }
    if (cmd.includes(url) && state !== 'Z') found.push(`${pid} ${cmd}`); // zombies are already dead
  }
  return found;
}

before(async () => {
  ({ shas: demo } = await makeRepo(root, 'demo', [{ 'a.txt': 'one\n' }, { 'b.txt': 'two\n', 'src/lib.py': 'print(2)\n' }, { 'c.txt': 'three\n' }]));
  await makeRepo(root, 'with-submodule', [
    {
      'README.md': 'has a submodule\n',
      '.gitmodules': `[submodule "lib"]\n\tpath = vendor/lib\n\turl = ext::sh -c touch% ${marker}\n`,
      'vendor/lib': gitlink(demo[0]),
    },
  ]);
  await makeRepo(root, 'big', [{ 'random.bin': randomBytes(Math.ceil((3 * MiB * 3) / 4)).toString('base64') }]);
  await makeRepo(root, 'bomb', [{ 'zeros.txt': '0'.repeat(3 * MiB) }]);
  server = await startGitServer(root);
  strictServer = await startGitServer(root, { allowAnySha1InWant: false });
});

after(async () => {
  await server?.close();
  await strictServer?.close();
  for (const dir of [root, ...parents]) fs.rmSync(dir, { recursive: true, force: true });
});

test('clones a branch: its head commit, files on disk, cleanup removes the dir', async () => {
  const src = await cloneRepo(server.repoUrl('demo'), 'main', options());
  assert.equal(src.sha, demo[2]);
  assert.equal(src.ref, 'main');
  assert.deepEqual(worktree(src.dir), ['a.txt', 'b.txt', 'c.txt', 'src']);
  assert.equal(read(src.dir, 'c.txt'), 'three\n');
  assert.ok(fs.existsSync(path.join(src.dir, '.git', 'shallow')), 'the clone is shallow');
  await src.cleanup();
  assert.equal(fs.existsSync(src.dir), false);
});

test('clones a tag (annotated, peeled to its commit)', async () => {
  const src = await cloneRepo(server.repoUrl('demo'), 'v1', options());
  try {
    assert.equal(src.sha, demo[0]);
    assert.deepEqual(worktree(src.dir), ['a.txt']);
  } finally {
    await src.cleanup();
  }
});

test('clones the full sha of an older commit, not the branch head', async () => {
  const src = await cloneRepo(server.repoUrl('demo'), demo[1], options());
  try {
    assert.equal(src.sha, demo[1]);
    assert.deepEqual(worktree(src.dir), ['a.txt', 'b.txt', 'src']);
    assert.equal(read(src.dir, 'src/lib.py'), 'print(2)\n');
    assert.ok(fs.existsSync(path.join(src.dir, '.git', 'shallow')), 'fetched at depth 1');
  } finally {
    await src.cleanup();
  }
});

test('a full sha the server will not hand out directly falls back to fetching the branches', async () => {
  const src = await cloneRepo(strictServer.repoUrl('demo'), demo[1], options());
  try {
    assert.equal(src.sha, demo[1]);
    assert.deepEqual(worktree(src.dir), ['a.txt', 'b.txt', 'src']);
  } finally {
    await src.cleanup();
  }
});

test('clones a short sha (via the full fetch)', async () => {
  const src = await cloneRepo(server.repoUrl('demo'), demo[1].slice(0, 7), options());
  try {
    assert.equal(src.sha, demo[1]);
    assert.deepEqual(worktree(src.dir), ['a.txt', 'b.txt', 'src']);
  } finally {
    await src.cleanup();
  }
});

test('an unknown branch is a permanent error naming it; nothing is left behind', async () => {
  const o = options();
  await assert.rejects(
    cloneRepo(server.repoUrl('demo'), 'no-such-branch', o),
    rejection(/the ref 'no-such-branch' was not found in http:\/\/127\.0\.0\.1:\d+\/demo\.git/, true, 'ref-not-found'),
  );
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
});

test('an unknown commit sha is a permanent error naming it', async () => {
  const sha = 'deadbeef'.repeat(5);
  await assert.rejects(cloneRepo(server.repoUrl('demo'), sha, options()), rejection(new RegExp(`commit '${sha}' was not found`), true, 'ref-not-found'));
});

test('a missing repository is a permanent error naming it', async () => {
  const o = options();
  await assert.rejects(
    cloneRepo(server.repoUrl('missing'), 'main', o),
    rejection(/the repository http:\/\/127\.0\.0\.1:\d+\/missing\.git was not found/, true, 'repo-not-found'),
  );
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
});

test('redirects are not followed', async () => {
  await assert.rejects(cloneRepo(`${server.url}/redirect/demo.git`, 'main', options()), rejection(/redirected/, true, 'redirected'));
});

test('submodules are never cloned (even an ext:: one), no hooks are installed', async () => {
  const src = await cloneRepo(server.repoUrl('with-submodule'), 'main', options());
  try {
    assert.equal(read(src.dir, 'README.md'), 'has a submodule\n');
    const sub = path.join(src.dir, 'vendor', 'lib');
    assert.deepEqual(fs.existsSync(sub) ? fs.readdirSync(sub) : [], [], 'the submodule dir is empty');
    assert.equal(fs.existsSync(path.join(src.dir, '.git', 'modules')), false);
    assert.equal(fs.existsSync(marker), false, 'the ext:: submodule URL never ran');
    const hooks = path.join(src.dir, '.git', 'hooks');
    assert.deepEqual(fs.existsSync(hooks) ? fs.readdirSync(hooks) : [], [], 'no template hooks were copied');
  } finally {
    await src.cleanup();
  }
});

test('size cap: a 3 MiB random file with maxBytes 1 MiB fails and the temp dir is gone', async () => {
  const o = options({ maxBytes: 1 * MiB });
  await assert.rejects(cloneRepo(server.repoUrl('big'), 'main', o), rejection(/the repository is larger than 1 MiB/, true, 'too-large'));
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
});

test('size cap: a highly compressed 3 MiB file is refused before checkout writes it', async () => {
  const o = options({ maxBytes: 1 * MiB });
  await assert.rejects(cloneRepo(server.repoUrl('bomb'), 'main', o), rejection(/the repository is larger than 1 MiB/, true, 'too-large'));
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
});

test('timeout: a server that never answers fails within ~5 s and leaves no git behind', async () => {
  const o = options({ timeoutMs: 2000 });
  const url = `${server.url}/stall/demo.git`;
  const started = Date.now();
  await assert.rejects(cloneRepo(url, 'main', o), rejection(/the clone took longer than 2 s/, true, 'timeout'));
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1900 && elapsed < 5000, `took ${elapsed} ms`);
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
  assert.deepEqual(gitProcessesFor(url), []);
});

test('connection refused is a transient error', async () => {
  const o = options();
  await assert.rejects(
    cloneRepo(`http://127.0.0.1:${await closedPort()}/demo.git`, 'main', o),
    rejection(/could not fetch from '127\.0\.0\.1:\d+'.*try again later/, false, 'unreachable'),
  );
  assert.deepEqual(fs.readdirSync(o.tmpDir), []);
});

test('a private host is refused before any traffic when allowPrivateHosts is false', async () => {
  const o = options({ allowPrivateHosts: false });
  const before = server.requestCount();
  await assert.rejects(cloneRepo(server.repoUrl('demo'), 'main', o), rejection(/'127\.0\.0\.1' is a private or local address/, true, 'private-host'));
  assert.equal(server.requestCount(), before, 'the server saw no request');
  assert.deepEqual(fs.readdirSync(o.tmpDir), [], 'no temp dir was even created');
});

test('a bad ref or URL is refused before any traffic', async () => {
  const before = server.requestCount();
  await assert.rejects(cloneRepo(server.repoUrl('demo'), '--upload-pack=touch /tmp/x', options()), rejection(/must not start with '-'/, true, 'invalid-ref'));
  await assert.rejects(cloneRepo('ext::sh -c touch% /tmp/pwned', 'main', options()), rejection(/scheme 'ext' is not accepted/, true, 'invalid-url'));
  assert.equal(server.requestCount(), before);
});
