import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Job as BullJob, Queue } from 'bull';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { JobRunner } from '../execution/job-runner';
import { JobInput, RetryableJobError } from '../execution/job';
import { AuthService } from '../auth/auth.service';
import { QueuePayloads } from '../queue/queue.types';
import { QueueHandlers } from '../queue/queue-handlers';
import { QUEUES, Queues } from '../queue/job-queue';
import { SlotGate } from '../queue/slot-gate';
import { RunScheduler } from './run-scheduler';
import { RunReporter } from './run-reporter';
import { RunsRepository } from './runs.repository';
import type { Job, Run } from './runs.types';
import { Metrics } from '../common/metrics';
import { patient } from '../db/patient';

/** The queue consumer: takes one job at a time per slot, runs it, records it, advances its run. */
@Injectable()
export class JobWorker implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly log = new Logger('Worker');
  private readonly running = new Map<string, AbortController>();
  private stopping = false;
  private gate!: SlotGate;
  private readonly repo: RunsRepository;
  private readonly scheduler: RunScheduler;
  private readonly auth: AuthService;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(QUEUES) private readonly queues: Queues,
    private readonly rawRepo: RunsRepository,
    private readonly runner: JobRunner,
    private readonly rawScheduler: RunScheduler,
    rawAuth: AuthService,
    private readonly handlers: QueueHandlers,
    private readonly metrics: Metrics,
  ) {
    // A job's records outlive a brief database outage: reads and writes are retried (patient.ts) instead
    // of failing the attempt, which the queue would retry as if the worker had been lost.
    this.repo = patient(rawRepo, this.log);
    this.scheduler = patient(rawScheduler, this.log);
    this.auth = patient(rawAuth, this.log);
  }

  /** This module's handler; other modules register theirs (e.g. webhooks/ its deliveries) the same way. */
  onModuleInit(): void {
    this.handlers.register('run-job', (job) => this.runJob(job));
  }

  /** Runs after every module's onModuleInit: by now each handler is registered, or one is missing. */
  onApplicationBootstrap(): void {
    for (const name of this.handlers.missing()) throw new Error(`queue job '${name}' has no handler`);
    // The default queue and one per label of this worker. One '*' processor per queue: Bull adds up the
    // concurrency of named processors, so a processor per job name would run more jobs than slots.
    const mine = [null, ...this.config.workerLabels].map((l) => this.queues.get(l)!);
    this.gate = new SlotGate(this.config.workerConcurrency, mine);
    for (const queue of mine) {
      handleWorkerNaming(queue);
      // Bull's promise settles only when processing ends; at shutdown the queue's connections close under
      // it ("Connection is closed."), which is expected then and a fault at any other time.
      const processing = queue.process('*', this.config.workerConcurrency, async (job: BullJob) => {
        const release = await this.gate.acquire();
        try {
          const handler = this.handlers.get(job.name);
          if (!handler) throw new Error(`queue job '${job.name}' has no handler (a newer Kiln queued it?)`);
          await handler(job);
        } finally {
          release();
        }
      });
      processing.catch((e: Error) => {
        if (!this.stopping) this.log.error(`queue ${queue.name}: the worker stopped taking jobs: ${e.message}`);
      });
    }
    const labels = this.config.workerLabels.length ? `; labels ${this.config.workerLabels.join(', ')}` : '';
    this.log.log(`worker taking jobs (${this.config.workerConcurrency} at a time${labels})`);
  }

  /**
   * Graceful stop (SIGTERM): take no new jobs, let running ones finish for KILN_SHUTDOWN_GRACE_SECONDS,
   * then cancel the rest cleanly (their sandboxes removed, their records completed as cancelled).
   */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.stopping = true;
    await this.gate?.stop();
    const grace = this.config.shutdownGraceSeconds * 1000;
    if (this.running.size) this.log.log(`${signal ?? 'shutdown'}: taking no new jobs; waiting up to ${grace / 1000} s for ${this.running.size} running job(s)`);
    const deadline = Date.now() + grace;
    while (this.running.size && Date.now() < deadline) await sleep(200);
    if (this.running.size) {
      this.log.warn(`cancelling ${this.running.size} job(s) still running after ${grace / 1000} s: ${[...this.running.keys()].join(', ')}`);
      for (const c of this.running.values()) c.abort();
      const hard = Date.now() + 60_000;
      while (this.running.size && Date.now() < hard) await sleep(200);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    for (const c of this.running.values()) c.abort();
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }

  /**
   * The job is marked in progress but reached us again: the worker that had it stopped renewing its
   * lock (killed, or its host lost) and Bull handed the entry over. A job whose steps had not started is
   * run again; one that had started is not (its steps may have had effects): it fails as 'worker lost'.
   * Returns true when the job should run.
   */
  private async workerLost(bull: BullJob, run: Run, jobId: string): Promise<boolean> {
    const runId = run.id;
    const started = (await this.repo.steps(runId)).some((s) => s.jobId === jobId && s.status !== 'pending');
    if (!started) {
      this.log.warn(`job ${jobId}: its worker was lost before any step started; running it again (queue entry ${bull.id})`);
      return true;
    }
    this.log.warn(`job ${jobId}: its worker was lost mid-job; failing it as 'worker lost'`);
    if (
      await this.repo.transitionJob(jobId, ['in_progress'], 'completed', {
        conclusion: 'failure',
        error:
          'worker lost: the worker running this job stopped mid-job (killed or its host lost); the job is not run again because its steps may have had effects',
      })
    ) {
      await this.repo.closeOpenSteps(jobId, 'failure', 'infrastructure');
      this.metrics.jobsFinished.inc({ conclusion: 'failure' });
    }
    await this.scheduler.advance(runId);
    await this.scheduler.advanceOwner(run.ownerId);
    return false;
  }

  private async transitionJobOrStop(jobId: string): Promise<boolean> {
    if (this.stopping) throw new RetryableJobError('the worker is shutting down; another worker will take this job');
    const took = await this.repo.transitionJob(jobId, ['queued', 'in_progress'], 'in_progress', { worker: this.config.workerName });
    if (took) this.log.log(`job ${jobId} taken by ${this.config.workerName}`);
    return took;
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
    if (job.status === 'in_progress' && !(await this.workerLost(bull, run, jobId))) return;
    if (!(await this.transitionJobOrStop(jobId))) return;
    await this.repo.startRun(runId);
    const abort = new AbortController();
    this.running.set(jobId, abort);
    // Cancellation (the run's, or fail-fast marking this job done) is seen within a second.
    const watch = setInterval(async () => {
      try {
        const [cancel, current] = await Promise.all([this.rawRepo.isCancelRequested(runId), this.rawRepo.job(jobId)]);
        if (cancel || current?.status === 'completed') abort.abort();
      } catch {
        /* the database is briefly away: try again next tick */
      }
    }, 1000);
    // The run is recorded (and advanced) while the sandbox is removed; the slot is freed, and a retry
    // let through, only once it is gone.
    try {
      try {
        const jobs = await this.repo.jobs(runId);
        const owner = run.ownerId ? await this.auth.findUser(run.ownerId) : null;
        const secrets = await this.auth.secretsOf(run.ownerId);
        // The owner's storage quota less what they hold: artifacts and the sources of runs not yet concluded (this one's included).
        const held = owner ? await this.repo.storage(owner.id) : null;
        const artifactBytesLeft = owner && held ? this.auth.quota(owner).artifactBytes - held.artifacts - held.sources : Infinity;
        const input = jobInput(run, job, { needs: RunScheduler.needResults(jobs, job.spec.needs), secrets, artifactBytesLeft });
        const outcome = await this.runner.run(input, new RunReporter(this.repo, runId, jobId), abort.signal);
        const shutDown = this.stopping && outcome.conclusion === 'cancelled' && !(await this.repo.isCancelRequested(runId).catch(() => false));
        const error = shutDown
          ? `the worker shut down before the job finished (it waited ${this.config.shutdownGraceSeconds} s, KILN_SHUTDOWN_GRACE_SECONDS)`
          : outcome.error;
        const recorded = await this.repo.transitionJob(jobId, ['in_progress'], 'completed', {
          conclusion: outcome.conclusion,
          error,
          outputs: outcome.outputs ?? {},
        });
        // Fail-fast marked it cancelled while its own step had already failed: it is recorded as the failure it is.
        if (!recorded && outcome.conclusion === 'failure') await this.repo.failFastWasFailure(jobId, error, outcome.outputs ?? {});
        this.metrics.jobsFinished.inc({ conclusion: outcome.conclusion });
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
        this.metrics.jobsFinished.inc({ conclusion: 'failure' });
        await this.repo.closeOpenSteps(jobId, 'skipped', 'infrastructure');
      } finally {
        clearInterval(watch);
      }
      await this.scheduler.advance(runId);
      await this.scheduler.advanceOwner(run.ownerId);
    } finally {
      await this.runner.sandboxGone(jobId);
      this.running.delete(jobId);
    }
  }
}

/** What the runner is given: plain data from the run's and the job's records. */
function jobInput(run: Run, job: Job, rest: Pick<JobInput, 'needs' | 'secrets' | 'artifactBytesLeft'>): JobInput {
  return {
    runId: run.id,
    jobId: job.id,
    spec: job.spec,
    workflowName: run.workflowName,
    context: run.context,
    hasSources: !(run.source.kind === 'command' && run.source.files === 0),
    ...rest,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Bull's process() names the blocking connection (CLIENT SETNAME) and drops the promise: when the queue
 * is closed before Redis answers (an app stopped right after it started), it rejects with "Connection is
 * closed." and nobody handles it. The name is only a label in CLIENT LIST, so its failure is handled here.
 */
export function handleWorkerNaming(queue: Queue): void {
  const q = queue as Queue & { setWorkerName?: () => Promise<unknown> };
  const setWorkerName = q.setWorkerName?.bind(queue);
  if (!setWorkerName) return;
  q.setWorkerName = () => {
    const naming = setWorkerName();
    naming.catch(() => undefined);
    return naming;
  };
}
