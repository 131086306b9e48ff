import { InjectQueue } from '@nestjs/bull';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Job as BullJob, Queue } from 'bull';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { JobRunner, RetryableJobError } from '../execution/job-runner';
import { AuthService } from '../auth/auth.service';
import { WebhooksService } from '../webhooks/webhooks.service';
import { JOBS_QUEUE, QUEUE_JOB_NAMES, QueueJobName, QueuePayloads } from '../queue/queue.types';
import { RunScheduler } from './run-scheduler';
import { RunsRepository } from './runs.repository';

/** The queue consumer: takes one job at a time per slot, runs it, records it, advances its run. */
@Injectable()
export class JobWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Worker');
  private readonly running = new Map<string, AbortController>();

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @InjectQueue(JOBS_QUEUE) private readonly queue: Queue,
    private readonly repo: RunsRepository,
    private readonly runner: JobRunner,
    private readonly scheduler: RunScheduler,
    private readonly auth: AuthService,
    private readonly webhooks: WebhooksService,
  ) {}

  onApplicationBootstrap(): void {
    const handlers: { [K in QueueJobName]: (job: BullJob<QueuePayloads[K]>) => Promise<void> } = {
      'run-job': (job) => this.runJob(job),
      'webhook-push': (job) => this.webhooks.build(job.data.deliveryId),
    };
    for (const name of QUEUE_JOB_NAMES) {
      if (!handlers[name]) throw new Error(`queue job '${name}' has no handler`);
      void this.queue.process(name, this.config.workerConcurrency, handlers[name]);
    }
    this.log.log(`worker taking jobs (${this.config.workerConcurrency} at a time)`);
  }

  async onApplicationShutdown(): Promise<void> {
    for (const c of this.running.values()) c.abort();
    await this.queue.close().catch(() => undefined);
  }

  private async runJob(bull: BullJob<QueuePayloads['run-job']>): Promise<void> {
    const { runId, jobId } = bull.data;
    const job = await this.repo.job(jobId);
    const run = await this.repo.getRun(runId);
    if (!job || !run || job.status === 'completed') return;
    if (run.cancelRequested) {
      await this.repo.transitionJob(jobId, ['queued', 'in_progress'], 'completed', { conclusion: 'cancelled' });
      await this.repo.closeOpenSteps(jobId, 'cancelled', 'cancelled');
      await this.scheduler.advance(runId);
      return;
    }
    if (!(await this.repo.transitionJob(jobId, ['queued', 'in_progress'], 'in_progress'))) return;
    await this.repo.startRun(runId);
    const abort = new AbortController();
    this.running.set(jobId, abort);
    // Cancellation (the run's, or fail-fast marking this job done) is seen within a second.
    const watch = setInterval(async () => {
      try {
        const [cancel, current] = await Promise.all([this.repo.isCancelRequested(runId), this.repo.job(jobId)]);
        if (cancel || current?.status === 'completed') abort.abort();
      } catch { /* the database is briefly away: try again next tick */ }
    }, 1000);
    try {
      const jobs = await this.repo.jobs(runId);
      const owner = run.ownerId ? await this.auth.findUser(run.ownerId) : null;
      const secrets = await this.auth.secretsOf(run.ownerId);
      const artifactBytesLeft = owner ? this.auth.quota(owner).artifactBytes - (await this.repo.artifactBytes(owner.id)) : Infinity;
      const outcome = await this.runner.run(run, job, RunScheduler.needResults(jobs, job.spec.needs), abort.signal, { secrets, artifactBytesLeft });
      await this.repo.transitionJob(jobId, ['in_progress'], 'completed', { conclusion: outcome.conclusion, error: outcome.error, outputs: outcome.outputs ?? {} });
      if (outcome.conclusion === 'cancelled') await this.repo.closeOpenSteps(jobId, 'cancelled', 'cancelled');
    } catch (e) {
      const last = bull.attemptsMade + 1 >= (bull.opts.attempts ?? 1);
      if (e instanceof RetryableJobError && !last) {
        this.log.warn(`job ${jobId}: ${e.message}; will retry`);
        await this.repo.transitionJob(jobId, ['in_progress'], 'queued');
        throw e;
      }
      this.log.error(`job ${jobId}: ${(e as Error).message}`);
      await this.repo.transitionJob(jobId, ['in_progress'], 'completed', { conclusion: 'failure', error: `infrastructure: ${(e as Error).message}` });
      await this.repo.closeOpenSteps(jobId, 'skipped', 'infrastructure');
    } finally {
      clearInterval(watch);
      this.running.delete(jobId);
    }
    await this.scheduler.advance(runId);
    await this.scheduler.advanceOwner(run.ownerId);
  }
}
