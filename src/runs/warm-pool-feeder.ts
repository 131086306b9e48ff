import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CatalogueRepository } from '../catalogue/catalogue.repository';
import { compareVersions } from '../catalogue/catalogue.service';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import type { PoolTarget } from '../docker/warm-pool';
import { EXECUTION_BACKEND, ExecutionBackend } from '../execution/backend';
import { runtimeFor, sandboxLimits } from '../execution/sandbox-limits';
import { labelOf } from '../queue/queue.types';
import { Periodic } from '../common/periodic';

const EVERY_MS = 60_000;

/**
 * Tells the warm pool what to keep ready: the latest version of every GA environment this worker may
 * take (its labels), with the runtime it would run under and the default limits (a job asking for other
 * limits gets a sandbox made for it). Read from the catalogue at start-up and every minute, so a newly
 * published version replaces the old one's sandboxes.
 */
@Injectable()
export class WarmPoolFeeder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('WarmPool');
  private readonly periodic = new Periodic(this.log, 'warm pool', EVERY_MS, () => this.feed());

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly catalogue: CatalogueRepository,
    @Inject(EXECUTION_BACKEND) private readonly backend: ExecutionBackend,
  ) {}

  onApplicationBootstrap(): void {
    // Only a backend with a pool (Docker's) is fed; a scripted one in tests has none.
    if (this.config.warmPool > 0 && this.backend.warm) this.periodic.start();
  }

  onApplicationShutdown(): void {
    this.periodic.stop();
  }

  async targets(): Promise<PoolTarget[]> {
    const latest = new Map<string, Awaited<ReturnType<CatalogueRepository['all']>>[number]>();
    for (const v of await this.catalogue.all()) {
      const seen = latest.get(v.name);
      if (!seen || compareVersions(v.version, seen.version) > 0) latest.set(v.name, v);
    }
    const limits = sandboxLimits(this.config);
    const mine = (name: string) => {
      const label = labelOf(name, this.config.environmentLabels);
      return label === null || this.config.workerLabels.includes(label);
    };
    return [...latest.values()]
      .filter((v) => v.report.status === 'ga' && mine(v.name))
      .map((v) => ({ image: v.report.image.id, runtime: runtimeFor(this.config, v.name), limits }));
  }

  async feed(): Promise<void> {
    this.backend.warm?.(await this.targets());
  }
}
