// Safety gate for tarballs that come from strangers (uploaded sources, artifacts out of job
// containers). Archives are parsed as a stream and never extracted on the host: every entry is
// checked and a clean tar (normalized names, tame modes, fixed owner) is re-packed to a file.
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  createWriteStream,
  fstatSync,
  lstatSync,
  opendirSync,
  openSync,
  readlinkSync,
  readSync,
  type BigIntStats,
  type WriteStream,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, pipeline, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, pack as tarPack, type Extract, type Header, type Pack } from 'tar-stream';

/** One entry of an extract stream (tar-stream does not export the type). */
type Entry = Extract extends AsyncIterable<infer S> ? S : never;
/** What pack.entry() takes: a header with only the name required. */
type HeaderArg = Partial<Header> & Pick<Header, 'name'>;
/** tar-stream reports unknown typeflags as null although its types do not say so. */
type EntryType = Header['type'] | null | undefined;

export interface TarLimits {
  maxEntries: number;
  maxDepth: number;
  maxPathLength: number;
  maxFileBytes: number;
  maxTotalBytes: number;
  maxCompressedBytes: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_SOURCE_LIMITS: TarLimits = Object.freeze({
  maxEntries: 20000,
  maxDepth: 32,
  maxPathLength: 1024,
  maxFileBytes: 256 * MiB,
  maxTotalBytes: 512 * MiB,
  maxCompressedBytes: 256 * MiB,
});

/** A refused archive. `entry` is the offending entry name when there is one. */
export class ArchiveError extends Error {
  constructor(
    message: string,
    readonly entry?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface SanitizedTar {
  file: string;
  entries: number;
  files: number;
  totalBytes: number;
  paths: string[];
  /** Symlinks skipped because of `dropLinks` (always 0 otherwise). */
  droppedLinks: number;
}

/** Owner of every re-packed entry: the unprivileged user jobs run as. */
const RUNNER_ID = 1001;
const RUNNER_NAME = 'runner';
const ALLOWED = 'only regular files, directories and symlinks are accepted';
const FIX_TAR = 'create it with e.g. `tar -czf source.tar.gz -C project .`';
/** Largest mtime tar-stream can encode (it packs seconds into a signed 32-bit int). */
const MAX_MTIME_MS = 0x7fffffff * 1000;

// ---------------------------------------------------------------------------------------------
// Messages

function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} bytes`;
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/** Names go into logs and UIs: escape control characters so they cannot forge lines. */
function shownName(raw: string): string {
  return raw.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

type Noun = 'entry' | 'file';

function refuse(noun: Noun, shown: string, problem: string): ArchiveError {
  return new ArchiveError(`${noun} '${clip(shown)}': ${problem}`, shown);
}

function invalidArchive(cause: unknown, entry: string | undefined): ArchiveError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const where = entry === undefined ? '' : ` (while reading entry '${clip(entry)}')`;
  return new ArchiveError(
    `the archive is not a valid tar or tar.gz${where}; it may be truncated or corrupt [${detail}]. Re-${FIX_TAR}`,
    entry,
  );
}

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
function normalizeName(raw: string, limits: TarLimits, noun: Noun): string | null {
  const shown = shownName(raw);
  if (CONTROL_CHARS.test(raw)) {
    throw refuse(noun, shown, 'the name contains control characters (NUL, newline, ...); rename it');
  }
  if (isAbsolute(raw)) {
    throw refuse(noun, shown, 'absolute paths are not allowed; store paths relative to the project root');
  }
  if (raw.includes('\\')) {
    throw refuse(noun, shown, "backslashes are not allowed in names; use '/' as the separator");
  }
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    throw refuse(noun, shown, "path leaves the workspace ('..' is not allowed)");
  }
  if (segments.length === 0) {
    if (raw === '') throw refuse(noun, shown, 'the name is empty; every entry needs a relative path');
    return null;
  }
  const path = segments.join('/');
  const bytes = Buffer.byteLength(path);
  if (bytes > limits.maxPathLength) {
    throw refuse(noun, shown, `path is ${bytes} bytes long, over the limit of ${limits.maxPathLength}; shorten it`);
  }
  if (segments.length > limits.maxDepth) {
    throw refuse(
      noun,
      shown,
      `path is ${segments.length} levels deep, over the limit of ${limits.maxDepth}; flatten the directory tree`,
    );
  }
  return path;
}

/** Lexical normalization for tars we already sanitized (no checks needed, names are clean). */
function plainPath(raw: string): string {
  return raw
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

function parentsOf(path: string): string[] {
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
  if (target === '') throw refuse('entry', shown, 'symlink has an empty target; remove it');
  if (CONTROL_CHARS.test(target)) {
    throw refuse('entry', shown, `symlink target '${clip(t)}' contains control characters; remove the link`);
  }
  if (Buffer.byteLength(target) > limits.maxPathLength) {
    throw refuse('entry', shown, `symlink target is over the limit of ${limits.maxPathLength} bytes; shorten it`);
  }
  if (isAbsolute(target) || target.includes('\\')) {
    throw refuse(
      'entry',
      shown,
      `symlink target '${clip(t)}' is absolute; only relative targets inside the workspace are allowed`,
    );
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
        'entry',
        shown,
        `symlink target '${clip(t)}' has '..' after a directory name; write it with leading '..' only (e.g. '../lib')`,
      );
    }
    if (--level < 0) {
      throw refuse(
        'entry',
        shown,
        `symlink target '${clip(t)}' points outside the workspace; link only to paths inside the archive`,
      );
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

type Decision = { kind: 'keep'; header: HeaderArg; shown: string } | { kind: 'skip' };

/** Applies the per-entry rules in archive order and remembers what the archive has built so far. */
class EntryChecker {
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
      throw refuse(this.noun, shown, `the archive has more than ${max} entries; leave out files the build does not need`);
    }
    const path = normalizeName(header.name, this.limits, this.noun);
    const kind = this.checkType(header, shown);
    if (path === null) {
      if (kind === 'directory') return { kind: 'skip' };
      throw refuse(this.noun, shown, 'a non-directory entry has an empty name; give it a relative path');
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
    if (problem !== null) throw refuse(this.noun, shown, problem);
    const kind = header.type as Kind;
    // tar-stream does not skip a body on directories; data there would be parsed as headers.
    if (kind !== 'file' && (header.size ?? 0) > 0) {
      throw refuse(this.noun, shown, `a ${kind} entry must not carry data (${header.size} bytes); re-create the archive`);
    }
    return kind;
  }

  private checkPlacement(path: string, kind: Kind, shown: string): void {
    for (const parent of parentsOf(path)) {
      const k = this.kinds.get(parent);
      if (k === 'symlink') {
        const problem = `path goes through the symlink '${parent}' from an earlier entry`;
        throw refuse(this.noun, shown, `${problem}; nothing may be written through a link`);
      }
      if (k === 'file') {
        throw refuse(this.noun, shown, `its parent '${parent}' is a regular file, not a directory`);
      }
    }
    if (this.kinds.has(path)) {
      throw refuse(this.noun, shown, `duplicate name: '${path}' appears more than once; keep only one`);
    }
    if (kind !== 'directory' && this.implicitDirs.has(path)) {
      throw refuse(this.noun, shown, `'${path}' is already a directory holding earlier entries; rename one of them`);
    }
  }

  private checkSize(size: number, shown: string): void {
    const { maxFileBytes, maxTotalBytes } = this.limits;
    if (size > maxFileBytes) {
      const problem = `file is ${formatBytes(size)}, over the limit of ${formatBytes(maxFileBytes)} per file`;
      throw refuse(this.noun, shown, `${problem}; leave it out`);
    }
    if (this.totalBytes + size > maxTotalBytes) {
      const problem = `the files add up to more than ${formatBytes(maxTotalBytes)} uncompressed`;
      throw refuse(this.noun, shown, `${problem}, the limit for the whole archive; leave out large files`);
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

// ---------------------------------------------------------------------------------------------
// Streams

function toBuffer(chunk: unknown): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
}

async function* capBytes(source: AsyncIterable<unknown>, max: number, tooBig: () => ArchiveError): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of source) {
    const buf = toBuffer(chunk);
    total += buf.length;
    if (total > max) throw tooBig();
    yield buf;
  }
}

/** Reads at least `n` bytes (unless the source ends first) and returns them with the rest of the stream. */
async function peek(source: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; rest: AsyncIterable<Buffer> }> {
  const it = source[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < n) {
    const r = await it.next();
    if (r.done === true) break;
    chunks.push(r.value);
    length += r.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      if (head.length > 0) yield head;
      for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
    } finally {
      void it.return?.()?.catch(() => undefined);
    }
  }
  return { head, rest: rest() };
}

function gunzip(source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  // Errors surface through iterating the returned stream; destroying it tears the chain down.
  return pipeline(Readable.from(source, { objectMode: false }), createGunzip(), () => undefined);
}

/**
 * Tar bytes a legitimate archive may hold besides file bodies: per entry a header, padding and a
 * pax record with long names; plus end-of-archive blocks and record padding.
 */
function tarBudget(limits: TarLimits): number {
  return limits.maxTotalBytes + limits.maxEntries * (4 * 512 + 2 * limits.maxPathLength) + MiB;
}

/** Raw input -> tar bytes: counts the upload, gunzips when the magic bytes say so, caps expansion. */
async function* decodeInput(input: Readable, limits: TarLimits): AsyncGenerator<Buffer> {
  const raw = capBytes(input, limits.maxCompressedBytes, () =>
    new ArchiveError(`the upload is larger than the limit of ${formatBytes(limits.maxCompressedBytes)}; leave out large files`),
  );
  const { head, rest } = await peek(raw, 2);
  const isGzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  const budget = tarBudget(limits);
  // Stops gzip bombs that are not made of file entries (e.g. gigabytes of zero blocks).
  yield* capBytes(isGzip ? gunzip(rest) : rest, budget, () =>
    new ArchiveError(`the archive expands to more than ${formatBytes(budget)} of tar data; it looks like a compression bomb`),
  );
}

function drained(out: Writable): Promise<void> {
  // An already failed stream will not emit again: waiting for an event would hang.
  if (out.destroyed) return Promise.reject(out.errored ?? new Error('output closed'));
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', done);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('output closed'));
    out.on('drain', onDrain);
    out.on('error', done);
    out.on('close', onClose);
  });
}

/** Copies by hand rather than piping so `out` only ever fails for its own (file system) reasons. */
async function copyToFile(source: AsyncIterable<unknown>, out: WriteStream): Promise<void> {
  for await (const chunk of source) {
    if (!out.write(toBuffer(chunk))) await drained(out);
  }
  out.end();
  await finished(out);
}

function closed(out: WriteStream): Promise<void> {
  if (out.closed) return Promise.resolve();
  return new Promise((resolve) => out.once('close', () => resolve()));
}

/** The streams of one sanitizeTar run, and which of them failed first. */
class SanitizeSession {
  readonly extract = tarExtract();
  private readonly pack: Pack = tarPack();
  private readonly decoded: Readable;
  private readonly out: WriteStream;
  private readonly writing: Promise<void>;
  private archiveError?: ArchiveError;
  private inputError?: Error;
  private outputError?: Error;
  private firstError?: Error;
  private currentEntry?: string;

  constructor(
    private readonly input: Readable,
    private readonly outFile: string,
    limits: TarLimits,
  ) {
    input.on('error', (err: Error) => (this.inputError ??= err));
    this.decoded = Readable.from(decodeInput(input, limits), { objectMode: false });
    this.decoded.on('error', (err: Error) => {
      this.note(err);
      this.extract.destroy(err);
    });
    this.extract.on('error', (err: Error) => this.note(err));
    this.decoded.pipe(this.extract);
    this.pack.on('error', (err: Error) => this.note(err));
    this.out = createWriteStream(outFile, { mode: 0o600 }); // Kiln's data: its owner's only
    this.out.on('error', (err) => {
      this.outputError ??= err;
      this.pack.destroy(err);
    });
    this.writing = copyToFile(this.pack, this.out);
    this.writing.catch(() => undefined); // reported through explain()
  }

  private note(err: Error): void {
    if (err instanceof ArchiveError) this.archiveError ??= err;
    else this.firstError ??= err;
  }

  copy(entry: Entry, decision: Decision): Promise<void> {
    if (decision.kind === 'skip') {
      entry.resume();
      return Promise.resolve();
    }
    this.currentEntry = decision.shown;
    const header = decision.header;
    return new Promise<void>((resolve, reject) => {
      const sink = this.pack.entry(header, (err) => (err ? reject(err) : resolve()));
      sink.on('error', () => undefined); // the entry callback reports it
      // Bodies stream straight into the pack: nothing is buffered whole.
      if (header.type === 'file') entry.pipe(sink);
      else entry.resume();
    }).then(() => {
      this.currentEntry = undefined;
    });
  }

  async finish(): Promise<void> {
    if (this.archiveError ?? this.firstError) throw this.archiveError ?? this.firstError;
    this.pack.finalize();
    await this.writing;
  }

  /** The error to report: our own verdict first, then the caller's streams, then "corrupt". */
  explain(thrown: unknown): Error {
    if (this.archiveError) return this.archiveError;
    if (thrown instanceof ArchiveError) return thrown;
    if (this.inputError) return this.inputError;
    if (this.outputError) return this.outputError;
    return invalidArchive(this.firstError ?? thrown, this.currentEntry);
  }

  async abort(): Promise<void> {
    this.input.destroy();
    this.decoded.destroy();
    this.extract.destroy();
    this.pack.destroy();
    this.out.destroy();
    await closed(this.out); // unlinking before the open completes would leave a file behind
    await rm(this.outFile, { force: true }).catch(() => undefined);
  }
}

/** Reads a .tar or .tar.gz (by magic bytes), checks every entry, writes a clean tar to outFile. */
export async function sanitizeTar(
  input: Readable,
  outFile: string,
  limits: TarLimits,
  opts: { dropLinks?: boolean } = {},
): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'entry', opts.dropLinks === true);
  const session = new SanitizeSession(input, outFile, limits);
  try {
    for await (const entry of session.extract) {
      await session.copy(entry, checker.check(entry.header));
    }
    if (checker.paths.length === 0) {
      throw new ArchiveError(`the archive is empty; ${FIX_TAR}`);
    }
    await session.finish();
    return checker.summary(outFile);
  } catch (err) {
    const reason = session.explain(err);
    await session.abort();
    throw reason;
  }
}

async function readBody(entry: Entry, path: string, maxBytes: number): Promise<Buffer> {
  const size = entry.header.size ?? 0;
  if (size > maxBytes) {
    const problem = `is ${formatBytes(size)}, over the limit of ${formatBytes(maxBytes)} for this file`;
    throw new ArchiveError(`file '${clip(path)}' ${problem}; make it smaller`, path);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(toBuffer(chunk));
  return Buffer.concat(chunks);
}

/** Reads selected regular files from a tar written by sanitizeTar. Returns path -> content. */
export async function readFilesFromTar(
  tarFile: string,
  predicate: (path: string) => boolean,
  maxBytes: number,
): Promise<Map<string, Buffer>> {
  const source = createReadStream(tarFile);
  const extract = tarExtract();
  let sourceError: Error | undefined;
  let tarError: Error | undefined;
  source.on('error', (err) => {
    sourceError ??= err;
    extract.destroy(err);
  });
  extract.on('error', (err: Error) => (tarError ??= err));
  source.pipe(extract);
  const found = new Map<string, Buffer>();
  try {
    for await (const entry of extract) {
      const path = plainPath(entry.header.name);
      if (entry.header.type !== 'file' || !predicate(path)) {
        entry.resume();
        continue;
      }
      found.set(path, await readBody(entry, path, maxBytes));
    }
    return found;
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    if (sourceError) throw sourceError;
    // Anything else (say, a throwing predicate) is the caller's error, not the archive's.
    throw tarError ? invalidArchive(tarError, undefined) : err;
  } finally {
    source.destroy();
  }
}

interface PlannedEntry {
  header: HeaderArg;
  body?: Buffer;
}

/** Validates the quick form and lists the entries to write, parents first. */
function planFiles(files: Record<string, string>, checker: EntryChecker, limits: TarLimits): PlannedEntry[] {
  const named = Object.keys(files).map((raw) => ({ raw, path: normalizeName(raw, limits, 'file') }));
  if (named.length === 0) throw new ArchiveError('no files were given; the submission is empty');
  named.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : (a.path ?? '') > (b.path ?? '') ? 1 : 0));
  const mtime = new Date();
  const planned: PlannedEntry[] = [];
  for (const { raw, path } of named) {
    const content: unknown = files[raw];
    if (typeof content !== 'string') throw refuse('file', shownName(raw), 'content must be a string');
    for (const dir of path === null ? [] : parentsOf(path)) {
      if (checker.has(dir)) continue;
      const d = checker.check({ name: dir, type: 'directory', mode: 0o755, mtime });
      if (d.kind === 'keep') planned.push({ header: d.header });
    }
    const body = Buffer.from(content, 'utf8');
    const f = checker.check({ name: raw, type: 'file', size: body.length, mode: 0o644, mtime });
    if (f.kind === 'keep') planned.push({ header: f.header, body });
  }
  return planned;
}

/** Builds a clean tar file from path -> content (small files given inline). */
export async function packFiles(files: Record<string, string>, outFile: string, limits: TarLimits): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'file', false);
  const planned = planFiles(files, checker, limits);
  await packTo(outFile, (pack) => {
    for (const { header, body } of planned) {
      if (body === undefined) pack.entry(header);
      else pack.entry(header, body);
    }
  });
  return checker.summary(outFile);
}

/** Streams a new tar to outFile, its entries added by `add`; on any failure the file is removed. */
async function packTo(outFile: string, add: (pack: Pack) => Promise<void> | void): Promise<void> {
  const pack = tarPack();
  const out = createWriteStream(outFile, { mode: 0o600 });
  const writing = copyToFile(pack, out);
  writing.catch(() => undefined); // awaited below; this only marks it handled
  try {
    await add(pack);
    pack.finalize();
    await writing;
  } catch (err) {
    pack.destroy();
    out.destroy();
    await closed(out);
    await rm(outFile, { force: true }).catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Packing a directory tree read from this machine

/**
 * A tree packTree leaves to `tar` in the sandbox: a path it would have to follow a symlink for, one
 * that leaves the root, an entry its user could not read, a socket, a name that is not UTF-8. The
 * caller collects the same paths the other way; the reason is for its debug log only.
 */
export class TreeNotPackable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TreeNotPackable';
  }
}

/** Who `tar -c` would have run as: entries not theirs, or not readable by them, are not packed here. */
export interface TreeOwner {
  uid: number;
}

interface TreeEntry {
  header: HeaderArg;
  /** a regular file's path on this machine, with the device, inode and size it had when planned */
  source?: PlannedFile;
}

const O_READ_TREE_FILE = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

function utf8Name(raw: Buffer): string {
  const name = raw.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(raw)) throw new TreeNotPackable('a name is not UTF-8');
  return name;
}

/**
 * Lets the event loop run every few milliseconds of synchronous work. A tree of 20 000 small files
 * costs 5 file system calls each: through the thread pool one at a time that is seconds, done
 * synchronously (a few microseconds each, on tmpfs) a fraction of one.
 */
class Pacer {
  private since = performance.now();

  async tick(): Promise<void> {
    if (performance.now() - this.since < 5) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }
}

/**
 * Plans what `tar -c -- paths...` run in `root` by `owner` would write, from lstat alone, with
 * sanitizeTar's checks as each entry is met (so a limit stops the walk). A symlink is never followed:
 * it is an entry (dropped or checked like a tar's), and a path through one is not packable here.
 */
class TreePlanner {
  readonly entries: TreeEntry[] = [];
  private readonly inodes = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly checker: EntryChecker,
    private readonly owner: TreeOwner,
    private readonly warn: (line: string) => void,
    private readonly pacer: Pacer,
  ) {}

  async add(given: string): Promise<void> {
    if (given.startsWith('/')) throw new TreeNotPackable(`'${given}' is absolute`);
    const segments = given.split('/').filter((s) => s !== '' && s !== '.');
    if (segments.includes('..')) throw new TreeNotPackable(`'${given}' goes up`);
    // The directories on the way must be real directories the owner may pass through.
    for (let i = 0; i < segments.length - 1; i++) {
      const st = this.lstat(join(this.root, ...segments.slice(0, i + 1)));
      if (st === null) return this.missing(given, 'No such file or directory');
      if (st.isSymbolicLink()) throw new TreeNotPackable(`'${given}' goes through a symlink`);
      if (!st.isDirectory()) return this.missing(given, 'Not a directory');
      this.mayEnter(st, given);
    }
    const file = join(this.root, ...segments);
    const st = this.lstat(file);
    if (st === null) return this.missing(given, 'No such file or directory');
    if (st.isSymbolicLink() && given.endsWith('/')) throw new TreeNotPackable(`'${given}' names a symlink's target`);
    await this.entry(given, file, st);
  }

  private missing(given: string, why: string): void {
    this.warn(`${given}: Cannot stat: ${why}`);
  }

  private lstat(file: string): BigIntStats | null {
    try {
      return lstatSync(file, { bigint: true, throwIfNoEntry: false }) ?? null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw e;
    }
  }

  private mayEnter(st: BigIntStats, name: string): void {
    if (Number(st.uid) !== this.owner.uid || (Number(st.mode) & 0o500) !== 0o500) throw new TreeNotPackable(`'${name}' is not the owner's to list`);
  }

  private async entry(name: string, file: string, st: BigIntStats): Promise<void> {
    await this.pacer.tick();
    const mode = Number(st.mode) & 0o7777;
    const mtime = new Date(Number(st.mtimeMs));
    if (st.isDirectory()) {
      this.mayEnter(st, name);
      const prefix = name.endsWith('/') ? name : `${name}/`; // tar's name for a directory
      const d = this.checker.check({ name: prefix, type: 'directory', mode, mtime });
      if (d.kind === 'keep') this.entries.push({ header: d.header });
      // One entry at a time (never the whole listing): the entry limit stops a huge directory early.
      const dir = opendirSync(file, { encoding: 'buffer' as BufferEncoding });
      try {
        for (let child = dir.readSync(); child !== null; child = dir.readSync()) {
          const childName = utf8Name(child.name as unknown as Buffer);
          const childFile = join(file, childName);
          const cst = this.lstat(childFile);
          if (cst !== null) await this.entry(prefix + childName, childFile, cst);
        }
      } finally {
        dir.closeSync();
      }
      return;
    }
    if (st.isSymbolicLink()) {
      const d = this.checker.check({ name, type: 'symlink', mode, mtime, linkname: readlinkSync(file) });
      if (d.kind === 'keep') this.entries.push({ header: d.header });
      return;
    }
    if (st.isFile()) {
      if (Number(st.uid) !== this.owner.uid || (Number(st.mode) & 0o400) === 0) throw new TreeNotPackable(`'${name}' is not the owner's to read`);
      // As GNU tar does: an inode already written (a second name of it, or the same path given twice)
      // is written as a hard link, which sanitizeTar refuses.
      const inode = `${st.dev}:${st.ino}`;
      const type = this.inodes.has(inode) ? 'link' : 'file';
      this.inodes.add(inode);
      const size = Number(st.size);
      const d = this.checker.check({ name, type, size: type === 'file' ? size : 0, mode, mtime });
      if (d.kind === 'keep') this.entries.push({ header: d.header, source: { file, dev: Number(st.dev), ino: Number(st.ino), size } });
      return;
    }
    if (st.isSocket()) throw new TreeNotPackable(`'${name}' is a socket`);
    const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character-device' : st.isBlockDevice() ? 'block-device' : null;
    this.checker.check({ name, type: type as Header['type'], mode, mtime }); // refuses it, with sanitizeTar's words
  }
}

/** Files up to this size are read whole, synchronously; larger ones are streamed. */
const SMALL_FILE_BYTES = 256 * 1024;

function changed(header: HeaderArg): Error {
  return new Error(`'${header.name}' changed while it was collected`);
}

/** A regular file as planned: where it is, and what identifies it (an inode number is unique only on its device). */
export interface PlannedFile { file: string; dev: number; ino: number; size: number }

/** True when what was opened is still the planned file: a regular file, same device and inode, same size. */
export function isPlannedFile(st: { isFile(): boolean; dev: number | bigint; ino: number | bigint; size: number | bigint }, planned: PlannedFile): boolean {
  return st.isFile() && Number(st.dev) === planned.dev && Number(st.ino) === planned.ino && Number(st.size) === planned.size;
}

/** Adds one planned regular file to the pack, checking it is still the file that was planned. */
async function packFile(pack: Pack, header: HeaderArg, source: PlannedFile): Promise<void> {
  const fd = openSync(source.file, O_READ_TREE_FILE);
  try {
    const st = fstatSync(fd);
    if (!isPlannedFile(st, source)) throw changed(header);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (source.size <= SMALL_FILE_BYTES) {
        pack.entry(header, readWhole(fd, source.size, header), done);
        return;
      }
      const sink = pack.entry(header, done);
      sink.on('error', () => undefined); // the entry callback reports it
      const body = createReadStream('', { fd, start: 0, end: source.size - 1, highWaterMark: MiB, autoClose: false });
      body.on('error', (err) => {
        reject(err);
        sink.destroy(err);
      });
      body.pipe(sink as unknown as Writable);
    });
  } finally {
    closeSync(fd);
  }
}

/** A small file's `size` bytes, read synchronously; fewer means it changed. */
function readWhole(fd: number, size: number, header: HeaderArg): Buffer {
  const body = Buffer.allocUnsafe(size);
  for (let n = 0; n < size; ) {
    const got = readSync(fd, body, n, size - n, n);
    if (got === 0) throw changed(header);
    n += got;
  }
  return body;
}

/**
 * Packs the entries `tar -c -- paths...` run in `root` (a directory on this machine) by `owner` would
 * write, as a clean tar with sanitizeTar's rules and messages, without a tar in between: entries are
 * planned from lstat (limits apply as they are met), then files are streamed from the host. For a
 * tree that nothing changes while it is read (a sandbox with no process of the job left): a symlink
 * is never followed, and every file is opened with O_NOFOLLOW and checked to be the one planned.
 * Throws ArchiveError on a refusal (with "empty" when nothing matched), TreeNotPackable when the tree
 * needs `tar` itself. `onWarning` hears what tar would have said on stderr (a path not found).
 */
export async function packTree(
  root: string,
  paths: string[],
  outFile: string,
  limits: TarLimits,
  owner: TreeOwner,
  opts: { dropLinks?: boolean; onWarning?: (line: string) => void } = {},
): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'entry', opts.dropLinks === true);
  const pacer = new Pacer();
  const planner = new TreePlanner(root, checker, owner, opts.onWarning ?? (() => undefined), pacer);
  const rootStat = lstatSync(root);
  if (!rootStat.isDirectory()) throw new TreeNotPackable('the root is not a directory');
  for (const given of paths) await planner.add(given);
  if (checker.paths.length === 0) throw new ArchiveError(`the archive is empty; ${FIX_TAR}`);
  await packTo(outFile, async (pack) => {
    for (const { header, source } of planner.entries) {
      await pacer.tick();
      if (source) await packFile(pack, header, source);
      else pack.entry(header);
    }
  });
  return checker.summary(outFile);
}
