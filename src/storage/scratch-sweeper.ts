import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileStore } from './file-store';
import { Metrics } from '../common/metrics';
import { ownerGone, scratchOwner } from './scratch';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { Periodic } from '../common/periodic';

/** An upload or clone untouched this long belongs to a request that is over (clones are capped at 2 min). */
const MAX_AGE_MS = 60 * 60_000;

export interface SweepReport {
  /** `uploads/<name>` or `tmp/<name>`, with why. */
  removed: { entry: string; why: string }[];
}

/**
 * Nothing left behind on disk: partial uploads and scratch clones whose process is gone (named for
 * their owner, see scratch.ts) are removed at start-up and every KILN_SWEEP_SECONDS (default 5 minutes); anything untouched for an
 * hour likewise. Every removal is logged. Runs in every role that takes uploads or clones.
 */
@Injectable()
export class ScratchSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('ScratchSweeper');
  private readonly periodic: Periodic;

  constructor(
    @Inject(KILN_CONFIG) config: KilnConfig,
    private readonly files: FileStore,
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

  sweep(now = Date.now()): SweepReport {
    const report: SweepReport = { removed: [] };
    for (const [label, dir] of [
      ['uploads', this.files.uploadsDir()],
      ['tmp', this.files.tmpDir()],
    ] as const) {
      for (const name of fs.readdirSync(dir)) {
        const file = path.join(dir, name);
        const st = fs.lstatSync(file, { throwIfNoEntry: false });
        if (!st) continue;
        const owner = scratchOwner(name);
        let why: string | null = null;
        if (ownerGone(owner)) why = `its process ${owner!.pid} is gone`;
        else if (now - st.mtimeMs >= MAX_AGE_MS) why = `untouched for ${Math.round((now - st.mtimeMs) / 60_000)} min`;
        if (!why) continue;
        fs.rmSync(file, { recursive: true, force: true });
        report.removed.push({ entry: `${label}/${name}`, why });
        this.metrics.scratchRemoved.inc();
        this.log.log(`removed ${label === 'uploads' ? 'partial upload' : 'scratch folder'} ${name} (${why})`);
      }
    }
    return report;
  }
}
