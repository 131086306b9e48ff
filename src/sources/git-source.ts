/**
 * Git sources: clone a stranger's `{ repo, ref }` into a fresh temp dir, shallow, with a time and
 * size cap. The URL and the ref are hostile input, so they are validated before anything runs,
 * never reach git as options, and every git command runs in a locked-down environment.
 *
 * How the lock-down is applied: simple-git (3.36+) refuses, with its default `unsafe` settings,
 * any command line or environment that *sets* protocol.allow, core.hooksPath, credential.helper,
 * core.fsmonitor, core.askPass, GIT_ASKPASS or GIT_CONFIG_GLOBAL — even to safe values. Rather
 * than enabling those allowances, the settings live in a private global config file
 * ($HOME/.gitconfig, HOME being a fresh temp dir, no system config), which git reads for every
 * command; see gitConfigFor().
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { scratchName } from '../storage/scratch';
import { CloneGuard } from './clone-guard';
import { checkRepoUrl, clip, GitSourceError, type CheckedUrl, type GitSourceOptions, validateRef } from './git-policy';
import { effectiveSchemes } from './outbound';
import { GitError, simpleGit, type SimpleGit } from 'simple-git';

export interface ClonedSource {
  dir: string;
  sha: string;
  ref: string;
  cleanup(): Promise<void>;
}

const FULL_SHA = /^[0-9a-f]{40}$/i;
const SHORT_SHA = /^[0-9a-f]{7,39}$/i;

// ---------------------------------------------------------------------------------------------
// Git environment

/**
 * The git settings every command runs with, as [key, value] pairs (exported for tests/audits).
 * Written to the private global config; `pinned` adds http.curloptResolve so libcurl connects to
 * the addresses that passed the private-host check (no DNS rebinding between check and fetch).
 */
export function gitConfigFor(opts: GitSourceOptions, url?: URL, pinned: string[] = [], templateDir = '/nonexistent'): [string, string][] {
  const entries: [string, string][] = [
    ['protocol.allow', 'never'],
    ...effectiveSchemes(opts).map((s): [string, string] => [`protocol.${s}.allow`, 'always']),
    ['core.hooksPath', '/dev/null'],
    ['core.fsmonitor', 'false'],
    ['core.symlinks', 'true'],
    ['core.askPass', '/bin/false'],
    ['credential.helper', ''],
    ['submodule.recurse', 'false'],
    ['fetch.recurseSubmodules', 'false'],
    ['http.followRedirects', 'false'],
    // A stalled server must not keep a helper alive forever if a kill is ever missed.
    ['http.lowSpeedLimit', '1'],
    ['http.lowSpeedTime', String(Math.max(1, Math.ceil(opts.timeoutMs / 1000)))],
    ['init.templateDir', templateDir], // no sample hooks or other template files
    ['init.defaultBranch', 'kiln'],
    ['advice.detachedHead', 'false'],
    ['gc.auto', '0'],
    ['maintenance.auto', 'false'],
  ];
  if (url && pinned.length > 0) {
    const port = url.port || (url.protocol === 'http:' ? '80' : '443');
    const addrs = pinned.map((a) => (net.isIPv6(a) ? `[${a}]` : a)).join(',');
    entries.push(['http.curloptResolve', `${url.hostname}:${port}:${addrs}`]);
  }
  return entries;
}

function configFileText(entries: [string, string][]): string {
  const quote = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return entries
    .map(([key, value]) => {
      const first = key.indexOf('.');
      const last = key.lastIndexOf('.');
      const section = first === last ? key.slice(0, first) : `${key.slice(0, first)} ${quote(key.slice(first + 1, last))}`;
      return `[${section}]\n\t${key.slice(last + 1)} = ${quote(value)}\n`;
    })
    .join('');
}

function gitEnv(home: string, opts: GitSourceOptions): Record<string, string> {
  // Built from scratch: nothing (proxies, GIT_*, askpass) leaks in from the server's environment.
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PROTOCOL_FROM_USER: '0',
    GIT_ALLOW_PROTOCOL: effectiveSchemes(opts).join(':'),
    LC_ALL: 'C', // stable English messages for classifyGitError
    LANG: 'C',
  };
}

async function makeHome(opts: GitSourceOptions, checked: CheckedUrl): Promise<string> {
  const home = await makeScratchDir(opts, 'git-home');
  const templates = path.join(home, 'templates');
  await fs.promises.mkdir(templates);
  const text = configFileText(gitConfigFor(opts, checked.url, checked.pinned, templates));
  await fs.promises.writeFile(path.join(home, '.gitconfig'), text, { mode: 0o600 });
  return home;
}

function makeGit(dir: string, home: string, opts: GitSourceOptions, signal: AbortSignal): SimpleGit {
  // unsafe: {} keeps simple-git's default blocking of -u/--upload-pack, protocol overrides, etc.
  return simpleGit({ baseDir: dir, abort: signal, maxConcurrentProcesses: 1, trimmed: true, unsafe: {} }).env(gitEnv(home, opts));
}

// ---------------------------------------------------------------------------------------------
// Error classification

/** The most telling line of git's stderr, cleaned for a user-facing message. */
function gitDetail(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const fatal = lines.filter((l) => /^(fatal|error):/.test(l)).pop() ?? lines.pop() ?? 'git failed';
  return clip(fatal.replace(/^(fatal|error):\s*/, ''), 300);
}

/** Maps git's stderr to a GitSourceError with a fix. */
export function classifyGitError(stderr: string, repo: string, ref: string): GitSourceError {
  const detail = gitDetail(stderr);
  const host = safeHost(repo);
  const rules: [RegExp, () => GitSourceError][] = [
    [/couldn't find remote ref/i, () => new GitSourceError('ref-not-found', `the ref '${ref}' was not found in ${repo}; check the branch or tag name`)],
    [
      /not our ref|unadvertised object|no such (commit|object)/i,
      () => new GitSourceError('ref-not-found', `the commit '${ref}' was not found in ${repo}; check the sha`),
    ],
    [
      /repository '.*' not found|returned error: 404|returned error: 410/i,
      () => new GitSourceError('repo-not-found', `the repository ${repo} was not found; check the URL (only public repositories can be cloned)`),
    ],
    [
      /returned error: 40[13]|authentication failed|could not read (username|password)|terminal prompts disabled/i,
      () => new GitSourceError('auth-required', `the repository ${repo} requires authentication; only public repositories can be cloned`),
    ],
    [
      /returned error: 30\d/i,
      () => new GitSourceError('redirected', `the server redirected ${repo}; give the final repository URL (redirects are not followed)`),
    ],
    [
      /could not resolve (host|proxy)/i,
      () => new GitSourceError('unreachable', `could not resolve the host '${host}'; check the host name or try again later`),
    ],
    [
      /failed to connect|couldn't connect|connection refused|connection (timed out|reset)|operation timed out|recv failure|send failure|early eof|rpc failed|returned error: (5\d\d|429)|transfer closed/i,
      () => new GitSourceError('unreachable', `could not fetch from '${host}' (${detail}); try again later`),
    ],
    [/ssl|certificate|tls/i, () => new GitSourceError('tls', `a TLS error occurred with '${host}' (${detail}); the server needs a valid certificate`)],
    [
      /not valid: is this a git repository|does not appear to be a git repository|invalid server response|protocol error|bad pack header/i,
      () => new GitSourceError('not-a-repository', `${repo} did not answer as a git repository (${detail}); check the URL`),
    ],
    [/transport '.*' not allowed|unsupported protocol/i, () => new GitSourceError('invalid-url', `the URL scheme is not accepted (${detail})`)],
    // git's own checks on the tree (a path inside .git, a name NTFS or HFS would alias): the content, not the network.
    [
      /invalid path '|error: unable to create file|refusing to (create|check ?out)/i,
      () =>
        new GitSourceError('unsafe-tree', `the commit '${ref}' of ${repo} holds a path git refuses to check out (${detail}); remove it from the repository`),
    ],
  ];
  for (const [pattern, make] of rules) if (pattern.test(stderr)) return make();
  return new GitSourceError('git-failed', `git failed to fetch ${repo} at '${ref}' (${detail}); try again later`);
}

function safeHost(repo: string): string {
  try {
    return new URL(repo).host;
  } catch {
    return repo;
  }
}

function stderrOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// Clone

/**
 * Clones repo at ref (shallow, depth 1), checks out exactly that commit, returns the dir and the
 * resolved 40-hex sha. On error the temp dir is removed.
 */
export async function cloneRepo(repo: string, ref: string, opts: GitSourceOptions): Promise<ClonedSource> {
  validateRef(ref);
  const guard = new CloneGuard(opts);
  let dir: string | undefined;
  let home: string | undefined;
  try {
    const checked = await guard.race(checkRepoUrl(repo, opts));
    dir = await makeScratchDir(opts, 'clone');
    home = await makeHome(opts, checked);
    guard.watch(dir);
    const git = makeGit(dir, home, opts, guard.signal);
    const sha = await fetchAndCheckout(git, guard, checked.url.href, ref);
    const cloned = dir;
    return { dir: cloned, sha, ref, cleanup: () => removeDir(cloned) };
  } catch (e) {
    if (dir) await removeDir(dir);
    // Only git's own failures are classified; anything else (e.g. a bad tmpDir) is a server fault.
    throw guard.error() ?? (e instanceof GitError ? classifyGitError(stderrOf(e), repo, ref) : e);
  } finally {
    guard.stop();
    if (home) await removeDir(home);
  }
}

/** A private (0700) folder named for its owner, so a sweeper can remove it once this process is gone. */
async function makeScratchDir(opts: GitSourceOptions, kind: string): Promise<string> {
  const dir = path.join(opts.tmpDir ?? os.tmpdir(), scratchName(kind));
  await fs.promises.mkdir(dir, { mode: 0o700 });
  return dir;
}

async function removeDir(dir: string): Promise<void> {
  // Retries: a killed git may still be unlinking its temp files.
  await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

async function fetchAndCheckout(git: SimpleGit, guard: CloneGuard, url: string, ref: string): Promise<string> {
  await git.raw(['init', '-q']);
  await git.raw(['remote', 'add', '--', 'origin', url]);
  const sha = await fetchRef(git, guard, url, ref);
  await guard.checkSize(await treeSize(git, sha)); // refuse before checkout writes a compressed bomb out
  await git.raw(['checkout', '-q', '--no-recurse-submodules', '--detach', sha]);
  await guard.checkSize();
  const head = await git.raw(['rev-parse', '--verify', 'HEAD']);
  if (head !== sha) throw new GitSourceError('git-failed', `checked out ${head} instead of ${sha}`);
  return sha;
}

const FETCH = ['fetch', '--no-tags', '--no-recurse-submodules', '--no-auto-maintenance', '--no-write-commit-graph'];

/** Fetches ref shallowly (or the whole branch history for shas the server will not hand out); returns the commit sha. */
async function fetchRef(git: SimpleGit, guard: CloneGuard, url: string, ref: string): Promise<string> {
  const wanted = FULL_SHA.test(ref) ? ref.toLowerCase() : ref;
  try {
    await git.raw([...FETCH, '--depth=1', '--', 'origin', wanted]);
  } catch (e) {
    guard.throwIfTripped();
    if (!needsFullFetch(ref, stderrOf(e))) throw classifyGitError(stderrOf(e), url, ref);
    return fullFetchAndFind(git, guard, url, ref);
  }
  await guard.checkSize();
  return peelCommit(git, 'FETCH_HEAD', url, ref);
}

/** A sha the server refused to hand out directly, or a short sha that is no ref name. */
function needsFullFetch(ref: string, stderr: string): boolean {
  if (FULL_SHA.test(ref)) return /not our ref|unadvertised object|couldn't find remote ref|no such/i.test(stderr);
  return SHORT_SHA.test(ref) && /couldn't find remote ref/i.test(stderr);
}

async function fullFetchAndFind(git: SimpleGit, guard: CloneGuard, url: string, ref: string): Promise<string> {
  try {
    await git.raw([...FETCH, '--', 'origin', '+refs/heads/*:refs/remotes/origin/*']);
  } catch (e) {
    guard.throwIfTripped();
    throw classifyGitError(stderrOf(e), url, ref);
  }
  await guard.checkSize();
  const sha = ref.toLowerCase();
  const found = await git.raw(['rev-parse', '--verify', '--quiet', `${sha}^{commit}`]).catch(() => '');
  if (FULL_SHA.test(found)) return found;
  guard.throwIfTripped();
  if (!FULL_SHA.test(sha) && (await isAmbiguous(git, sha))) {
    throw new GitSourceError('ambiguous-ref', `the short sha '${ref}' matches several commits in ${url}; give more characters`);
  }
  throw new GitSourceError('ref-not-found', `the commit '${ref}' was not found on any branch of ${url}; check the sha`);
}

async function isAmbiguous(git: SimpleGit, prefix: string): Promise<boolean> {
  const out = await git.raw(['rev-parse', `--disambiguate=${prefix}`]).catch(() => '');
  return out.split('\n').filter(Boolean).length > 1;
}

async function peelCommit(git: SimpleGit, rev: string, url: string, ref: string): Promise<string> {
  const sha = await git.raw(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]).catch(() => '');
  if (!FULL_SHA.test(sha)) throw new GitSourceError('ref-not-found', `the ref '${ref}' in ${url} does not point to a commit`);
  return sha;
}

/** Bytes the checkout of commit will write (blob sizes from ls-tree). */
async function treeSize(git: SimpleGit, sha: string): Promise<number> {
  const out = await git.raw(['ls-tree', '-r', '-l', '-z', '--full-tree', sha]);
  let total = 0;
  for (const entry of out.split('\0')) {
    const size = /^\S+ blob \S+ +(\d+)\t/.exec(entry)?.[1];
    if (size) total += Number(size);
  }
  return total;
}
