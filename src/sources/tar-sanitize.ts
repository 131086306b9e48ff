// sanitizeTar (a stranger's .tar or .tar.gz in, a clean tar out) and readFilesFromTar (reading back
// what it wrote). The rules are in tar-entries.ts, the streams in tar-streams.ts.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { extract as tarExtract, pack as tarPack, type Extract, type Pack } from 'tar-stream';
import { EntryChecker, plainPath, type Decision } from './tar-entries';
import { formatBytes } from '../common/size';
import { ArchiveError, clip, FIX_TAR, invalidArchive, type SanitizedTar, type TarLimits } from './tar-safety';
import { closed, copyToFile, decodeInput, toBuffer } from './tar-streams';

/** One entry of an extract stream (tar-stream does not export the type). */
type Entry = Extract extends AsyncIterable<infer S> ? S : never;

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
export async function sanitizeTar(input: Readable, outFile: string, limits: TarLimits, opts: { dropLinks?: boolean } = {}): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'entry', opts.dropLinks === true);
  const session = new SanitizeSession(input, outFile, limits);
  try {
    for await (const entry of session.extract) {
      await session.copy(entry, checker.check(entry.header));
    }
    if (checker.paths.length === 0) {
      throw new ArchiveError('empty', `the archive is empty; ${FIX_TAR}`);
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
    throw new ArchiveError('too-large', `file '${clip(path)}' ${problem}; make it smaller`, path);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(toBuffer(chunk));
  return Buffer.concat(chunks);
}

/** Reads selected regular files from a tar written by sanitizeTar. Returns path -> content. */
export async function readFilesFromTar(tarFile: string, predicate: (path: string) => boolean, maxBytes: number): Promise<Map<string, Buffer>> {
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
