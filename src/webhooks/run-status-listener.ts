import { Injectable, OnModuleInit } from '@nestjs/common';
import { RunEvents } from '../runs/run-events';
import { StatusReporter } from './status-reporter';

/**
 * A concluded run of a registered repository gets its final commit status ('pending' is sent when the
 * delivery's run is submitted, by WebhooksService). Runs from other channels have no repository: nothing is sent.
 */
@Injectable()
export class RunStatusListener implements OnModuleInit {
  constructor(
    private readonly events: RunEvents,
    private readonly statuses: StatusReporter,
  ) {}

  onModuleInit(): void {
    this.events.on('run-concluded', ({ run, conclusion }) => {
      if (!run.repositoryId) return;
      const state = conclusion === 'success' ? 'success' : conclusion === 'failure' ? 'failure' : 'error';
      this.statuses.report(run, state, conclusion === 'cancelled' ? 'cancelled' : `Kiln: ${conclusion}`);
    });
  }
}
