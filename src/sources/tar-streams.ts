// The streams of the tar safety gate (tar-safety.ts): decoding an upload (size caps, gunzip, the
// expansion budget) and writing a tar to a file.
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable, pipeline, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { pack as tarPack, type Pack } from 'tar-stream';
import { formatBytes } from '../common/size';
import { ArchiveError, MiB, type TarLimits } from './tar-safety';

export function toBuffer(chunk: unknown): Buffer {
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
export async function* decodeInput(input: Readable, limits: TarLimits): AsyncGenerator<Buffer> {
  const raw = capBytes(
    input,
    limits.maxCompressedBytes,
    () => new ArchiveError('too-large', `the upload is larger than the limit of ${formatBytes(limits.maxCompressedBytes)}; leave out large files`),
  );
  const { head, rest } = await peek(raw, 2);
  const isGzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  const budget = tarBudget(limits);
  // Stops gzip bombs that are not made of file entries (e.g. gigabytes of zero blocks).
  yield* capBytes(
    isGzip ? gunzip(rest) : rest,
    budget,
    () => new ArchiveError('too-large', `the archive expands to more than ${formatBytes(budget)} of tar data; it looks like a compression bomb`),
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
export async function copyToFile(source: AsyncIterable<unknown>, out: WriteStream): Promise<void> {
  for await (const chunk of source) {
    if (!out.write(toBuffer(chunk))) await drained(out);
  }
  out.end();
  await finished(out);
}

export function closed(out: WriteStream): Promise<void> {
  if (out.closed) return Promise.resolve();
  return new Promise((resolve) => out.once('close', () => resolve()));
}

/** Streams a new tar to outFile, its entries added by `add`; on any failure the file is removed. */
export async function packTo(outFile: string, add: (pack: Pack) => Promise<void> | void): Promise<void> {
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
