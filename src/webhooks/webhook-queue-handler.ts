import { Injectable, OnModuleInit } from '@nestjs/common';
import { QueueHandlers } from '../queue/queue-handlers';
import { WebhooksService } from './webhooks.service';

/** The worker side of deliveries: a 'webhook-push' queue entry is built (clone, submit) by WebhooksService. */
@Injectable()
export class WebhookQueueHandler implements OnModuleInit {
  constructor(
    private readonly handlers: QueueHandlers,
    private readonly webhooks: WebhooksService,
  ) {}

  onModuleInit(): void {
    this.handlers.register('webhook-push', (job) => this.webhooks.build(job.data.deliveryId));
  }
}
