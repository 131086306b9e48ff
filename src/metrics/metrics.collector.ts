import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { DATABASE, Database } from '../db/database';
import { QUEUES, Queues } from '../queue/job-queue';
import { Metrics } from '../common/metrics';

/** Gauges read at scrape time: the shared queues' depth and the jobs by state (same on every node). */
@Injectable()
export class MetricsCollector implements OnModuleInit {
  constructor(
    private readonly metrics: Metrics,
    @Inject(QUEUES) private readonly queues: Queues,
    @Inject(DATABASE) private readonly db: Database,
  ) {}

  onModuleInit(): void {
    this.metrics.gauge('kiln_queue_jobs', 'Queue entries by Bull state, all queues (waiting = queue depth)', ['state'], async () => {
      const out = { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 };
      for (const q of this.queues.values()) {
        const c = await q.getJobCounts();
        for (const k of Object.keys(out) as (keyof typeof out)[]) out[k] += c[k];
      }
      return out;
    });
    this.metrics.gauge('kiln_queue_waiting', 'Entries waiting per queue label (default: every worker takes them)', ['label'], async () => {
      const out: Record<string, number> = {};
      for (const [label, q] of this.queues) out[label ?? 'default'] = (await q.getJobCounts()).waiting;
      return out;
    });
    this.metrics.gauge('kiln_jobs', 'Kiln jobs by status (all runs)', ['status'], async () => {
      const out: Record<string, number> = { queued: 0, in_progress: 0, completed: 0 };
      for (const r of await this.db.all<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status')) out[r.status] = Number(r.n);
      return out;
    });
  }
}
