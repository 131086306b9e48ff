import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { LogRecord, LogStore } from '../storage/log-store';
import { RunsRepository } from './runs.repository';
import type { Job } from './runs.types';

const POLL_MS = 200;

export interface LogLine extends LogRecord {
  job: string;
}

/** Reads job logs for the API: all at once (text or JSON lines), or followed live as server-sent events. */
@Injectable()
export class LogsService {
  constructor(private readonly repo: RunsRepository, private readonly store: LogStore) {}

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

  /** Streams every line from the start, then new ones as they are written, until every job has ended. */
  async follow(runId: string, jobId: string | undefined, step: number | undefined, req: Request, res: Response): Promise<void> {
    const jobs = await this.jobsOf(runId, jobId);
    if (step !== undefined && !jobId) throw new BadRequestException('step needs job: ?job=<id>&step=<index>');
    res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    let closed = false;
    req.on('close', () => { closed = true; });
    const offsets = new Map(jobs.map((j) => [j.id, 0]));
    let lastBeat = Date.now();
    while (!closed) {
      // Read the state before the files: a job seen finished has nothing more to write after this read.
      const current = await this.repo.jobs(runId);
      const finished = jobs.every((j) => current.find((c) => c.id === j.id)?.status === 'completed');
      let sent = false;
      for (const job of jobs) {
        for (;;) {
          const { records, next } = await this.store.read(runId, job.id, offsets.get(job.id)!);
          if (!records.length) break;
          offsets.set(job.id, next);
          for (const r of records) {
            if (step !== undefined && r.i !== step) continue;
            res.write(`data: ${JSON.stringify({ ...r, job: job.key, jobId: job.id })}\n\n`);
            sent = true;
          }
        }
      }
      if (finished) {
        const run = await this.repo.getRun(runId);
        res.write(`event: end\ndata: ${JSON.stringify({ status: run?.status, conclusion: run?.conclusion })}\n\n`);
        break;
      }
      if (!sent && Date.now() - lastBeat > 15_000) {
        res.write(': keep-alive\n\n');
        lastBeat = Date.now();
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    res.end();
  }
}
