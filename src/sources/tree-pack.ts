// Packing a directory tree read from this machine (packTree), with the tar safety gate's rules
// (tar-entries.ts) and messages, without a tar in between.
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  fstatSync,
  lstatSync,
  opendirSync,
  openSync,
  readlinkSync,
  readSync,
  type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Header, Pack } from 'tar-stream';
import { EntryChecker, type HeaderArg } from './tar-entries';
import { ArchiveError, FIX_TAR, MiB, type SanitizedTar, type TarLimits } from './tar-safety';
import { packTo } from './tar-streams';

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
    /** the folders (under root) the given paths are relative to; entries are named without them */
    private readonly base: string[] = [],
  ) {}

  async add(given: string): Promise<void> {
    if (given.startsWith('/')) throw new TreeNotPackable(`'${given}' is absolute`);
    const segments = [...this.base, ...given.split('/').filter((s) => s !== '' && s !== '.')];
    if (segments.includes('..')) throw new TreeNotPackable(`'${given}' goes up`);
    // The directories on the way (the base's too) must be real directories the owner may pass through.
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
export interface PlannedFile {
  file: string;
  dev: number;
  ino: number;
  size: number;
}

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
  for (let n = 0; n < size;) {
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
 * With `base` (a folder under root), the paths are relative to it, as `tar -C base` would take them.
 */
export async function packTree(
  root: string,
  paths: string[],
  outFile: string,
  limits: TarLimits,
  owner: TreeOwner,
  opts: { dropLinks?: boolean; onWarning?: (line: string) => void; base?: string } = {},
): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'entry', opts.dropLinks === true);
  const pacer = new Pacer();
  const base = (opts.base ?? '').split('/').filter((s) => s !== '' && s !== '.');
  const planner = new TreePlanner(root, checker, owner, opts.onWarning ?? (() => undefined), pacer, base);
  const rootStat = lstatSync(root);
  if (!rootStat.isDirectory()) throw new TreeNotPackable('the root is not a directory');
  for (const given of paths) await planner.add(given);
  if (checker.paths.length === 0) throw new ArchiveError('empty', `the archive is empty; ${FIX_TAR}`);
  await packTo(outFile, async (pack) => {
    for (const { header, source } of planner.entries) {
      await pacer.tick();
      if (source) await packFile(pack, header, source);
      else pack.entry(header);
    }
  });
  return checker.summary(outFile);
}
