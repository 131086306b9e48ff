import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthService } from '../auth/auth.service';
import type { Metrics } from '../common/metrics';
import type { KilnConfig } from '../config/config';
import type { JobRunner } from '../execution/job-runner';
import type { Queues } from '../queue/job-queue';
import { QueueHandlers } from '../queue/queue-handlers';
import { JobWorker } from './job-worker';
import type { RunScheduler } from './run-scheduler';
import type { RunsRepository } from './runs.repository';

/** A worker whose queues take processors without Redis: records what was registered on them. */
function worker(handlers: QueueHandlers) {
  const processed: string[] = [];
  let endProcessing: (e: Error) => void = () => undefined;
  const ending = new Promise<void>((_, reject) => (endProcessing = reject));
  const queue = {
    name: 'kiln-jobs',
    process: (name: string) => {
      processed.push(name);
      return ending;
    },
    pause: async () => undefined,
  };
  const config = { workerLabels: [], workerConcurrency: 2, workerName: 'w1', shutdownGraceSeconds: 0 } as unknown as KilnConfig;
  const w = new JobWorker(
    config,
    new Map([[null, queue]]) as unknown as Queues,
    {} as RunsRepository,
    {} as JobRunner,
    {} as RunScheduler,
    {} as AuthService,
    handlers,
    {} as Metrics,
  );
  return { w, processed, endProcessing };
}

test('the worker registers run-job itself and will not start while another job name has no handler', () => {
  const handlers = new QueueHandlers();
  const { w, processed } = worker(handlers);
  w.onModuleInit();
  assert.ok(handlers.get('run-job'), "run-job is the worker's own");
  assert.throws(() => w.onApplicationBootstrap(), /queue job 'webhook-push' has no handler/);
  assert.deepEqual(processed, [], 'no queue is consumed');
});

test('with every name handled, the worker takes jobs from its queue', () => {
  const handlers = new QueueHandlers();
  const { w, processed } = worker(handlers);
  w.onModuleInit();
  handlers.register('webhook-push', async () => undefined);
  w.onApplicationBootstrap();
  assert.deepEqual(processed, ['*']);
});

test('processing that ends as the queue closes at shutdown ("Connection is closed.") is expected, not an unhandled rejection', async () => {
  const handlers = new QueueHandlers();
  const { w, endProcessing } = worker(handlers);
  w.onModuleInit();
  handlers.register('webhook-push', async () => undefined);
  w.onApplicationBootstrap();
  const unhandled: unknown[] = [];
  const listener = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', listener);
  try {
    await w.beforeApplicationShutdown();
    endProcessing(new Error('Connection is closed.'));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', listener);
  }
});
