// The per-entry rules of the tar safety gate (tar-safety.ts): names, link targets, types, modes,
// placement, sizes and counts, applied in archive order by EntryChecker.
import type { Header } from 'tar-stream';
import { formatBytes } from '../common/size';
import { clip, refuse, shownName, type Noun, type SanitizedTar, type TarLimits } from './tar-safety';

/** What pack.entry() takes: a header with only the name required. */
export type HeaderArg = Partial<Header> & Pick<Header, 'name'>;
/** tar-stream reports unknown typeflags as null although its types do not say so. */
type EntryType = Header['type'] | null | undefined;

/** Owner of every re-packed entry: the unprivileged user jobs run as. */
const RUNNER_ID = 1001;
const RUNNER_NAME = 'runner';
const ALLOWED = 'only regular files, directories and symlinks are accepted';
/** Largest mtime tar-stream can encode (it packs seconds into a signed 32-bit int). */
const MAX_MTIME_MS = 0x7fffffff * 1000;

// ---------------------------------------------------------------------------------------------
// Path rules (shared by tar entries and the inline "quick form")

const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

function isAbsolute(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p);
}

/**
 * Checks a name and returns it normalized ("./a//b/" -> "a/b"), or null for the root entry ".".
 * "." segments are dropped everywhere so "a/./b" cannot dodge the duplicate and symlink checks.
 */
export function normalizeName(raw: string, limits: TarLimits, noun: Noun): string | null {
  const shown = shownName(raw);
  if (CONTROL_CHARS.test(raw)) {
    throw refuse('unsafe-path', noun, shown, 'the name contains control characters (NUL, newline, ...); rename it');
  }
  if (isAbsolute(raw)) {
    throw refuse('unsafe-path', noun, shown, 'absolute paths are not allowed; store paths relative to the project root');
  }
  if (raw.includes('\\')) {
    throw refuse('unsafe-path', noun, shown, "backslashes are not allowed in names; use '/' as the separator");
  }
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw refuse('unsafe-path', noun, shown, "path leaves the workspace ('..' is not allowed)");
  }
  if (segments.length === 0) {
    if (raw === '') throw refuse('invalid', noun, shown, 'the name is empty; every entry needs a relative path');
    return null;
  }
  const path = segments.join('/');
  const bytes = Buffer.byteLength(path);
  if (bytes > limits.maxPathLength) {
    throw refuse('name-too-long', noun, shown, `path is ${bytes} bytes long, over the limit of ${limits.maxPathLength}; shorten it`);
  }
  if (segments.length > limits.maxDepth) {
    throw refuse('too-deep', noun, shown, `path is ${segments.length} levels deep, over the limit of ${limits.maxDepth}; flatten the directory tree`);
  }
  return path;
}

/** Lexical normalization for tars we already sanitized (no checks needed, names are clean). */
export function plainPath(raw: string): string {
  return raw
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

export function parentsOf(path: string): string[] {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) out.push(segments.slice(0, i).join('/'));
  return out;
}

/**
 * A symlink target must be relative and stay inside the root. '..' is only allowed as a prefix
 * ("../../lib/x"): a '..' after a name ("s/../..") would be resolved by the kernel through
 * whatever "s" is, possibly another symlink, so a lexical check could not vouch for it.
 */
function checkLinkTarget(path: string, target: string, limits: TarLimits, shown: string): void {
  const t = shownName(target);
  if (target === '') throw refuse('invalid', 'entry', shown, 'symlink has an empty target; remove it');
  if (CONTROL_CHARS.test(target)) {
    throw refuse('unsafe-path', 'entry', shown, `symlink target '${clip(t)}' contains control characters; remove the link`);
  }
  if (Buffer.byteLength(target) > limits.maxPathLength) {
    throw refuse('name-too-long', 'entry', shown, `symlink target is over the limit of ${limits.maxPathLength} bytes; shorten it`);
  }
  if (isAbsolute(target) || target.includes('\\')) {
    throw refuse('unsafe-path', 'entry', shown, `symlink target '${clip(t)}' is absolute; only relative targets inside the workspace are allowed`);
  }
  let level = path.split('/').length - 1; // depth of the link's own directory
  let descended = false;
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg !== '..') {
      descended = true;
      continue;
    }
    if (descended) {
      throw refuse(
        'unsafe-path',
        'entry',
        shown,
        `symlink target '${clip(t)}' has '..' after a directory name; write it with leading '..' only (e.g. '../lib')`,
      );
    }
    if (--level < 0) {
      throw refuse('unsafe-path', 'entry', shown, `symlink target '${clip(t)}' points outside the workspace; link only to paths inside the archive`);
    }
  }
}

function typeProblem(type: EntryType): string | null {
  switch (type) {
    case 'file':
    case 'directory':
    case 'symlink':
      return null;
    case 'link':
      return 'hard links are not accepted (re-create the archive with `tar --hard-dereference`)';
    case 'character-device':
      return `character devices are not accepted; ${ALLOWED}`;
    case 'block-device':
      return `block devices are not accepted; ${ALLOWED}`;
    case 'fifo':
      return `FIFOs (named pipes) are not accepted; ${ALLOWED}`;
    case 'contiguous-file':
      return `contiguous files are not accepted; ${ALLOWED} (re-create the archive with GNU tar or bsdtar)`;
    default:
      // tar-stream reports unknown typeflags (sparse files, volume labels, ...) as null.
      return `entries of an unknown type (e.g. sparse files or volume labels) are not accepted; ${ALLOWED}`;
  }
}

type Kind = 'file' | 'directory' | 'symlink';

function cleanMode(mode: number | undefined, kind: Kind): number {
  // & 0o777 drops setuid/setgid/sticky; & ~0o022 drops group/other write.
  const base = (mode ?? 0) & 0o777 & ~0o022;
  return base | (kind === 'directory' ? 0o755 : 0o644);
}

function cleanMtime(mtime: Date | undefined): Date {
  const t = mtime?.getTime();
  return t !== undefined && Number.isFinite(t) && t >= 0 && t <= MAX_MTIME_MS ? mtime! : new Date(0);
}

function cleanHeader(path: string, kind: Kind, h: HeaderArg): HeaderArg {
  return {
    name: path,
    type: kind,
    size: kind === 'file' ? (h.size ?? 0) : 0,
    mode: cleanMode(h.mode, kind),
    mtime: cleanMtime(h.mtime),
    linkname: kind === 'symlink' ? h.linkname : undefined,
    uid: RUNNER_ID,
    gid: RUNNER_ID,
    uname: RUNNER_NAME,
    gname: RUNNER_NAME,
  };
}

export type Decision = { kind: 'keep'; header: HeaderArg; shown: string } | { kind: 'skip' };

/** Applies the per-entry rules in archive order and remembers what the archive has built so far. */
export class EntryChecker {
  private seen = 0;
  private readonly kinds = new Map<string, Kind>();
  private readonly implicitDirs = new Set<string>();
  readonly paths: string[] = [];
  files = 0;
  totalBytes = 0;
  droppedLinks = 0;

  constructor(
    private readonly limits: TarLimits,
    private readonly noun: Noun,
    private readonly dropLinks: boolean,
  ) {}

  has(path: string): boolean {
    return this.kinds.has(path);
  }

  check(header: HeaderArg): Decision {
    const shown = shownName(header.name);
    if (++this.seen > this.limits.maxEntries) {
      const max = this.limits.maxEntries;
      throw refuse('too-many-entries', this.noun, shown, `the archive has more than ${max} entries; leave out files the build does not need`);
    }
    const path = normalizeName(header.name, this.limits, this.noun);
    const kind = this.checkType(header, shown);
    if (path === null) {
      if (kind === 'directory') return { kind: 'skip' };
      throw refuse('invalid', this.noun, shown, 'a non-directory entry has an empty name; give it a relative path');
    }
    this.checkPlacement(path, kind, shown);
    if (kind === 'file') this.checkSize(header.size ?? 0, shown);
    if (kind === 'symlink' && this.dropLinks) {
      this.record(path, kind);
      this.droppedLinks++;
      return { kind: 'skip' };
    }
    if (kind === 'symlink') checkLinkTarget(path, header.linkname ?? '', this.limits, shown);
    this.record(path, kind);
    return { kind: 'keep', header: cleanHeader(path, kind, header), shown };
  }

  private checkType(header: HeaderArg, shown: string): Kind {
    const problem = typeProblem(header.type);
    if (problem !== null) throw refuse('unsupported-type', this.noun, shown, problem);
    const kind = header.type as Kind;
    // tar-stream does not skip a body on directories; data there would be parsed as headers.
    if (kind !== 'file' && (header.size ?? 0) > 0) {
      throw refuse('invalid', this.noun, shown, `a ${kind} entry must not carry data (${header.size} bytes); re-create the archive`);
    }
    return kind;
  }

  private checkPlacement(path: string, kind: Kind, shown: string): void {
    for (const parent of parentsOf(path)) {
      const k = this.kinds.get(parent);
      if (k === 'symlink') {
        const problem = `path goes through the symlink '${parent}' from an earlier entry`;
        throw refuse('unsafe-path', this.noun, shown, `${problem}; nothing may be written through a link`);
      }
      if (k === 'file') {
        throw refuse('path-conflict', this.noun, shown, `its parent '${parent}' is a regular file, not a directory`);
      }
    }
    if (this.kinds.has(path)) {
      throw refuse('path-conflict', this.noun, shown, `duplicate name: '${path}' appears more than once; keep only one`);
    }
    if (kind !== 'directory' && this.implicitDirs.has(path)) {
      throw refuse('path-conflict', this.noun, shown, `'${path}' is already a directory holding earlier entries; rename one of them`);
    }
  }

  private checkSize(size: number, shown: string): void {
    const { maxFileBytes, maxTotalBytes } = this.limits;
    if (size > maxFileBytes) {
      const problem = `file is ${formatBytes(size)}, over the limit of ${formatBytes(maxFileBytes)} per file`;
      throw refuse('too-large', this.noun, shown, `${problem}; leave it out`);
    }
    if (this.totalBytes + size > maxTotalBytes) {
      const problem = `the files add up to more than ${formatBytes(maxTotalBytes)} uncompressed`;
      throw refuse('too-large', this.noun, shown, `${problem}, the limit for the whole archive; leave out large files`);
    }
    this.totalBytes += size;
  }

  private record(path: string, kind: Kind): void {
    this.kinds.set(path, kind);
    for (const parent of parentsOf(path)) this.implicitDirs.add(parent);
    if (kind === 'symlink' && this.dropLinks) return;
    this.paths.push(path);
    if (kind === 'file') this.files++;
  }

  summary(file: string): SanitizedTar {
    return {
      file,
      entries: this.paths.length,
      files: this.files,
      totalBytes: this.totalBytes,
      paths: [...this.paths],
      droppedLinks: this.droppedLinks,
    };
  }
}
