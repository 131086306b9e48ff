import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Job as BullJob } from 'bull';
import { QueueHandlers } from './queue-handlers';
import { QUEUE_JOB_NAMES } from './queue.types';

test('every job name of the registry is missing until a module registers its handler', async () => {
  const handlers = new QueueHandlers();
  assert.deepEqual(handlers.missing(), QUEUE_JOB_NAMES);
  const seen: string[] = [];
  handlers.register('run-job', async (job) => {
    seen.push(job.data.jobId);
  });
  assert.deepEqual(
    handlers.missing(),
    QUEUE_JOB_NAMES.filter((n) => n !== 'run-job'),
  );
  await handlers.get('run-job')!({ name: 'run-job', data: { runId: 'r1', jobId: 'j1' } } as BullJob);
  assert.deepEqual(seen, ['j1']);
  assert.equal(handlers.get('no-such-job'), undefined, 'a name a newer Kiln queued has no handler');
});

test('a job name is handled by one module only', () => {
  const handlers = new QueueHandlers();
  handlers.register('webhook-push', async () => undefined);
  assert.throws(() => handlers.register('webhook-push', async () => undefined), /has a handler already/);
});
