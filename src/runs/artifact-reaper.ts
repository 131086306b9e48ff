import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { BLOB_STORE, blobKeys, BlobStore } from '../storage/blob-store';
import { RunsRepository } from './runs.repository';
import { Periodic } from '../common/periodic';

const EVERY_MS = 10 * 60_000;

/** Honours retention: expired artifacts are deleted (file and record) at start-up and every 10 minutes. */
@Injectable()
export class ArtifactReaper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Artifacts');
  private readonly periodic = new Periodic(this.log, 'retention sweep', EVERY_MS, () => this.sweep());

  constructor(
    private readonly repo: RunsRepository,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {}

  onApplicationBootstrap(): void {
    this.periodic.start();
  }

  onApplicationShutdown(): void {
    this.periodic.stop();
  }

  /** Deletes every artifact whose retention has passed; returns how many. */
  async sweep(now = new Date()): Promise<number> {
    const expired = await this.repo.expiredArtifacts(now.toISOString());
    for (const a of expired) {
      await this.blobs.remove(blobKeys.artifact(a.runId, a.id));
      await this.repo.deleteArtifact(a.id);
    }
    if (expired.length) this.log.log(`deleted ${expired.length} expired artifact(s)`);
    return expired.length;
  }
}
