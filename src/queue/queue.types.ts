/** The one registry of queue job names and their payloads. Every name needs a handler in the worker. */
export const JOBS_QUEUE = 'kiln-jobs';

export interface QueuePayloads {
  /** Run one job (one matrix combination) of a run. */
  'run-job': { runId: string; jobId: string };
  /** Build a push delivery: clone at the pushed sha, start the workflows it triggers. */
  'webhook-push': { deliveryId: string };
}

export type QueueJobName = keyof QueuePayloads;
export const QUEUE_JOB_NAMES: QueueJobName[] = ['run-job', 'webhook-push'];

/** Retries are for infrastructure only (engine unreachable before a step ran); user failures never throw. */
export const DEFAULT_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 3000 },
  removeOnComplete: 1000,
  removeOnFail: 1000,
} as const;
