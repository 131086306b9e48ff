import { BadRequestException, Injectable, Logger, NotFoundException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { LogBus } from '../storage/log-bus';
import { LogStore } from '../storage/log-store';
import type { LogMessage, LogRecord } from '../storage/log-wire';
import { RunsRepository } from './runs.repository';
import type { Job } from './runs.types';

/** Followers poll the job states and the files this often: a safety net under the live bus... */
const POLL_MS = 2000;
/** ...and this often while the bus is away, or a job has just closed its log (it ends in a moment). */
const FAST_POLL_MS = 200;
/**
 * After a job's writer closed its log, its state (and then its run's) changes within moments: the
 * stream ends that soon. The states are looked at 5, 10, 20 ms after the close, then every 40 ms.
 */
const CLOSING_FIRST_POLL_MS = 5;
const CLOSING_POLL_MS = 40;
const CLOSING_MS = 5000;
/** Once every job has ended, how long to wait for the bus's last lines of a job whose file is not here. */
const CLOSING_WAIT_MS = 1000;
/** A gap in the bus, with the file visible but behind: read again this many times before going on. */
const LAG_RETRIES = 5;
const LAG_RETRY_MS = 40;
const KEEP_ALIVE_MS = 15_000;
/** Live batches held for one slow follower before it is left to read the file. */
const INBOX_MAX_BYTES = 4 * 1024 * 1024;
/** A follower's events are written in chunks of about this many characters. */
const SEND_BYTES = 64 * 1024;

export interface LogLine extends LogRecord {
  job: string;
}

/** Reads job logs for the API: all at once (text or JSON lines), or followed live as server-sent events. */
@Injectable()
export class LogsService {
  private readonly log = new Logger(LogsService.name);

  constructor(
    private readonly repo: RunsRepository,
    private readonly store: LogStore,
    private readonly bus: LogBus,
  ) {}

  private async jobsOf(runId: string, jobId?: string): Promise<Job[]> {
    const jobs = await this.repo.jobs(runId);
    if (!jobId) return jobs;
    const one = jobs.filter((j) => j.id === jobId);
    if (!one.length) throw new NotFoundException(`run ${runId} has no job ${jobId}; its jobs: ${jobs.map((j) => `${j.id} (${j.key})`).join(', ')}`);
    return one;
  }

  async all(runId: string, jobId?: string, step?: number): Promise<LogLine[]> {
    const out: LogLine[] = [];
    for (const job of await this.jobsOf(runId, jobId)) {
      let offset = 0;
      for (;;) {
        const { records, next } = await this.store.read(runId, job.id, offset);
        if (!records.length) break;
        out.push(...records.filter((r) => step === undefined || r.i === step).map((r) => ({ ...r, job: job.key })));
        offset = next;
      }
    }
    return out;
  }

  static text(lines: LogLine[]): string {
    const mark: Record<LogLine['s'], string> = { k: '##', e: 'E|', o: ' |', g: '▸', G: '◂' };
    return lines.map((l) => `[${l.job}] ${l.i < 0 ? '-' : `#${l.i}`} ${mark[l.s]} ${l.l}\n`).join('');
  }

  /**
   * Streams every line from the start, then new ones as they are written, until every job has ended.
   *
   * Live lines come from the log bus (Redis pub/sub: the writer may run on another node, whose log
   * files this node may not see). The files are the source of truth: the stream starts with them,
   * a gap in the bus's byte offsets is filled from them, and a slow poll of the files and the job
   * states catches whatever the bus lost. Per job, lines go out in file order, each once: `offset`
   * is the byte offset in the job's file up to which lines were sent.
   */
  async follow(runId: string, jobId: string | undefined, step: number | undefined, req: Request, res: Response): Promise<void> {
    const jobs = await this.jobsOf(runId, jobId);
    if (step !== undefined && !jobId) throw new BadRequestException('step needs job: ?job=<id>&step=<index>');
    res
      .status(200)
      .set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();

    let closed = false;
    let wake: (() => void) | null = null;
    const nudge = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const onClose = () => {
      closed = true;
      nudge();
    };
    req.on('close', onClose);
    res.on('close', onClose);

    const byId = new Map(jobs.map((j) => [j.id, j]));
    const offsets = new Map(jobs.map((j) => [j.id, 0]));
    /** Jobs the bus delivered something of, and where their writer last said it closed the file. */
    const onBus = new Set<string>();
    const closedAt = new Map<string, number>();
    const inbox: LogMessage[] = [];
    let inboxBytes = 0;
    const next = () => {
      const m = inbox.shift()!;
      if (!('closed' in m)) inboxBytes -= m.next - m.from;
      return m;
    };
    let lastWrite = Date.now();

    // A slow reader holds the stream back (the file keeps every line): memory stays bounded however
    // fast a job prints.
    const drained = () =>
      new Promise<void>((resolve) => {
        if (closed || !res.writableNeedDrain) return resolve();
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    // Each event is a line of the job's file (a record's JSON object) with the job's fields added
    // before its closing brace: the line is not parsed again. Events go out in writes of about
    // SEND_BYTES (a write per line costs more than the line).
    const send = async (job: Job, lines: string[]) => {
      const tail = `,"job":${JSON.stringify(job.key)},"jobId":${JSON.stringify(job.id)}}\n\n`;
      let chunk = '';
      const flush = async () => {
        const ok = res.write(chunk);
        chunk = '';
        lastWrite = Date.now();
        if (!ok) await drained();
      };
      for (const line of lines) {
        if (closed) return;
        if (!line.endsWith('}')) continue;
        if (step !== undefined && (JSON.parse(line) as LogRecord).i !== step) continue;
        chunk += `data: ${line.slice(0, -1)}${tail}`;
        if (chunk.length >= SEND_BYTES) await flush();
      }
      if (chunk && !closed) await flush();
    };
    /** Sends the job's file from its offset to its end; true when the file had anything new. */
    const readFile = async (job: Job): Promise<boolean> => {
      let got = false;
      for (;;) {
        const { lines, next } = await this.store.readLines(runId, job.id, offsets.get(job.id)!);
        if (!lines.length) return got;
        got = true;
        offsets.set(job.id, next);
        await send(job, lines);
      }
    };
    let nextPoll = 0;
    let fastUntil = 0;
    let finishedAt = 0;
    let closingPolls = 0;
    const closingDelay = () => Math.min(CLOSING_POLL_MS, CLOSING_FIRST_POLL_MS << closingPolls++);
    const apply = async (m: LogMessage) => {
      const job = byId.get(m.job);
      if (!job) return;
      onBus.add(job.id);
      if ('closed' in m) {
        closedAt.set(job.id, m.next);
        // The job's state changes in a moment: look at it often for a while, to end the stream promptly.
        fastUntil = Date.now() + CLOSING_MS;
        closingPolls = 0;
        // (Once the states say finished, the loop waits for this marker alone: it may end now.)
        nextPoll = finishedAt ? 0 : Math.min(nextPoll, Date.now() + closingDelay());
        if (m.next > offsets.get(job.id)!) await readFile(job);
        return;
      }
      if (m.next > (closedAt.get(job.id) ?? Infinity)) closedAt.delete(job.id); // written again (a retry)
      if (m.next <= offsets.get(job.id)!) return; // sent already
      if (m.from > offsets.get(job.id)!) {
        // A gap: this follower missed a batch. The file has it, where this node sees the file.
        let got = await readFile(job);
        for (let i = 0; got && i < LAG_RETRIES && offsets.get(job.id)! < m.from; i++) {
          // The file is here but behind (a shared file system that shows appends late).
          await new Promise((r) => setTimeout(r, LAG_RETRY_MS));
          got = (await readFile(job)) || got;
        }
        if (m.next <= offsets.get(job.id)!) return;
      }
      // The lines past what was sent; when the file is not visible here, what lies before them is lost to this follower.
      const offset = offsets.get(job.id)!;
      const lines = m.lines.split('\n');
      lines.pop(); // after the last newline
      let beyond = lines;
      if (m.from < offset) {
        // Part of this batch was in the file already (read before the batch was published).
        beyond = [];
        let at = m.from;
        for (const line of lines) {
          if (at >= offset) beyond.push(line);
          at += Buffer.byteLength(line) + 1;
        }
      }
      await send(job, beyond);
      offsets.set(job.id, m.next);
    };

    // Subscribe before the first read of the files: what is written after that read arrives on the bus.
    let unsubscribe: (() => void) | null = null;
    try {
      unsubscribe = await this.bus.subscribe(runId, (m) => {
        if (!byId.has(m.job)) return;
        if (!('closed' in m)) {
          // A reader slower than the job: past INBOX_MAX_BYTES, batches are left to the file (the next
          // batch's offsets show the gap and it is read from there).
          const bytes = m.next - m.from;
          if (inboxBytes + bytes > INBOX_MAX_BYTES) return;
          inboxBytes += bytes;
        }
        inbox.push(m);
        nudge();
      });
    } catch (e) {
      this.log.warn(`following run ${runId} without live lines (polling the files): ${(e as Error).message}`);
    }

    try {
      while (!closed) {
        while (inbox.length && !closed) await apply(next());
        if (closed) break;
        if (Date.now() >= nextPoll) {
          // Read the state before the files: a job seen finished has nothing more to write after this read.
          const current = await this.repo.jobs(runId);
          const finished = jobs.every((j) => current.find((c) => c.id === j.id)?.status === 'completed');
          for (const job of jobs) await readFile(job);
          while (inbox.length && !closed) await apply(next());
          if (finished) {
            // Where the files are not visible, the last lines come on the bus: wait a moment for a
            // job's closing marker if the bus carried the job and the marker (or a line before it) is missing.
            const pending = jobs.some((j) => onBus.has(j.id) && !(offsets.get(j.id)! >= (closedAt.get(j.id) ?? Infinity)));
            finishedAt ||= Date.now();
            const waited = Date.now() - finishedAt >= CLOSING_WAIT_MS;
            if (!pending || waited) {
              // The run is concluded a moment after its last job: a client that reads it on `end` sees it
              // concluded (unless its scheduler is away: the stream ends anyway). One job followed: its end.
              const run = await this.repo.getRun(runId);
              if (run?.status === 'completed' || waited || jobId) {
                res.write(`event: end\ndata: ${JSON.stringify({ status: run?.status, conclusion: run?.conclusion })}\n\n`);
                break;
              }
            }
            nextPoll = Date.now() + (pending ? FAST_POLL_MS : closingDelay());
          } else {
            // Without the bus (Redis away), polling is all there is: as often as before the bus.
            nextPoll = Date.now() + (Date.now() < fastUntil ? closingDelay() : !unsubscribe || !this.bus.live ? FAST_POLL_MS : POLL_MS);
          }
        }
        if (Date.now() - lastWrite >= KEEP_ALIVE_MS) {
          res.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        if (closed || inbox.length) continue;
        const wait = Math.max(0, Math.min(nextPoll, lastWrite + KEEP_ALIVE_MS) - Date.now());
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            wake = null;
            resolve();
          }, wait);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      unsubscribe?.();
      req.off('close', onClose);
      res.off('close', onClose);
      res.end();
    }
  }
}
