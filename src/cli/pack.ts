/**
 * Packing a working directory for `kiln run` (the matching safe extractor is extract.ts).
 *
 * The client runs on a developer's machine and the extractor runs next to
 * untrusted code, so both sides refuse to follow symlinks: the packer never
 * reads outside DIR, the extractor never writes outside destDir.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import ignore from 'ignore';
import type { Ignore } from 'ignore';
import * as tar from 'tar-stream';

export class PackError extends Error {
  override name = 'PackError';
}

export interface PackResult {
  tarGz: Buffer;
  files: number;
  bytes: number;
  skippedLinks: { path: string; target: string }[];
  ignored: number;
}

const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
export const FILE_MODE = 0o644;
export const EXEC_MODE = 0o755;
export const DIR_MODE = 0o755;
const LINK_MODE = 0o777;

/* ------------------------------------------------------------------ */
/* packDirectory                                                       */
/* ------------------------------------------------------------------ */

/** One ignore file's rules, with the directory (relative to DIR, '' = root) they are relative to. */
interface Layer {
  base: string;
  ig: Ignore;
}

type Planned =
  | { kind: 'dir'; rel: string; mtime: Date }
  | { kind: 'file'; rel: string; size: number; mode: number; mtime: Date }
  | { kind: 'symlink'; rel: string; target: string; mtime: Date };

interface Walk {
  root: string;
  entries: Planned[];
  skippedLinks: { path: string; target: string }[];
  ignored: number;
  bytes: number;
}

/** Packs DIR for upload. Never follows a symlink; never reads outside DIR. */
export async function packDirectory(dir: string, opts: { maxBytes?: number } = {}): Promise<PackResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const root = path.resolve(dir);
  await assertDirectory(root);

  const walk: Walk = { root, entries: [], skippedLinks: [], ignored: 0, bytes: 0 };
  await walkDir(walk, '', await rootRules(root));
  // Fail before reading any content: the sizes from lstat are enough to know.
  if (walk.bytes > maxBytes) throw tooBig(walk.bytes, maxBytes);

  const tarGz = await writeArchive(root, walk.entries, maxBytes);
  const files = walk.entries.filter((e) => e.kind === 'file').length;
  return { tarGz, files, bytes: walk.bytes, skippedLinks: walk.skippedLinks, ignored: walk.ignored };
}

async function assertDirectory(root: string): Promise<void> {
  let st: Stats;
  try {
    st = await fsp.stat(root);
  } catch {
    throw new PackError(`${root} does not exist`);
  }
  if (!st.isDirectory()) throw new PackError(`${root} is not a directory`);
}

function tooBig(bytes: number, maxBytes: number): PackError {
  return new PackError(
    `directory is larger than the ${maxBytes}-byte limit (${bytes} bytes of files); ` + 'list large or generated paths in a .kilnignore to leave them out',
  );
}

/** .kilnignore is checked first so it can override git's rules either way; git layers run root to deepest. */
interface Rules {
  kiln?: Ignore;
  git: Layer[];
}

async function rootRules(root: string): Promise<Rules> {
  const git = await readIgnoreFile(path.join(root, '.gitignore'));
  const kiln = await readIgnoreFile(path.join(root, '.kilnignore'));
  return {
    kiln: kiln === undefined ? undefined : ignore().add(kiln),
    git: git === undefined ? [] : [{ base: '', ig: ignore().add(git) }],
  };
}

/** Reads an ignore file only if it is a regular file (a symlinked .gitignore could point outside DIR). */
async function readIgnoreFile(file: string): Promise<string | undefined> {
  try {
    const handle = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      if (!(await handle.stat()).isFile()) return undefined;
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return undefined; // missing, a symlink (ELOOP), or unreadable: no rules
  }
}

function isIgnored(rules: Rules, rel: string, isDir: boolean): boolean {
  const kiln = rules.kiln ? decide(rules.kiln, rel, isDir) : undefined;
  if (kiln !== undefined) return kiln;
  // Git's precedence: the deepest ignore file with a rule matching the path decides.
  for (let i = rules.git.length - 1; i >= 0; i--) {
    const { base, ig } = rules.git[i];
    const verdict = decide(ig, base === '' ? rel : rel.slice(base.length + 1), isDir);
    if (verdict !== undefined) return verdict;
  }
  return false;
}

/** true/false when a rule in `ig` matches, undefined when none does. Directories get a trailing slash so `build/` matches. */
function decide(ig: Ignore, local: string, isDir: boolean): boolean | undefined {
  const res = ig.test(isDir ? `${local}/` : local);
  if (res.ignored) return true;
  if (res.unignored) return false;
  return undefined;
}

/** Adds DIR/rel/.gitignore (if any) as the deepest git layer; its patterns are relative to rel. */
async function rulesFor(root: string, rel: string, parent: Rules): Promise<Rules> {
  if (rel === '') return parent;
  const text = await readIgnoreFile(path.join(root, rel, '.gitignore'));
  if (text === undefined) return parent;
  return { kiln: parent.kiln, git: [...parent.git, { base: rel, ig: ignore().add(text) }] };
}

async function walkDir(walk: Walk, rel: string, inherited: Rules): Promise<void> {
  const rules = await rulesFor(walk.root, rel, inherited);
  const dirents = await fsp.readdir(path.join(walk.root, rel), { withFileTypes: true });
  const names = dirents.map((d) => d.name).sort(compareNames);
  for (const name of names) {
    await visit(walk, rel === '' ? name : `${rel}/${name}`, rules);
  }
}

/** Byte-order comparison, so archives do not depend on the locale. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function visit(walk: Walk, rel: string, rules: Rules): Promise<void> {
  if (path.posix.basename(rel) === '.git') {
    walk.ignored++;
    return;
  }
  const st = await fsp.lstat(path.join(walk.root, rel));
  const isDir = st.isDirectory();
  if (isIgnored(rules, rel, isDir)) {
    walk.ignored++;
    return;
  }
  if (isDir) {
    walk.entries.push({ kind: 'dir', rel, mtime: st.mtime });
    await walkDir(walk, rel, rules);
  } else if (st.isFile()) {
    walk.entries.push({ kind: 'file', rel, size: st.size, mode: fileMode(st.mode), mtime: st.mtime });
    walk.bytes += st.size;
  } else if (st.isSymbolicLink()) {
    await visitLink(walk, rel, st);
  }
  // Sockets, FIFOs and devices are left out silently.
}

async function visitLink(walk: Walk, rel: string, st: Stats): Promise<void> {
  const target = await fsp.readlink(path.join(walk.root, rel));
  if (linkStaysInside(walk.root, rel, target)) {
    walk.entries.push({ kind: 'symlink', rel, target, mtime: st.mtime });
  } else {
    walk.skippedLinks.push({ path: rel, target });
  }
}

/** Lexical check only (no realpath): each link in a chain is checked on its own. */
function linkStaysInside(root: string, rel: string, target: string): boolean {
  if (target === '' || path.isAbsolute(target)) return false;
  const resolved = path.resolve(root, path.dirname(rel), target);
  return isInside(root, resolved);
}

/** True when `p` is root itself or below it. */
function isInside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r === '' || (!path.isAbsolute(r) && r !== '..' && !r.startsWith(`..${path.sep}`));
}

function fileMode(mode: number): number {
  return mode & 0o111 ? EXEC_MODE : FILE_MODE;
}

/** Streams the planned entries through tar-stream and gzip into one Buffer. */
async function writeArchive(root: string, entries: Planned[], maxBytes: number): Promise<Buffer> {
  const pack = tar.pack();
  const gzip = zlib.createGzip();
  const collected = collect(gzip);
  pack.pipe(gzip);
  try {
    let bytes = 0;
    for (const entry of entries) {
      bytes += await addEntry(pack, root, entry, maxBytes - bytes);
    }
    pack.finalize();
  } catch (err) {
    pack.destroy();
    gzip.destroy();
    await collected.catch(() => undefined);
    throw err;
  }
  return collected;
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => reject(new PackError('archive stream closed early')));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** Writes one entry; returns the content bytes it added. */
async function addEntry(pack: tar.Pack, root: string, entry: Planned, budget: number): Promise<number> {
  const base = { name: entry.rel, mtime: entry.mtime };
  switch (entry.kind) {
    case 'dir':
      await addBuffer(pack, { ...base, type: 'directory', mode: DIR_MODE });
      return 0;
    case 'symlink':
      await addBuffer(pack, { ...base, type: 'symlink', linkname: entry.target, mode: LINK_MODE });
      return 0;
    case 'file':
      return addFile(pack, root, entry, budget);
  }
}

type EntryHeader = Parameters<tar.Pack['entry']>[0];

/** Body-less entries. A 'file' needs an explicit empty body, or tar-stream waits for one. */
function addBuffer(pack: tar.Pack, header: EntryHeader): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (header.type === 'file') pack.entry(header, Buffer.alloc(0), done);
    else pack.entry(header, done);
  });
}

/**
 * Opens with O_NOFOLLOW so a file swapped for a symlink after the walk is not
 * followed, and uses the size from fstat of that very handle.
 */
async function addFile(pack: tar.Pack, root: string, entry: Extract<Planned, { kind: 'file' }>, budget: number): Promise<number> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path.join(root, entry.rel), fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    throw new PackError(`cannot read ${entry.rel}: ${(err as Error).message}`);
  }
  let size: number;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new PackError(`${entry.rel} changed while packing`);
    size = st.size;
    if (size > budget) throw new PackError(`${entry.rel} grew while packing past the size limit; add it to a .kilnignore`);
  } catch (err) {
    await handle.close();
    throw err;
  }
  const header: EntryHeader = { name: entry.rel, mtime: entry.mtime, mode: entry.mode, type: 'file', size };
  if (size === 0) {
    await handle.close();
    await addBuffer(pack, header);
    return 0;
  }
  await streamInto(pack, header, handle, size);
  return size;
}

function streamInto(pack: tar.Pack, header: EntryHeader, handle: fsp.FileHandle, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(new PackError(`${header.name}: ${err.message}`)) : resolve()));
    // end is inclusive; reading exactly `size` bytes keeps the tar header honest if the file grows.
    const src = handle.createReadStream({ start: 0, end: size - 1 });
    src.on('error', (err) => {
      sink.destroy(err);
      reject(err);
    });
    src.pipe(sink);
  });
}
