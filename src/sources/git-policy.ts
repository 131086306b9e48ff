/**
 * What Kiln accepts as a git source: the options, the repository URL and ref rules, and the
 * private-host check (the outbound-address policy of outbound.ts), all before git runs. The clone
 * itself is in git-source.ts.
 */
import * as net from 'node:net';
import { effectiveSchemes, isPublicAddress, OutboundError, resolveOutbound, schemeHint } from './outbound';

export interface GitSourceOptions {
  /** URL schemes accepted; only 'https' and 'http' are supported (others are ignored). The outbound policy's. */
  allowedSchemes: string[];
  /** false: refuse every address the outbound policy refuses (outbound.ts), also when a host name resolves to one. */
  allowPrivateHosts: boolean;
  /** The whole clone (DNS check, fetch, checkout). */
  timeoutMs: number;
  /** Size of the checked-out tree + .git. */
  maxBytes: number;
  /** Parent for the temp dir (default os.tmpdir()). */
  tmpDir?: string;
}

export const DEFAULT_GIT_OPTIONS: GitSourceOptions = Object.freeze({
  allowedSchemes: Object.freeze(['https']) as string[],
  allowPrivateHosts: false,
  timeoutMs: 120_000,
  maxBytes: 512 * 1024 * 1024,
});

/**
 * What kind of failure a GitSourceError is, for callers to act on (the HTTP status of a submission
 * is chosen from it in runs/source-status.ts); the message is for people and may be reworded.
 */
export type GitSourceErrorCode =
  /** the repository URL: empty, too long, an option, a form or scheme not accepted, credentials, no host */
  | 'invalid-url'
  /** the ref: not a plain branch, tag or commit sha */
  | 'invalid-ref'
  /** the host is, or resolves to, an address the outbound policy refuses */
  | 'private-host'
  /** the ref or commit is not in the repository, or names no commit */
  | 'ref-not-found'
  /** a short sha that matches several commits */
  | 'ambiguous-ref'
  | 'repo-not-found'
  | 'auth-required'
  /** the server answered with a redirect (not followed) */
  | 'redirected'
  | 'tls'
  /** the server did not answer as a git repository */
  | 'not-a-repository'
  /** the commit holds a path git refuses to check out */
  | 'unsafe-tree'
  /** the clone took longer than timeoutMs */
  | 'timeout'
  /** the repository is larger than maxBytes */
  | 'too-large'
  /** transient: the host could not be resolved or reached, or the server failed (5xx, 429) */
  | 'unreachable'
  /** transient: git failed in a way not classified above */
  | 'git-failed';

/** The codes of failures that may pass when tried again; every other code is bad input. */
const TRANSIENT: readonly GitSourceErrorCode[] = ['unreachable', 'git-failed'];

/**
 * A refused URL/ref or a failed clone. permanent=true for bad input (4xx), false for transient
 * (network) failures; it follows from the code. The message says what is wrong and what to fix.
 */
export class GitSourceError extends Error {
  override readonly name = 'GitSourceError';
  constructor(
    readonly code: GitSourceErrorCode,
    message: string,
  ) {
    super(message);
  }

  get permanent(): boolean {
    return !TRANSIENT.includes(this.code);
  }
}

const MAX_URL_LENGTH = 2048;
const MAX_REF_LENGTH = 255;
const CONTROL_OR_SPACE = /[\s\x00-\x1f\x7f]/;

// ---------------------------------------------------------------------------------------------
// Validation

/** Refuses local paths, scp-like addresses and schemes outside allowedSchemes (ext::, fd::, file:, ssh:). */
function checkScheme(repo: string, opts: GitSourceOptions): void {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(repo)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (/^[^/\\]+:/.test(repo)) {
      const hint = `give the repository's URL (${schemeHint(opts)})`;
      throw new GitSourceError('invalid-url', `scp-like SSH addresses such as '${clip(repo)}' are not accepted; ${hint}`);
    }
    throw new GitSourceError('invalid-url', `'${clip(repo)}' is not a URL (local paths are not accepted); ${schemeHint(opts)}`);
  }
  if (!effectiveSchemes(opts).includes(scheme)) {
    throw new GitSourceError('invalid-url', `the URL scheme '${scheme}' is not accepted; ${schemeHint(opts)}`);
  }
}

/** Checks that need no network; returns the WHATWG-normalized URL. */
function parseRepoUrl(repo: string, opts: GitSourceOptions): URL {
  if (typeof repo !== 'string' || repo.length === 0) throw new GitSourceError('invalid-url', `the repository URL is empty; ${schemeHint(opts)}`);
  if (repo.length > MAX_URL_LENGTH) {
    throw new GitSourceError('invalid-url', `the repository URL is ${repo.length} characters long; the limit is ${MAX_URL_LENGTH}`);
  }
  // Git would read a leading '-' as an option.
  if (repo.startsWith('-')) throw new GitSourceError('invalid-url', `the repository URL must not start with '-'; ${schemeHint(opts)}`);
  checkScheme(repo, opts);
  // WHATWG URL silently strips tabs/newlines, so look at the raw string.
  if (CONTROL_OR_SPACE.test(repo)) {
    throw new GitSourceError('invalid-url', 'the repository URL contains whitespace or control characters; remove them or percent-encode them');
  }
  let url: URL;
  try {
    url = new URL(repo);
  } catch {
    throw new GitSourceError('invalid-url', `'${clip(repo)}' is not a valid URL; ${schemeHint(opts)}`);
  }
  checkScheme(url.href, opts); // the normalized form must agree
  if (url.username || url.password) {
    throw new GitSourceError('invalid-url', 'credentials in the URL are not accepted; remove user:password@ (only public repositories can be cloned)');
  }
  if (!url.hostname) throw new GitSourceError('invalid-url', `the repository URL has no host; ${schemeHint(opts)}`);
  return url;
}

/**
 * Validates repo WITHOUT touching the network except DNS for the private-host check.
 * Returns the normalized URL.
 */
export async function validateRepoUrl(repo: string, opts: GitSourceOptions): Promise<URL> {
  return (await checkRepoUrl(repo, opts)).url;
}

export interface CheckedUrl {
  url: URL;
  /** Addresses the host name resolved to, pinned for git so a second lookup cannot differ. */
  pinned: string[];
}

export async function checkRepoUrl(repo: string, opts: GitSourceOptions): Promise<CheckedUrl> {
  const url = parseRepoUrl(repo, opts);
  if (opts.allowPrivateHosts) return { url, pinned: [] };
  return { url, pinned: await checkPublicHost(url.hostname) };
}

// ---------------------------------------------------------------------------------------------
// Private hosts: the outbound-address policy (outbound.ts) decides, for git as for every connection.

/** true for any address the outbound policy refuses: loopback, private, link-local, CGNAT, every IANA special-purpose range, and IPv6 forms carrying one. */
export function isPrivateAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  return net.isIP(bare) !== 0 && !isPublicAddress(bare);
}

/** Refuses a private host; returns the resolved addresses of a host name ([] for an IP literal). */
async function checkPublicHost(hostname: string): Promise<string[]> {
  try {
    return await resolveOutbound(hostname, { allowedSchemes: [], allowPrivateHosts: false });
  } catch (e) {
    if (e instanceof OutboundError) throw new GitSourceError(e.permanent ? 'private-host' : 'unreachable', e.message);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Refs

/** Validates a branch, tag or commit sha; returns it unchanged. */
export function validateRef(ref: string): string {
  const hint = 'give a branch, tag or commit sha';
  if (typeof ref !== 'string' || ref.length === 0) throw new GitSourceError('invalid-ref', `the ref is empty; ${hint}`);
  if (ref.length > MAX_REF_LENGTH) throw new GitSourceError('invalid-ref', `the ref is ${ref.length} characters long; the limit is ${MAX_REF_LENGTH}`);
  if (ref.startsWith('-')) throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' must not start with '-'; ${hint}`);
  if (CONTROL_OR_SPACE.test(ref)) throw new GitSourceError('invalid-ref', `the ref contains whitespace or control characters; ${hint}`);
  for (const seq of ['..', '@{', '//']) {
    if (ref.includes(seq)) throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' must not contain '${seq}'; ${hint}`);
  }
  if (ref.endsWith('.lock')) throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' must not end with '.lock'; ${hint}`);
  if (ref.endsWith('/') || ref.startsWith('/')) throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' must not start or end with '/'; ${hint}`);
  if (!/^[A-Za-z0-9._/-]+$/.test(ref)) {
    throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' may only contain letters, digits, '.', '_', '/' and '-'; ${hint}`);
  }
  if (/(^|\/)\./.test(ref)) throw new GitSourceError('invalid-ref', `the ref '${clip(ref)}' has a part starting with '.'; ${hint}`);
  return ref;
}

/** Hostile text for a message: control characters blanked, at most `max` characters. */
export function clip(text: string, max = 120): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, ' ');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
