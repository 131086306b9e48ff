/**
 * The safe extractor for `kiln artifacts --download`, the other side of pack.ts.
 *
 * It runs next to what a job produced, so it refuses to follow symlinks: it never writes outside destDir.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { DIR_MODE, EXEC_MODE, FILE_MODE, PackError } from './pack';

export interface ExtractResult {
  files: string[];
}

/* ------------------------------------------------------------------ */
/* extractTar                                                          */
/* ------------------------------------------------------------------ */

/**
 * Extracts a tar (Buffer; gzip is detected and undone) into destDir safely: only
 * regular files and directories, never outside destDir, never through a symlink.
 */
export async function extractTar(tarBuf: Buffer, destDir: string): Promise<ExtractResult> {
  const dest = path.resolve(destDir);
  await fsp.mkdir(dest, { recursive: true });
  const raw = isGzip(tarBuf) ? zlib.gunzipSync(tarBuf) : tarBuf;
  const extract = tar.extract();
  extract.end(raw);

  const files: string[] = [];
  for await (const entry of extract) {
    const written = await extractEntry(dest, entry);
    if (written) files.push(written);
  }
  return { files };
}

function isGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** An entry body as tar-stream yields it (its chunks are Buffers, typed unknown by streamx). */
type Source = AsyncIterable<unknown> & { header: tar.Header };

/** Returns the relative path of a regular file written, or undefined. */
async function extractEntry(dest: string, entry: Source): Promise<string | undefined> {
  const { header } = entry;
  const rel = safeRelative(header.name);
  const type = header.type;
  if (rel === undefined || (type !== 'file' && type !== 'contiguous-file' && type !== 'directory')) {
    // '.' (root) entries, links, devices: drain the body and write nothing.
    await drain(entry);
    return undefined;
  }
  try {
    if (type === 'directory') {
      await ensureDir(dest, rel.split('/'), header.name);
      return undefined;
    }
    await writeFile(dest, rel, entry, header);
    return rel;
  } catch (err) {
    if (err instanceof PackError) throw err;
    throw new PackError(`cannot extract ${JSON.stringify(header.name)}: ${(err as Error).message}`);
  }
}

/**
 * Validates a raw entry name; returns it normalized ('a/b'), undefined for the root
 * itself, or throws. Checked on the raw name so 'a/../../x' style tricks never reach the fs.
 */
function safeRelative(name: string): string | undefined {
  const refuse = (why: string) => new PackError(`refusing tar entry ${JSON.stringify(name)}: ${why}`);
  if (name.includes('\\')) throw refuse('backslash in path');
  if (name.includes('\0')) throw refuse('NUL in path');
  if (name.startsWith('/') || path.win32.isAbsolute(name)) throw refuse('absolute path');
  if (name.split('/').includes('..')) throw refuse("'..' in path");
  const norm = path.posix.normalize(name).replace(/\/+$/, '');
  if (norm === '.' || norm === '') return undefined;
  if (norm.startsWith('../') || norm === '..' || norm.startsWith('/')) throw refuse('escapes destination');
  return norm;
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of entry) {
    // discard
  }
}

/**
 * Walks rel's components below dest with lstat, creating missing directories and
 * refusing any component that is a symlink or a non-directory.
 */
async function ensureDir(dest: string, parts: string[], entryName: string): Promise<string> {
  let current = dest;
  for (const part of parts) {
    current = path.join(current, part);
    const st = await lstatOrNull(current);
    if (st === null) {
      await mkdirExclusive(current, entryName);
    } else if (st.isSymbolicLink()) {
      throw new PackError(`refusing tar entry ${JSON.stringify(entryName)}: ${part} is a symlink on disk`);
    } else if (!st.isDirectory()) {
      throw new PackError(`refusing tar entry ${JSON.stringify(entryName)}: ${part} is not a directory`);
    }
  }
  return current;
}

/** mkdir without recursion: if something appears meanwhile (e.g. a symlink), fail rather than use it. */
async function mkdirExclusive(dir: string, entryName: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw err;
    const st = await fsp.lstat(dir);
    if (!st.isDirectory()) throw new PackError(`refusing tar entry ${JSON.stringify(entryName)}: ${dir} changed on disk`);
  }
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function writeFile(dest: string, rel: string, body: AsyncIterable<unknown>, header: tar.Header): Promise<void> {
  const parts = rel.split('/');
  const name = parts.pop() as string;
  const parent = await ensureDir(dest, parts, header.name);
  const target = path.join(parent, name);
  const existing = await lstatOrNull(target);
  if (existing?.isSymbolicLink()) {
    throw new PackError(`refusing tar entry ${JSON.stringify(header.name)}: ${rel} is a symlink on disk`);
  }
  const mode = header.mode & 0o111 ? EXEC_MODE : FILE_MODE;
  // O_NOFOLLOW closes the race between the lstat above and the open.
  const handle = await fsp.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, mode);
  try {
    for await (const chunk of body) await handle.write(chunk as Buffer);
    await handle.chmod(mode); // umask or a pre-existing file may have left another mode
  } finally {
    await handle.close();
  }
}
