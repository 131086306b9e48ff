/** The one registry of queue job names and their payloads. Every name needs a handler in the worker,
 * registered by the module that owns it (queue-handlers.ts). */
export const JOBS_QUEUE = 'kiln-jobs';

/**
 * Labelled work has a queue of its own, `kiln-jobs.<label>`: a Bull consumer cannot pick entries by
 * kind, so a job only some workers may take (KILN_ENVIRONMENT_LABELS) waits where only they look.
 */
export function queueName(label: string | null): string {
  return label ? `${JOBS_QUEUE}.${label}` : JOBS_QUEUE;
}

/** Every queue a node of this configuration may produce to or consume from: the default, then one per label. */
export function queueLabels(config: { workerLabels: string[]; environmentLabels: Record<string, string> }): (string | null)[] {
  return [null, ...[...new Set([...Object.values(config.environmentLabels), ...config.workerLabels])].sort()];
}

/** The label a worker needs to take jobs of this environment (`name` or `name@version`), or null. */
export function labelOf(environment: string, environmentLabels: Record<string, string>): string | null {
  return environmentLabels[environment.split('@')[0]] ?? null;
}

export interface QueuePayloads {
  /** Run one job (one matrix combination) of a run. */
  'run-job': { runId: string; jobId: string };
  /** Build a push delivery: clone at the pushed sha, start the workflows it triggers. */
  'webhook-push': { deliveryId: string };
}

export type QueueJobName = keyof QueuePayloads;
export const QUEUE_JOB_NAMES: QueueJobName[] = ['run-job', 'webhook-push'];

/**
 * Fair share between users: a job's place in its queue is its Bull priority (1 goes first, equal
 * priorities in the order they came), and that priority is how many jobs its owner has queued or
 * running when it enters the queue, itself included. So a job of a user with fewer jobs running goes
 * before the waiting jobs of a user with more, whichever came first, on every worker and in every
 * labelled queue alike (Redis keeps the order, not a worker). A job's place is fixed when it enters the
 * queue. Webhook builds (short: a clone) go first.
 */
export function fairPriority(ownerActiveJobs: number): number {
  return Math.min(Math.max(1, Math.floor(ownerActiveJobs)), MAX_PRIORITY);
}
/** A bound far above any user's quota (KILN_QUOTA_CONCURRENT_JOBS is at most 1000). */
export const MAX_PRIORITY = 2 ** 21;

/** Retries are for infrastructure only (engine unreachable before a step ran); user failures never throw. */
export const DEFAULT_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 3000 },
  removeOnComplete: 1000,
  removeOnFail: 1000,
} as const;
