import type { NeedResult } from '../execution/job';
import { newId } from '../common/ids';
import { planDeferredJob } from '../workflow/plan';
import { planContext, type PlanningOptions } from './planning-options';
import type { RunsRepository } from './runs.repository';
import type { Job, Run } from './runs.types';

/** The most the job specifications one late-planned job gives may take in all (as a whole submission's). */
const SPECS_MAX_BYTES = 8 * 1024 * 1024;

export type LateOutcome = { kind: 'failed'; error: string } | { kind: 'empty'; reason: string } | { kind: 'planned'; replaced: boolean };

/**
 * Jobs whose matrix, runs-on, name, continue-on-error or timeout-minutes read `needs` are planned when
 * their needs are done, as GitHub evaluates them: the placeholder recorded at submission is replaced,
 * in one transaction, by the jobs it gives (placed right after it), which the scheduler then runs.
 */
export class LateJobs {
  constructor(
    private readonly repo: Pick<RunsRepository, 'replaceJob'>,
    private readonly planning: PlanningOptions | null,
  ) {}

  async expand(run: Run, job: Job, jobs: Job[], needs: Record<string, NeedResult>): Promise<LateOutcome> {
    if (!this.planning) return { kind: 'failed', error: 'infrastructure: this process cannot plan jobs (no catalogue); the job was not planned' };
    const opts = await this.planning.options({ context: planContext(run.context), strict: job.spec.deferred!.strict ?? false });
    const others = jobs.filter((j) => j.id !== job.id).length;
    let planned;
    try {
      planned = await planDeferredJob(job.spec.deferred!, needs, opts, others);
    } catch (e) {
      return { kind: 'failed', error: `the job could not be planned now that its needs are done: ${(e as Error).message}` };
    }
    if ('problems' in planned) {
      const lines = planned.problems.map((p) => `${p.path}${p.line ? ` (line ${p.line})` : ''}: ${p.message}`);
      return { kind: 'failed', error: `the job could not be planned now that its needs are done:\n${lines.join('\n')}` };
    }
    if (planned.jobs.length === 0) return { kind: 'empty', reason: 'its matrix is empty now that its needs are done: no job to run' };
    let bytes = 0;
    for (const spec of planned.jobs) bytes += JSON.stringify(spec).length;
    if (bytes > SPECS_MAX_BYTES)
      return { kind: 'failed', error: `the job plans ${planned.jobs.length} job(s) whose specifications exceed ${SPECS_MAX_BYTES / 1024 / 1024} MiB in all` };
    const rows: Job[] = planned.jobs.map((spec, i) => ({
      ...job,
      id: newId(),
      position: job.position + 1 + i,
      key: spec.key,
      name: spec.name,
      environment: spec.environment.name ? `${spec.environment.name}@${spec.environment.version}` : '',
      status: 'pending',
      spec,
    }));
    return { kind: 'planned', replaced: await this.repo.replaceJob(job.id, rows) };
  }
}
