import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Job as BullJob } from 'bull';
import { QueueHandlers } from '../queue/queue-handlers';
import { WebhookQueueHandler } from './webhook-queue-handler';
import type { WebhooksService } from './webhooks.service';

test('a webhook-push queue entry is built by WebhooksService, by the delivery key it carries', async () => {
  const built: string[] = [];
  const webhooks = {
    build: async (deliveryId: string) => {
      built.push(deliveryId);
    },
  } as unknown as WebhooksService;
  const handlers = new QueueHandlers();
  new WebhookQueueHandler(handlers, webhooks).onModuleInit();
  assert.ok(!handlers.missing().includes('webhook-push'), 'registered on module init');
  assert.equal(handlers.get('run-job'), undefined, 'only its own name');
  await handlers.get('webhook-push')!({ name: 'webhook-push', data: { deliveryId: 'key-1' } } as BullJob);
  assert.deepEqual(built, ['key-1']);
});

test('a failed build fails the queue entry (the queue retries it)', async () => {
  const webhooks = {
    build: async () => {
      throw new Error('database away');
    },
  } as unknown as WebhooksService;
  const handlers = new QueueHandlers();
  new WebhookQueueHandler(handlers, webhooks).onModuleInit();
  await assert.rejects(handlers.get('webhook-push')!({ name: 'webhook-push', data: { deliveryId: 'key-2' } } as BullJob), /database away/);
});
