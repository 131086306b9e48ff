import { InjectQueue } from '@nestjs/bull';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Queue } from 'bull';
import { DATABASE, Database } from '../db/database';
import { JOBS_QUEUE } from '../queue/queue.types';
import { Metrics } from './metrics';

/** Gauges read at scrape time: the shared queue's depth and the jobs by state (same on every node). */
@Injectable()
export class MetricsCollector implements OnModuleInit {
  constructor(
    private readonly metrics: Metrics,
    @InjectQueue(JOBS_QUEUE) private readonly queue: Queue,
    @Inject(DATABASE) private readonly db: Database,
  ) {}

  onModuleInit(): void {
    this.metrics.gauge('kiln_queue_jobs', 'Queue entries by Bull state (waiting = queue depth)', ['state'], async () => {
      const c = await this.queue.getJobCounts();
      return { waiting: c.waiting, active: c.active, delayed: c.delayed, failed: c.failed, completed: c.completed };
    });
    this.metrics.gauge('kiln_jobs', 'Kiln jobs by status (all runs)', ['status'], async () => {
      const out: Record<string, number> = { queued: 0, in_progress: 0, completed: 0 };
      for (const r of await this.db.all<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status')) out[r.status] = Number(r.n);
      return out;
    });
  }
}
