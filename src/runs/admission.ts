import { Inject, Injectable, Optional, ServiceUnavailableException } from '@nestjs/common';
import type Redis from 'ioredis';
import { AuthService } from '../auth/auth.service';
import type { Principal } from '../auth/auth.types';
import { CLOCK, Clock, systemClock } from '../common/clock';
import { QuotaExceededException } from '../common/quota';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { REDIS } from '../db/redis';
import { ActiveRunsLimit, RunsRepository, StorageLimit } from './runs.repository';
import type { Job, Run } from './runs.types';

/**
 * Whether a submission may become a run: the owner's rate limit and quotas, checked before any work
 * (admit) and again, atomically, as the run is recorded (record).
 */
@Injectable()
export class AdmissionService {
  private readonly now: Clock;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly repo: RunsRepository,
    private readonly auth: AuthService,
    @Optional() @Inject(CLOCK) clock?: Clock,
  ) {
    this.now = clock ?? systemClock;
  }

  /**
   * Quotas checked before any work: submissions per minute (429 with Retry-After), runs not yet
   * completed, and storage (artifacts and the sources of runs not yet concluded). Running-job concurrency is held at dequeue (the scheduler).
   */
  async admit(owner: Principal): Promise<void> {
    const q = this.auth.quota(owner.user);
    const now = this.now();
    const minute = Math.floor(now / 60_000);
    const key = `${this.config.queuePrefix}:rate:${owner.user.id}:${minute}`;
    let count: number;
    try {
      const res = await this.redis.multi().incr(key).expire(key, 120).exec();
      count = Number(res?.[0]?.[1] ?? 0);
    } catch (e) {
      throw new ServiceUnavailableException(`the queue's Redis is unreachable (${(e as Error).message}); try again shortly`);
    }
    const retryAfter = Math.max(1, 60 - Math.floor((now % 60_000) / 1000));
    if (count > q.submissionsPerMinute)
      throw new QuotaExceededException(`quota: at most ${q.submissionsPerMinute} submissions per minute; try again in ${retryAfter} s`, retryAfter);
    const active = await this.repo.countActiveRuns(owner.user.id);
    if (active >= q.queuedRuns)
      throw new QuotaExceededException(`quota: ${new ActiveRunsLimit(active, q.queuedRuns).message}. Wait for some to finish or cancel them`, 30);
    const use = await this.repo.storage(owner.user.id);
    const bytes = use.artifacts + use.sources;
    if (bytes >= q.artifactBytes)
      throw new QuotaExceededException(
        `quota: your storage (artifacts ${use.artifacts} bytes, sources of runs not yet concluded ${use.sources} bytes) uses ${bytes} bytes of ${q.artifactBytes} (KILN_QUOTA_ARTIFACT_BYTES); sources free up when their runs conclude, artifacts when their retention ends`,
        300,
      );
  }

  /** Records the run and its jobs if the owner's active runs and storage (with this source) stay within quota. */
  async record(owner: Principal, run: Run, jobs: Job[], sourceBytes: number): Promise<void> {
    const quota = this.auth.quota(owner.user);
    try {
      await this.repo.create(run, jobs, { maxActive: quota.queuedRuns, sourceBytes, maxStorageBytes: quota.artifactBytes });
    } catch (e) {
      if (e instanceof ActiveRunsLimit) throw new QuotaExceededException(`quota: ${e.message}. Wait for some to finish or cancel them`, 30);
      if (e instanceof StorageLimit)
        throw new QuotaExceededException(
          `quota: ${e.message} (KILN_QUOTA_ARTIFACT_BYTES). Sources free up when their runs conclude, artifacts when their retention ends`,
          300,
        );
      throw e;
    }
  }
}
