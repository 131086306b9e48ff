/**
 * Parsed workflow -> RunPlan: checks every `${{ }}` at submission (syntax and contexts, with path and
 * line), orders jobs by `needs`, and plans each job (plan-job.ts). As GitHub runs each job where it
 * can, a job this server cannot run is kept as *not runnable* (unless the submission is strict), a job
 * whose `if:` is already false is skipped without being judged, and a job whose head reads `needs` is
 * planned when its needs are done (planDeferredJob). Only an invalid file, or one where no job could
 * run, is refused: every problem of parse and plan in one WorkflowError. No Docker, no I/O.
 */
import { checkCondition, evaluateCondition, splitTemplate, STATUS_FUNCTIONS } from './expressions';
import { WorkflowError, type DeferredJob, type PlannedJob, type PlanOptions, type RunPlan, type WorkflowProblem } from './model';
import { collectWorkflow, type ParsedJob, type ParsedWorkflow } from './parse';
import { JobPlanner, verdictBase } from './plan-job';
import { checkAllExpressions } from './plan-expressions';
import { Problems } from './plan-problems';
import { ROOT_PATH } from './safe-yaml';

export { defaultStepName } from './plan-job';

/** Validates expressions, expands matrices, resolves runs-on, orders by needs. Throws WorkflowError. */
export async function planWorkflow(wf: ParsedWorkflow, opts: PlanOptions): Promise<RunPlan> {
  return plan(wf, opts, []);
}

/** Convenience: parse + plan, reporting the problems of both at once. */
export async function planFromYaml(text: string, opts: PlanOptions): Promise<RunPlan> {
  const { workflow, problems } = collectWorkflow(text);
  if (!workflow) throw new WorkflowError(problems.map(plain));
  return plan(workflow, opts, problems);
}

async function plan(wf: ParsedWorkflow, opts: PlanOptions, initial: WorkflowProblem[]): Promise<RunPlan> {
  // A problem that only makes its job not runnable stays with that job (unless the submission is strict).
  const unrunnable = new Map<string, WorkflowProblem[]>();
  const rest: WorkflowProblem[] = [];
  for (const problem of initial) {
    const id = problem.notRunnable && !opts.strict ? jobIdOf(problem.path, wf) : null;
    if (id) unrunnable.set(id, [...(unrunnable.get(id) ?? []), problem]);
    else rest.push(plain(problem));
  }
  const p = new Problems(wf.lines, rest);
  await checkAllExpressions(wf, p);
  const ordered = orderJobs(wf.jobs, p);
  const planner = new JobPlanner(wf, opts, p);
  const jobs: PlannedJob[] = [];
  for (const job of ordered) {
    if (!opts.strict && (await falseAtSubmission(job, opts))) {
      const reason = `its if: is false for this run (${job.if!.trim()})`;
      const path = `${job.path}.if`;
      jobs.push({ ...verdictBase(job, job.id, job.name ?? job.id), verdict: { kind: 'skipped', reason, path, line: p.lineOf(path) } });
      continue;
    }
    const cannot = unrunnable.get(job.id);
    if (cannot) {
      const reason = `not runnable here: ${cannot.map((c) => c.message).join('; ')}`;
      const verdict = { kind: 'not-runnable' as const, reason, path: cannot[0].path, line: cannot[0].line };
      jobs.push({ ...verdictBase(job, job.id, job.name ?? job.id), verdict });
      continue;
    }
    if (readsNeeds(job)) {
      planner.checkJob(job);
      jobs.push(deferred(job, wf, opts));
      continue;
    }
    jobs.push(...(await planner.plan(job, jobs.length)));
  }
  if (p.list.length > 0) throw new WorkflowError(p.sorted());
  // Refused only when no job could ever run here: jobs merely skipped by their if: make a run, as on GitHub.
  if (jobs.length > 0 && jobs.every((j) => j.verdict?.kind === 'not-runnable')) {
    // Nothing would run: say why for each job, as one refusal.
    const why = jobs.flatMap((j) => {
      const v = j.verdict!;
      // Each problem that made the job not runnable, as a strict submission's refusal names them.
      const list = unrunnable.get(j.jobId) ?? [{ path: v.path, line: v.line, message: v.reason.replace(/^not runnable here: /, '') }];
      return list.map((x) => ({ path: x.path, line: x.line, message: `${j.key}: ${x.message}` }));
    });
    throw new WorkflowError([{ path: ROOT_PATH, line: null, message: 'no job of this workflow can run here (each is listed with why)' }, ...why]);
  }
  return { workflowName: wf.name ?? 'workflow', jobs };
}

/**
 * Plans a job whose head reads `needs`, now that its needs are done: the jobs it gives (none for an
 * empty matrix), or the problems that stop it (the job fails with them, as on GitHub).
 */
export async function planDeferredJob(
  deferredJob: DeferredJob,
  needs: Record<string, unknown>,
  opts: PlanOptions,
  jobsSoFar: number,
): Promise<{ jobs: PlannedJob[] } | { problems: WorkflowProblem[] }> {
  const job = deferredJob.job as ParsedJob;
  const p = new Problems(deferredJob.lines, []);
  const planner = new JobPlanner(deferredJob.workflow, { ...opts, labelMap: deferredJob.labelMap }, p);
  const jobs = await planner.plan(job, jobsSoFar, needs);
  return p.list.length ? { problems: p.sorted() } : { jobs };
}

/** A problem as reported to the submitter (the not-runnable mark is internal). */
function plain(problem: WorkflowProblem): WorkflowProblem {
  const { notRunnable: _, ...rest } = problem;
  return rest;
}

/** The job a problem's path belongs to (`jobs.<id>...`), if it is one of the workflow's. */
function jobIdOf(path: string, wf: ParsedWorkflow): string | null {
  return wf.jobs.find((j) => path === j.path || path.startsWith(`${j.path}.`) || path.startsWith(`${j.path}[`))?.id ?? null;
}

/** True when the job's head (matrix, runs-on, name, continue-on-error, timeout-minutes) reads the needs context. */
function readsNeeds(job: ParsedJob): boolean {
  const texts = [job.runsOn, job.name, job.continueOnError, job.timeoutMinutes, job.strategy?.matrix ? JSON.stringify(job.strategy.matrix) : null];
  return texts.some((t) => typeof t === 'string' && splitTemplate(t).some((part) => part.kind === 'expr' && /\bneeds\b/.test(part.expr)));
}

/** The placeholder of a job planned late: its template, and what the run's records need until then. */
function deferred(job: ParsedJob, wf: ParsedWorkflow, opts: PlanOptions): PlannedJob {
  const prefix = job.path;
  const lines = Object.fromEntries(Object.entries(wf.lines).filter(([path]) => path === prefix || path.startsWith(`${prefix}.`)));
  const name = job.name !== null && splitTemplate(job.name).every((part) => part.kind === 'text') ? job.name : job.id;
  return {
    ...verdictBase(job, job.id, name),
    deferred: { job, workflow: { name: wf.name, env: wf.env, defaults: wf.defaults }, lines, labelMap: opts.labelMap, strict: opts.strict ?? false },
  };
}

/**
 * True when the job's `if:` is false from what is known at submission (event, ref, inputs), whatever
 * its needs end as: it reads no other context, and it uses no status function unless the job has no
 * needs (then success() and always() are true, failure() and cancelled() false). Undecided = false.
 */
async function falseAtSubmission(job: ParsedJob, opts: PlanOptions): Promise<boolean> {
  if (job.if === null || !opts.context) return false;
  if ((await checkCondition(job.if, ['github', 'inputs', 'vars'])).length > 0) return false;
  const status = new RegExp(`\\b(${STATUS_FUNCTIONS.join('|')})\\s*\\(`).test(job.if);
  if (status && job.needs.length > 0) return false;
  try {
    const ctx = { github: opts.context.github, inputs: opts.context.inputs, vars: {} };
    return !(await evaluateCondition(job.if, ctx, { success: () => true, failure: () => false, cancelled: () => false, always: () => true }));
  } catch {
    return false; // the scheduler evaluates it again, and says what is wrong
  }
}

// =============================================================================================
// needs: validation, cycles, stable topological order
// =============================================================================================

/** Jobs in a topological order by needs that keeps the written order wherever needs allow it. */
function orderJobs(jobs: ParsedJob[], p: Problems): ParsedJob[] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const edges = new Map<string, string[]>();
  for (const job of jobs) {
    const known: string[] = [];
    job.needs.forEach((need, i) => {
      if (byId.has(need)) known.push(need);
      else p.add(`${job.path}.needs[${i}]`, `job '${job.id}' needs '${need}', which is not a job of this workflow (jobs: ${[...byId.keys()].join(', ')})`);
    });
    edges.set(job.id, known);
  }
  reportCycles(jobs, edges, p);
  const placed = new Set<string>();
  const order: ParsedJob[] = [];
  for (;;) {
    const next = jobs.find((j) => !placed.has(j.id) && edges.get(j.id)!.every((n) => placed.has(n)));
    if (!next) break; // the rest is in, or behind, a cycle: reported
    placed.add(next.id);
    order.push(next);
  }
  return order;
}

/** Depth-first search naming each cycle once, e.g. `a -> b -> a`. */
function reportCycles(jobs: ParsedJob[], edges: Map<string, string[]>, p: Problems): void {
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string): void => {
    state.set(id, 'active');
    stack.push(id);
    for (const need of edges.get(id) ?? []) {
      if (state.get(need) === 'active') {
        const cycle = [...stack.slice(stack.indexOf(need)), need];
        const signature = [...new Set(cycle)].sort().join(',');
        if (!seen.has(signature)) {
          seen.add(signature);
          p.add(`jobs.${cycle[0]}.needs`, `the jobs' needs form a cycle: ${cycle.join(' -> ')}; remove one of these needs`);
        }
      } else if (!state.has(need)) visit(need);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const job of jobs) if (!state.has(job.id)) visit(job.id);
}
