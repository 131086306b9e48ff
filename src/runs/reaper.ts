import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { ownerGone, scratchOwner } from '../storage/scratch';
import { ContainerReaper } from '../docker/container-reaper';
import { RunsRepository } from './runs.repository';
import { Metrics } from '../common/metrics';
import { Periodic } from '../common/periodic';

export interface ReapReport {
  containers: string[];
}

/**
 * Nothing left behind: this deployment's job containers (found by label or name) whose job is finished or
 * unknown, and idle warm sandboxes whose worker on this host is gone, are removed at start-up and every KILN_SWEEP_SECONDS (default 5 minutes); each removal is logged. A container of a job that is
 * still running is never touched. (Partial uploads and scratch clones: ScratchSweeper.)
 */
@Injectable()
export class Reaper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Reaper');
  private readonly periodic: Periodic;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly containers: ContainerReaper,
    private readonly repo: RunsRepository,
    private readonly metrics: Metrics,
  ) {
    this.periodic = new Periodic(this.log, 'sweep', config.sweepSeconds * 1000, () => this.sweep());
  }

  onApplicationBootstrap(): void {
    this.periodic.start();
  }

  onApplicationShutdown(): void {
    this.periodic.stop();
  }

  async sweep(): Promise<ReapReport> {
    const report: ReapReport = { containers: [] };
    // Only this deployment's containers (ContainerReaper): another Kiln on the same engine has jobs this one does not know.
    for (const c of await this.containers.list()) {
      const { jobId, pool } = c;
      if (!jobId && pool) {
        // An idle warm sandbox: its worker's to use, unless that worker (on this host) is gone.
        if (!ownerGone(scratchOwner(pool))) continue;
      }
      const job = jobId ? await this.repo.job(jobId) : null;
      if (job && job.status !== 'completed') continue;
      try {
        if (!(await this.containers.remove(c.id, c.network))) continue; // gone already
        report.containers.push(c.id.slice(0, 12));
        this.metrics.reapedContainers.inc();
        this.log.log(
          `removed ${c.network ? 'network' : 'container'} ${c.id.slice(0, 12)} (${c.name}) of ${job ? `finished job ${job.id}` : jobId ? `unknown job ${jobId}` : `a warm pool whose process is gone (${pool ?? '?'})`}`,
        );
      } catch (e) {
        this.log.warn(`could not remove ${c.id.slice(0, 12)}: ${(e as Error).message}`);
      }
    }
    return report;
  }
}
