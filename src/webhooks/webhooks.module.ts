import { DynamicModule, Module } from '@nestjs/common';
import { RepositoriesRepository } from './repositories.repository';
import { RunStatusListener } from './run-status-listener';
import { StatusReporter } from './status-reporter';
import { WebhookQueueHandler } from './webhook-queue-handler';
import { WebhooksController } from './webhooks.controller';
import { WebhooksService } from './webhooks.service';

/**
 * Registered repositories, push deliveries and commit statuses. Uses runs/ (RunsService, RunEvents) and
 * the queue from RunsCoreModule (global); runs/ knows nothing of it. The controller is loaded by the
 * roles that serve HTTP, the queue handler by those that take jobs; statuses are sent wherever a run
 * may conclude (both).
 */
@Module({})
export class WebhooksModule {
  static forRole(roles: { http: boolean; worker: boolean }): DynamicModule {
    return {
      module: WebhooksModule,
      controllers: roles.http ? [WebhooksController] : [],
      providers: [RepositoriesRepository, StatusReporter, WebhooksService, RunStatusListener, ...(roles.worker ? [WebhookQueueHandler] : [])],
      exports: [RepositoriesRepository, WebhooksService],
    };
  }
}
