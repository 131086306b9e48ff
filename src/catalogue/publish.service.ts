import { ConflictException, Injectable, Logger } from '@nestjs/common';
import { BuildOutcome, CatalogueBuilder } from './catalogue.builder';

export interface PublishState {
  state: 'idle' | 'running' | 'done' | 'failed';
  names: string[];
  startedAt: string | null;
  finishedAt: string | null;
  outcomes: BuildOutcome[];
  error: string | null;
}

/**
 * Admins republish the catalogue from the manifests without a shell: the same builder as
 * `kiln images` (cached, probed, verified), one publish at a time, in the background.
 */
@Injectable()
export class PublishService {
  private readonly log = new Logger('Publish');
  private current: PublishState = { state: 'idle', names: [], startedAt: null, finishedAt: null, outcomes: [], error: null };

  constructor(private readonly builder: CatalogueBuilder) {}

  status(): PublishState {
    return this.current;
  }

  start(names: string[]): PublishState {
    if (this.current.state === 'running') throw new ConflictException('a publish is already running; see GET /api/v1/environments/publish');
    this.current = { state: 'running', names, startedAt: new Date().toISOString(), finishedAt: null, outcomes: [], error: null };
    const mine = this.current;
    void this.builder.buildAll(names).then(
      (outcomes) => Object.assign(mine, { state: 'done', outcomes, finishedAt: new Date().toISOString() }),
      (e: Error) => {
        this.log.error(`publish failed: ${e.message}`);
        Object.assign(mine, { state: 'failed', error: e.message, finishedAt: new Date().toISOString() });
      },
    );
    return mine;
  }
}
