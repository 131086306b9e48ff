import { InjectQueue } from '@nestjs/bull';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bull';
import { DEFAULT_JOB_OPTIONS, JOBS_QUEUE, QueuePayloads } from './queue.types';

/** The producer side: typed, and idempotent by job id (a job already queued is not queued twice). */
@Injectable()
export class JobQueue {
  private readonly log = new Logger('JobQueue');
  constructor(@InjectQueue(JOBS_QUEUE) readonly queue: Queue) {
    queue.on('error', (e) => this.log.warn(`queue: ${e.message}`));
  }

  async enqueueJob(payload: QueuePayloads['run-job']): Promise<void> {
    await this.queue.add('run-job', payload, { ...DEFAULT_JOB_OPTIONS, jobId: payload.jobId });
  }

  async enqueueWebhook(payload: QueuePayloads['webhook-push']): Promise<void> {
    await this.queue.add('webhook-push', payload, { ...DEFAULT_JOB_OPTIONS, jobId: `delivery:${payload.deliveryId}` });
  }
}
