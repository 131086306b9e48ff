import { Inject, Injectable } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import type { LineResult } from '../execution/workflow-commands';

/**
 * One log line: time (ms), step index (-1 = the job itself), stream (o = stdout, e = stderr,
 * k = Kiln, g = a group starts (l is its title), G = the group ends), text.
 */
export interface LogRecord {
  t: number;
  i: number;
  s: 'o' | 'e' | 'k' | 'g' | 'G';
  l: string;
}

/** Decides what a complete output line becomes (workflow commands); identity when absent. */
export type LineFilter = (step: number, text: string) => LineResult;

const MAX_LINE = 64 * 1024;

/**
 * Logs live in files, one JSON line per output line: data/logs/<run>/<job>.jsonl. Written as output
 * arrives; read from any offset, so a follower that joins late gets everything from the start.
 */
@Injectable()
export class LogStore {
  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  file(runId: string, jobId: string): string {
    return path.join(this.config.dataDir, 'logs', runId, `${jobId}.jsonl`);
  }

  writer(runId: string, jobId: string, secrets: string[] = []): LogWriter {
    const file = this.file(runId, jobId);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    return new LogWriter(file, this.config.logCapBytes, secrets);
  }

  /** Records from byte offset `from`; returns the offset after the last complete line. */
  async read(runId: string, jobId: string, from = 0): Promise<{ records: LogRecord[]; next: number }> {
    const file = this.file(runId, jobId);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch {
      return { records: [], next: from };
    }
    try {
      const { size } = await fh.stat();
      if (size <= from) return { records: [], next: from };
      const buf = Buffer.alloc(Math.min(size - from, 8 * 1024 * 1024));
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      const end = buf.subarray(0, bytesRead).lastIndexOf(10);
      if (end < 0) return { records: [], next: from };
      const records = buf.subarray(0, end).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);
      return { records, next: from + end + 1 };
    } finally {
      await fh.close();
    }
  }
}

/** Splits output into lines per step and stream, stamps them, appends them; stops at the cap with a notice. */
export class LogWriter {
  private readonly fd: number;
  private written = 0;
  private truncated = false;
  private dropped = 0;
  private readonly partial = new Map<string, { decoder: StringDecoder; text: string }>();

  private masks: string[];
  private filter: LineFilter | null = null;

  constructor(readonly file: string, private readonly capBytes: number, secrets: string[] = []) {
    this.masks = maskList(secrets);
    this.fd = fs.openSync(file, 'a');
    this.written = fs.fstatSync(this.fd).size;
  }

  /** Text that leaves the job another way (the step summary) is masked like the log. */
  maskText(text: string): string {
    return this.masks.length ? mask(text, this.masks) : text;
  }

  /** Workflow commands: applied to every complete line of output from here on. */
  setFilter(filter: LineFilter | null): void {
    this.filter = filter;
  }

  /** ::add-mask:: — hidden from here on (earlier lines are already written). */
  addMask(value: string): void {
    this.masks = [...new Set([...this.masks, ...maskList([value])])].sort((a, b) => b.length - a.length);
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
    while (p.text.length > MAX_LINE) {
      this.append(step, stream === 'stdout' ? 'o' : 'e', p.text.slice(0, MAX_LINE));
      p.text = p.text.slice(MAX_LINE);
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
    for (const key of [...this.partial.keys()]) this.flush(Number(key.split(':')[0]));
    if (this.dropped) this.appendRecord({ t: Date.now(), i: -1, s: 'k', l: `log truncated: ${this.dropped} more bytes of output were not kept (cap ${this.capBytes} bytes per job)` }, true);
    fs.closeSync(this.fd);
  }

  private append(step: number, s: 'o' | 'e', l: string): void {
    const r = this.filter ? this.filter(step, l) : { kind: 'text' as const, text: l };
    if (r.kind === 'drop') return;
    if (r.kind === 'text') this.appendRecord({ t: Date.now(), i: step, s, l: r.text }, false);
    else if (r.kind === 'group') this.appendRecord({ t: Date.now(), i: step, s: 'g', l: r.title }, false);
    else if (r.kind === 'endgroup') this.appendRecord({ t: Date.now(), i: step, s: 'G', l: '' }, false);
    else this.appendRecord({ t: Date.now(), i: step, s: 'k', l: r.text }, true);
  }

  private appendRecord(r: LogRecord, always: boolean): void {
    if (this.masks.length) r = { ...r, l: mask(r.l, this.masks) };
    const line = JSON.stringify(r) + '\n';
    const bytes = Buffer.byteLength(line);
    if (!always && this.written + bytes > this.capBytes) {
      if (!this.truncated) {
        this.truncated = true;
        this.appendRecord({ t: Date.now(), i: r.i, s: 'k', l: `log cap of ${this.capBytes} bytes reached: further output of this job is dropped (the job keeps running)` }, true);
      }
      this.dropped += Buffer.byteLength(r.l) + 1;
      return;
    }
    fs.writeSync(this.fd, line);
    this.written += bytes;
  }
}

/** Below this length a value is not masked: masking 'a' or '1' would wreck every log. */
export const MIN_MASK_LENGTH = 3;

/**
 * What to hide for a set of secrets: each value, each line of a multi-line value, and their base64
 * forms (also at the two other alignments, as the value appears inside a longer base64 text).
 * Longest first, so a value is hidden whole before any part of it.
 */
export function maskList(secrets: string[]): string[] {
  const out = new Set<string>();
  for (const s of secrets) {
    for (const v of [s, ...s.split(/\r?\n/)]) {
      if (v.length < MIN_MASK_LENGTH) continue;
      out.add(v);
      out.add(Buffer.from(v).toString('base64'));
      // Inside a longer text the value starts at byte offset 0, 1 or 2 of a 3-byte group; the
      // characters from index 0, 2 or 3 on depend on the value alone, except the last group's.
      for (const [shift, start] of [[0, 0], [1, 2], [2, 3]]) {
        const inner = Buffer.from('x'.repeat(shift) + v).toString('base64').replace(/=+$/, '').slice(start, -4);
        if (inner.length >= 6) out.add(inner);
      }
    }
  }
  return [...out].filter((m) => m.length >= MIN_MASK_LENGTH).sort((a, b) => b.length - a.length);
}

export function mask(text: string, masks: string[]): string {
  let out = text;
  for (const m of masks) if (out.includes(m)) out = out.split(m).join('***');
  return out;
}
