import { Injectable, Logger, Optional } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { JobQueue } from '../queue/job-queue';
import { evaluateCondition } from '../workflow/expressions';
import type { Conclusion, NeedResult } from '../execution/job';
import { RunEvents } from './run-events';
import { RunSources } from './run-sources';
import { FAIL_FAST_CANCEL, RunsRepository } from './runs.repository';
import type { Job, Run } from './runs.types';
import { planContext, PlanningOptions } from './planning-options';
import { LateJobs } from './late-jobs';

/** Jobs are recorded at positions this far apart: the jobs a late-planned job gives take the places after it. */
export const POSITION_GAP = 1000;

/**
 * Decides what runs next: jobs whose needs are done are queued (or skipped by their `if:`), matrix
 * jobs respect max-parallel and fail-fast, a cancelled run stops its waiting jobs, and a run whose
 * jobs are all done is concluded. Safe to call any number of times from any process: every change
 * is a conditional update, and queue adds are idempotent by job id.
 */
@Injectable()
export class RunScheduler {
  private readonly log = new Logger('RunScheduler');
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly repo: RunsRepository,
    private readonly queue: JobQueue,
    private readonly auth: AuthService,
    private readonly events: RunEvents,
    private readonly sources: RunSources,
    @Optional() planning?: PlanningOptions,
  ) {
    this.late = new LateJobs(repo, planning ?? null);
  }

  private readonly late: LateJobs;

  /** After one of an owner's jobs ends, their other runs may have jobs waiting on the concurrency quota. */
  async advanceOwner(ownerId: string | null): Promise<void> {
    if (!ownerId) return;
    const quota = await this.ownerQuota(ownerId);
    for (const id of await this.repo.activeRunIds(ownerId)) {
      // Oldest first, and only while the owner has a free slot: with thousands of runs waiting, a job's
      // end does not walk them all.
      if ((await this.repo.countActiveJobs(ownerId)) >= quota) return;
      await this.advance(id);
    }
  }

  advance(runId: string): Promise<void> {
    const prev = this.chains.get(runId) ?? Promise.resolve();
    const next = prev.then(() => this.step(runId)).catch((e: Error) => this.log.error(`advancing ${runId}: ${e.stack ?? e.message}`));
    this.chains.set(runId, next);
    void next.then(() => {
      if (this.chains.get(runId) === next) this.chains.delete(runId);
    });
    return next;
  }

  /** Aggregated result per needed job id (a matrix job fails if any of its combinations failed). */
  static needResults(jobs: Job[], needs: string[]): Record<string, NeedResult> {
    const out: Record<string, NeedResult> = {};
    for (const id of needs) {
      const group = jobs.filter((j) => j.workflowJobId === id);
      // As on GitHub, a job allowed to fail (job-level continue-on-error) is a success to the jobs that need it.
      const cs = group.map((j) => (j.conclusion === 'failure' && j.spec.continueOnError ? 'success' : j.conclusion));
      const result: Conclusion = cs.includes('failure')
        ? 'failure'
        : cs.includes('cancelled')
          ? 'cancelled'
          : cs.every((c) => c === 'skipped')
            ? 'skipped'
            : 'success';
      out[id] = { result, outputs: Object.assign({}, ...group.map((j) => j.outputs)) };
    }
    return out;
  }

  private async step(runId: string): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      const run = await this.repo.getRun(runId);
      if (!run || run.status === 'completed') return;
      const jobs = await this.repo.jobs(runId);
      if (jobs.every((j) => j.status === 'completed')) {
        await this.conclude(run, jobs);
        return;
      }
      if (!(await this.pass(run, jobs))) return;
    }
  }

  /** One pass over the waiting jobs; true when something changed and another pass may do more. */
  private async pass(run: Run, jobs: Job[]): Promise<boolean> {
    let changed = false;
    // The owner's quota does not change during a pass: read it once, when a job is first ready.
    let quota: number | undefined;
    let failedSteps: Set<string> | undefined;
    for (const job of jobs) {
      if (job.status === 'pending' && job.spec.verdict) {
        // Decided at submission: not runnable here, or its if: was already false.
        changed = (await this.finish(job, ['pending'], 'skipped', job.spec.verdict.reason)) || changed;
        continue;
      }
      if (job.status === 'queued' && run.cancelRequested) {
        changed = (await this.finish(job, ['queued'], 'cancelled')) || changed;
        continue;
      }
      if (
        (job.status === 'queued' || job.status === 'in_progress') &&
        job.spec.strategy?.failFast &&
        jobs.some((j) => j.workflowJobId === job.workflowJobId && j.id !== job.id && failedHard(j))
      ) {
        // The worker running it sees the job completed within a second and stops it. A job whose own step
        // has failed already is a failure, whatever stops it (the worker corrects one that fails meanwhile).
        failedSteps ??= new Set((await this.repo.steps(run.id)).filter((st) => st.conclusion === 'failure').map((st) => st.jobId));
        changed =
          (failedSteps.has(job.id)
            ? await this.finish(job, ['queued', 'in_progress'], 'failure', 'stopped by fail-fast after its own step failed')
            : await this.finish(job, ['queued', 'in_progress'], 'cancelled', `${FAIL_FAST_CANCEL}: another job of this matrix failed`)) || changed;
        continue;
      }
      if (job.status !== 'pending') continue;
      if (run.cancelRequested) {
        changed = (await this.finish(job, ['pending'], 'cancelled')) || changed;
        continue;
      }
      const needed = jobs.filter((j) => job.spec.needs.includes(j.workflowJobId));
      if (needed.some((j) => j.status !== 'completed')) continue;
      const siblings = jobs.filter((j) => j.workflowJobId === job.workflowJobId && j.id !== job.id);
      const strategy = job.spec.strategy;
      if (strategy?.failFast && siblings.some(failedHard)) {
        changed = (await this.finish(job, ['pending'], 'cancelled', `${FAIL_FAST_CANCEL}: another job of this matrix failed`)) || changed;
        continue;
      }
      const needs = RunScheduler.needResults(jobs, job.spec.needs);
      const allSucceeded = Object.values(needs).every((n) => n.result === 'success');
      let go: boolean;
      try {
        go = await evaluateCondition(
          job.spec.if,
          {
            github: planContext(run.context).github,
            needs,
            vars: {},
            inputs: run.context.inputs ?? {},
          },
          {
            success: () => allSucceeded,
            failure: () => Object.values(needs).some((n) => n.result === 'failure'),
            cancelled: () => run.cancelRequested,
            always: () => true,
          },
        );
      } catch (e) {
        changed = (await this.finish(job, ['pending'], 'failure', `the job's if: condition could not be evaluated: ${(e as Error).message}`)) || changed;
        continue;
      }
      if (!go) {
        const unmet = Object.entries(needs).filter(([, n]) => n.result !== 'success');
        const why = job.spec.if === null && unmet.length ? `not run: ${unmet.map(([id, n]) => `${id} ended ${n.result}`).join(', ')}` : null;
        changed = (await this.finish(job, ['pending'], 'skipped', why)) || changed;
        continue;
      }
      if (job.spec.deferred) {
        // Its matrix, runs-on, ... read needs: planned now, into the jobs it gives (placed where it was).
        const outcome = await this.late.expand(run, job, jobs, needs);
        if (outcome.kind === 'failed') changed = (await this.finish(job, ['pending'], 'failure', outcome.error)) || changed;
        else if (outcome.kind === 'empty') changed = (await this.finish(job, ['pending'], 'skipped', outcome.reason)) || changed;
        else changed = outcome.replaced || changed;
        continue;
      }
      if (strategy?.maxParallel && siblings.filter((j) => j.status === 'queued' || j.status === 'in_progress').length >= strategy.maxParallel) continue;
      // The active count is re-read per job: other runs and processes change it.
      const active = run.ownerId ? await this.repo.countActiveJobs(run.ownerId) : 0;
      if (run.ownerId && active >= (quota ??= await this.ownerQuota(run.ownerId))) continue; // waits: quota
      if (await this.repo.transitionJob(job.id, ['pending'], 'queued')) {
        job.status = 'queued';
        // Fair share: placed in the queue behind the jobs of owners with fewer jobs queued or running.
        await this.queue.enqueueJob({ runId: run.id, jobId: job.id }, job.environment, active + 1);
      }
    }
    return changed;
  }

  private async ownerQuota(ownerId: string): Promise<number> {
    const user = await this.auth.findUser(ownerId);
    return user ? this.auth.quota(user).concurrentJobs : Infinity;
  }

  private async finish(job: Job, from: Job['status'][], conclusion: Conclusion, error: string | null = null): Promise<boolean> {
    const ok = await this.repo.transitionJob(job.id, from, 'completed', { conclusion, error });
    if (ok) await this.repo.closeOpenSteps(job.id, conclusion === 'cancelled' ? 'cancelled' : 'skipped', conclusion === 'cancelled' ? 'cancelled' : null);
    return ok;
  }

  private async conclude(run: Run, jobs: Job[]): Promise<void> {
    const failed = jobs.some(failedHard);
    const conclusion: Conclusion = run.cancelRequested ? 'cancelled' : failed ? 'failure' : 'success';
    // Every job is done: nothing reads the source again (Kiln has no re-runs). It goes before the run is
    // marked completed, so a completed run never holds one (a failed removal is retried by the sweep).
    await this.sources
      .release(run.id)
      .catch((e: Error) => this.log.warn(`run ${run.id}: its source could not be removed now (${e.message}); the source sweep will`));
    if (await this.repo.completeRun(run.id, conclusion)) {
      this.log.log(`run ${run.id}: ${conclusion}`);
      this.events.emit('run-concluded', { run, conclusion });
    }
  }
}

/** A failure that counts: a job allowed to fail (job-level continue-on-error) neither fails the run nor triggers fail-fast. */
function failedHard(job: Job): boolean {
  return job.conclusion === 'failure' && !job.spec.continueOnError;
}
