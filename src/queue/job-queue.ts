import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DEFAULT_JOB_OPTIONS, fairPriority, labelOf, QueuePayloads } from './queue.types';

/** Every queue of this configuration by label (null: the default queue every worker takes from). */
export type Queues = Map<string | null, Queue>;
export const QUEUES = Symbol('QUEUES');

/** The producer side: typed, and idempotent by job id (a job already queued is not queued twice). */
@Injectable()
export class JobQueue {
  private readonly log = new Logger('JobQueue');
  constructor(
    @Inject(QUEUES) readonly queues: Queues,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
  ) {
    for (const q of queues.values()) q.on('error', (e) => this.log.warn(`queue ${q.name}: ${e.message}`));
  }

  /** The default queue (webhook builds, unlabelled environments). */
  get queue(): Queue {
    return this.queues.get(null)!;
  }

  /**
   * Queued where the workers that may run the job's environment look (KILN_ENVIRONMENT_LABELS), placed
   * by fair share: ownerActiveJobs is how many jobs its owner has queued or running, this one included
   * (see fairPriority).
   */
  async enqueueJob(payload: QueuePayloads['run-job'], environment: string, ownerActiveJobs: number): Promise<void> {
    const queue = this.queues.get(labelOf(environment, this.config.environmentLabels))!;
    await queue.add('run-job', payload, { ...DEFAULT_JOB_OPTIONS, jobId: payload.jobId, priority: fairPriority(ownerActiveJobs) });
  }

  async enqueueWebhook(payload: QueuePayloads['webhook-push']): Promise<void> {
    await this.queue.add('webhook-push', payload, { ...DEFAULT_JOB_OPTIONS, jobId: `delivery:${payload.deliveryId}`, priority: fairPriority(1) });
  }
}
