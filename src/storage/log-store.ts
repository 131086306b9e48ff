import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { REDIS } from '../db/redis';
import type { LineResult } from './log-lines';
import { encodeLogMessageBytes, LogBatch, logChannel, LogMessage, LogPublish, LogRecord } from './log-wire';
import { SecretMask } from '../common/secret-mask';
import { openPrivateAppend, privateDirSync } from '../common/private-files';

/** Decides what a complete output line becomes (workflow commands); identity when absent. */
export type LineFilter = (step: number, text: string) => LineResult;

const MAX_LINE = 64 * 1024;
/**
 * A follower reads a job's file in blocks of at most this size: under V8's 128 KiB, above which a
 * string is a large object, freed only by a full collection (1 MiB blocks kept a follower's server
 * at about 290 MiB for a 200 MiB log, 96 KiB blocks at about 230 MiB).
 */
const READ_BLOCK_BYTES = 96 * 1024;
/** A block that holds no whole line is read again this long: longer than the longest line can be in the file (MAX_LINE characters, each at most 6 bytes of JSON). */
const READ_LONGEST_BYTES = 1024 * 1024;

/**
 * This process's writers hand their batches to this process's followers directly (LogBus listens),
 * and mark what they publish with `origin` so that the bus drops its own messages coming back from
 * Redis: a follower on the writer's node costs no Redis round trip, no second copy, no parsing.
 */
@Injectable()
export class LocalLogHub {
  readonly origin = randomBytes(6).toString('hex');
  private listener: ((channel: string, message: LogMessage) => void) | null = null;

  listen(listener: (channel: string, message: LogMessage) => void): void {
    this.listener = listener;
  }

  emit(channel: string, message: LogMessage): void {
    this.listener?.(channel, message);
  }
}

/** Lines are written to the file and published at most this often per writer (plus when a block is full, and on close)... */
export const PUBLISH_INTERVAL_MS = 20;
/**
 * ...in blocks of at most about this many bytes of log lines: one write to the file, one message. Under
 * V8's 128 KiB large-object size, as READ_BLOCK_BYTES is (256 KiB blocks cost a third more CPU).
 */
export const PUBLISH_MAX_BYTES = 96 * 1024;
/** Past this many bytes published but not yet answered (Redis slow or away), batches are skipped: the file has them. */
const PUBLISH_MAX_IN_FLIGHT = 16 * 1024 * 1024;

/**
 * Logs live in files, one JSON line per output line: data/logs/<run>/<job>.jsonl. Written as output
 * arrives; read from any offset, so a follower that joins late gets everything from the start. What
 * is appended is also published on Redis (logChannel), so a follower on another node sees it live.
 */
@Injectable()
export class LogStore {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(REDIS) private readonly redis: Pick<Redis, 'publish'>,
    // Named: a union type's metadata is Object, which Nest cannot resolve (it would quietly pass null).
    @Optional() @Inject(LocalLogHub) private readonly hub: LocalLogHub | null = null,
  ) {}

  file(runId: string, jobId: string): string {
    return path.join(this.config.dataDir, 'logs', runId, `${jobId}.jsonl`);
  }

  writer(runId: string, jobId: string, secrets: string[] = []): LogWriter {
    const file = this.file(runId, jobId);
    privateDirSync(path.dirname(path.dirname(file)));
    privateDirSync(path.dirname(file));
    const channel = logChannel(this.config.queuePrefix, runId);
    const hub = this.hub;
    const publish: LogPublish = (batch, encoded) => {
      hub?.emit(channel, { ...batch, job: jobId });
      return this.redis.publish(channel, encodeLogMessageBytes(jobId, batch, encoded, hub?.origin));
    };
    return new LogWriter(file, this.config.logCapBytes, secrets, publish);
  }

  /** Records from byte offset `from`; returns the offset after the last complete line. */
  async read(runId: string, jobId: string, from = 0): Promise<{ records: LogRecord[]; next: number }> {
    const { lines, next } = await this.readLines(runId, jobId, from);
    return { records: lines.map((l) => JSON.parse(l) as LogRecord), next };
  }

  /** The file's lines (each a record's JSON) from byte offset `from`, unparsed; and the offset after the last complete one. */
  async readLines(runId: string, jobId: string, from = 0): Promise<{ lines: string[]; next: number }> {
    const file = this.file(runId, jobId);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch {
      return { lines: [], next: from };
    }
    try {
      const { size } = await fh.stat();
      if (size <= from) return { lines: [], next: from };
      let buf = Buffer.allocUnsafe(Math.min(size - from, READ_BLOCK_BYTES));
      let { bytesRead } = await fh.read(buf, 0, buf.length, from);
      let end = buf.subarray(0, bytesRead).lastIndexOf(10);
      if (end < 0 && bytesRead === buf.length && buf.length < size - from) {
        buf = Buffer.allocUnsafe(Math.min(size - from, READ_LONGEST_BYTES));
        ({ bytesRead } = await fh.read(buf, 0, buf.length, from));
        end = buf.subarray(0, bytesRead).lastIndexOf(10);
      }
      if (end < 0) return { lines: [], next: from };
      return { lines: buf.subarray(0, end).toString('utf8').split('\n').filter(Boolean), next: from + end + 1 };
    } finally {
      await fh.close();
    }
  }
}

/**
 * Splits output into lines per step and stream, stamps them, appends them; stops at the cap with a
 * notice. With `publish`, what it appended is also handed over in batches (LogBatch): at most every
 * PUBLISH_INTERVAL_MS, at most PUBLISH_MAX_BYTES each, and on close with a closing marker after.
 * Publishing never throws into the job nor waits for an answer: the file has every line anyway.
 */
export class LogWriter {
  private static readonly log = new Logger('LogWriter');
  private readonly fd: number;
  private written = 0;
  private truncated = false;
  private dropped = 0;
  private readonly partial = new Map<string, { decoder: StringDecoder; text: string }>();

  private readonly masks: SecretMask;
  private filter: LineFilter | null = null;

  // Appended but neither in the file nor published yet: the lines from byte offset pendingFrom on,
  // pendingBytes long (at most PUBLISH_MAX_BYTES, for at most PUBLISH_INTERVAL_MS).
  private pending: string[] = [];
  private pendingFrom = 0;
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private publishFailed = false;
  private closed = false;

  constructor(
    readonly file: string,
    private readonly capBytes: number,
    secrets: string[] = [],
    private readonly publish: LogPublish | null = null,
  ) {
    this.masks = new SecretMask(secrets);
    this.fd = openPrivateAppend(file);
    this.written = fs.fstatSync(this.fd).size;
  }

  /** Text that leaves the job another way (annotations, the step summary, errors) is masked like the log. */
  maskText(text: string): string {
    return this.masks.apply(text);
  }

  /** True when the text holds a secret in any masked form (job outputs and artifact names are refused then). */
  holdsSecret(text: string): boolean {
    return this.masks.holds(text);
  }

  /** Workflow commands: applied to every complete line of output from here on. */
  setFilter(filter: LineFilter | null): void {
    this.filter = filter;
  }

  /** ::add-mask:: — hidden from here on (earlier lines are already written). */
  addMask(value: string): void {
    this.masks.add(value);
  }

  write(step: number, stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const key = `${step}:${stream}`;
    let p = this.partial.get(key);
    if (!p) {
      p = { decoder: new StringDecoder('utf8'), text: '' };
      this.partial.set(key, p);
    }
    p.text += p.decoder.write(chunk);
    let nl: number;
    while ((nl = p.text.indexOf('\n')) >= 0) {
      this.append(step, stream === 'stdout' ? 'o' : 'e', p.text.slice(0, nl).replace(/\r$/, ''));
      p.text = p.text.slice(nl + 1);
    }
    // A line longer than MAX_LINE is cut in pieces, never inside a secret: the cut waits until the
    // longest masked form fits after it, and moves off any form it would split.
    while (p.text.length > MAX_LINE + this.masks.longest) {
      const cut = this.masks.safeCut(p.text, MAX_LINE);
      this.append(step, stream === 'stdout' ? 'o' : 'e', p.text.slice(0, cut));
      p.text = p.text.slice(cut);
    }
  }

  /** A line from Kiln itself (step headers, limits hit, errors). Always written, even past the cap. */
  notice(step: number, text: string): void {
    this.flush(step);
    this.appendRecord({ t: Date.now(), i: step, s: 'k', l: text }, true);
  }

  /** Writes what is left of a step's partial lines. */
  flush(step: number): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.partial.get(`${step}:${stream}`);
      if (!p) continue;
      const rest = p.text + p.decoder.end();
      if (rest) this.append(step, stream === 'stdout' ? 'o' : 'e', rest);
      this.partial.delete(`${step}:${stream}`);
    }
  }

  close(): void {
    if (this.closed) return;
    for (const key of [...this.partial.keys()]) this.flush(Number(key.split(':')[0]));
    if (this.dropped)
      this.appendRecord(
        { t: Date.now(), i: -1, s: 'k', l: `log truncated: ${this.dropped} more bytes of output were not kept (cap ${this.capBytes} bytes per job)` },
        true,
      );
    this.publishPending();
    this.closed = true;
    fs.closeSync(this.fd);
    this.send({ closed: true, next: this.written }, 0);
  }

  /**
   * Writes what was appended to the file and publishes it, now (close does it by itself): one join,
   * one encoding, one write, one message per block.
   */
  publishPending(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.pending.length || this.closed) return;
    const lines = this.pending.join('');
    const encoded = Buffer.from(lines);
    // The file first: a follower that sees a gap in the published offsets reads it from there.
    fs.writeSync(this.fd, encoded);
    const batch = { from: this.pendingFrom, next: this.pendingFrom + this.pendingBytes, lines };
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.send(batch, bytes, encoded);
  }

  private send(batch: LogBatch, bytes: number, encoded?: Buffer): void {
    if (!this.publish) return;
    if (bytes && this.inFlight + bytes > PUBLISH_MAX_IN_FLIGHT) {
      // Followers see the gap in the offsets and read it from the file (or, where the file is not
      // visible, go on from the next batch).
      this.publishError(new Error(`more than ${PUBLISH_MAX_IN_FLIGHT} bytes await Redis; skipping batches until it catches up`));
      return;
    }
    let result: unknown;
    try {
      result = this.publish(batch, encoded);
    } catch (e) {
      this.publishError(e);
      return;
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      this.inFlight += bytes;
      (result as PromiseLike<unknown>).then(
        () => {
          this.inFlight -= bytes;
        },
        (e: unknown) => {
          this.inFlight -= bytes;
          this.publishError(e);
        },
      );
    }
  }

  private publishError(e: unknown): void {
    if (this.publishFailed) return;
    this.publishFailed = true;
    LogWriter.log.warn(
      `publishing live log lines of ${this.file} failed (followers on other nodes may see them late; the file has them all): ${(e as Error)?.message ?? String(e)}`,
    );
  }

  private append(step: number, s: 'o' | 'e', raw: string): void {
    // Masked before workflow commands are parsed, so no secret reaches an annotation or a group
    // title; appendRecord masks again what the parsing unescaped (%25, %2C...).
    const l = this.masks.apply(raw);
    const r = this.filter ? this.filter(step, l) : { kind: 'text' as const, text: l };
    if (r.kind === 'drop') return;
    // A plain line (the filter gave it back as it was) is masked already.
    if (r.kind === 'text') this.appendRecord({ t: Date.now(), i: step, s, l: r.text }, false, r.text === l);
    else if (r.kind === 'group') this.appendRecord({ t: Date.now(), i: step, s: 'g', l: r.title }, false);
    else if (r.kind === 'endgroup') this.appendRecord({ t: Date.now(), i: step, s: 'G', l: '' }, false);
    else this.appendRecord({ t: Date.now(), i: step, s: 'k', l: r.text }, true);
  }

  private appendRecord(r: LogRecord, always: boolean, masked = false): void {
    if (!masked && !this.masks.empty) r = { ...r, l: this.masks.apply(r.l) };
    // JSON.stringify(r) + '\n', without walking the object (t and i are numbers, s one letter).
    const line = `{"t":${r.t},"i":${r.i},"s":"${r.s}","l":${JSON.stringify(r.l)}}\n`;
    const bytes = Buffer.byteLength(line);
    if (!always && this.written + bytes > this.capBytes) {
      if (!this.truncated) {
        this.truncated = true;
        this.appendRecord(
          { t: Date.now(), i: r.i, s: 'k', l: `log cap of ${this.capBytes} bytes reached: further output of this job is dropped (the job keeps running)` },
          true,
        );
      }
      this.dropped += Buffer.byteLength(r.l) + 1;
      return;
    }
    if (this.pending.length && this.pendingBytes + bytes > PUBLISH_MAX_BYTES) this.publishPending();
    if (!this.pending.length) this.pendingFrom = this.written;
    this.pending.push(line);
    this.pendingBytes += bytes;
    this.written += bytes;
    if (this.pendingBytes >= PUBLISH_MAX_BYTES) this.publishPending();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.publishPending();
      }, PUBLISH_INTERVAL_MS);
      this.timer.unref();
    }
  }
}
