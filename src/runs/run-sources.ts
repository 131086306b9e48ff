import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { BLOB_STORE, blobKeys, BlobStore } from '../storage/blob-store';
import { Periodic } from '../common/periodic';
import { RunsRepository } from './runs.repository';

/** How many concluded runs one sweep pass looks at per query. */
const BATCH = 200;

/** The parts of RunsRepository a run's source needs (a unit test replaces them). */
export type SourceRecords = Pick<RunsRepository, 'sourceReleased' | 'concludedWithSource'>;

/**
 * A run's source (`sources/<run>.tar`, the sanitized copy of its upload or clone) lives exactly as long
 * as the run: stored when the run is recorded, removed when the run concludes, whatever the way
 * (success, failure, cancel, every job skipped). Kiln has no re-runs, so nothing needs it after. While
 * it exists its size counts in the owner's storage (RunsRepository.storage). A sweep at start-up and
 * every KILN_SWEEP_SECONDS removes the sources of runs that concluded without it (before an upgrade
 * that brought this, or a process stopped between the conclusion and the removal).
 */
@Injectable()
export class RunSources implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Sources');
  private readonly periodic: Periodic;

  constructor(
    @Inject(KILN_CONFIG) config: KilnConfig,
    @Inject(RunsRepository) private readonly repo: SourceRecords,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {
    this.periodic = new Periodic(this.log, 'source sweep', config.sweepSeconds * 1000, () => this.sweep());
  }

  onApplicationBootstrap(): void {
    this.periodic.start();
  }

  onApplicationShutdown(): void {
    this.periodic.stop();
  }

  /** Moves a complete, checked source into the store for the run. */
  keep(runId: string, tarPath: string): Promise<void> {
    return this.blobs.put(blobKeys.source(runId), tarPath);
  }

  /** Removes the run's source (no error when it is gone already) and stops counting it. */
  async release(runId: string): Promise<void> {
    await this.blobs.remove(blobKeys.source(runId));
    await this.repo.sourceReleased(runId);
  }

  /** Removes the sources of every concluded run that still has one; returns how many. */
  async sweep(): Promise<number> {
    let removed = 0;
    for (;;) {
      const ids = await this.repo.concludedWithSource(BATCH);
      for (const id of ids) await this.release(id);
      removed += ids.length;
      if (ids.length < BATCH) break;
    }
    if (removed) this.log.log(`removed the sources of ${removed} concluded run(s)`);
    return removed;
  }
}
