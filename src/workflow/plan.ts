/**
 * Parsed workflow -> RunPlan: checks every `${{ }}` at submission (syntax and contexts, with path and
 * line), orders jobs by `needs`, expands matrices, evaluates and resolves `runs-on`, applies defaults.
 * Every problem of parse and plan is collected into one WorkflowError. No Docker, no I/O.
 */
import { grantFor, requestedRules } from '../common/egress-rules';
import { evaluateTemplate, formatScalar, hasExpression, interpolate, type ExprContext } from './expressions';
import { expandMatrix, matrixJobKey, matrixLabel, MatrixError, type MatrixCombination } from './matrix';
import { WorkflowError, type PlannedJob, type PlanOptions, type RunPlan, type StepSpec, type WorkflowProblem } from './model';
import { collectWorkflow, type ParsedJob, type ParsedWorkflow } from './parse';
import type { ParsedStep } from './parse-steps';
import { checkAllExpressions } from './plan-expressions';
import { Problems } from './plan-problems';
import { SetupPythonPlanner, type PlacedEnvironment } from './plan-python';

/** Validates expressions, expands matrices, resolves runs-on, orders by needs. Throws WorkflowError. */
export async function planWorkflow(wf: ParsedWorkflow, opts: PlanOptions): Promise<RunPlan> {
  return plan(wf, opts, []);
}

/** Convenience: parse + plan, reporting the problems of both at once. */
export async function planFromYaml(text: string, opts: PlanOptions): Promise<RunPlan> {
  const { workflow, problems } = collectWorkflow(text);
  if (!workflow) throw new WorkflowError(problems);
  return plan(workflow, opts, problems);
}

async function plan(wf: ParsedWorkflow, opts: PlanOptions, initial: WorkflowProblem[]): Promise<RunPlan> {
  const p = new Problems(wf.lines, initial);
  await checkAllExpressions(wf, p);
  const ordered = orderJobs(wf.jobs, p);
  const planner = new JobPlanner(wf, opts, p);
  const jobs: PlannedJob[] = [];
  for (const job of ordered) jobs.push(...(await planner.plan(job, jobs.length)));
  if (p.list.length > 0) throw new WorkflowError(p.sorted());
  return { workflowName: wf.name ?? 'workflow', jobs };
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

// =============================================================================================
// Jobs: matrix, runs-on, defaults
// =============================================================================================

class JobPlanner {
  private readonly resolved = new Map<string, PlacedEnvironment | { error: string }>();
  private readonly python: SetupPythonPlanner;
  private tooManyReported = false;

  constructor(
    private readonly wf: ParsedWorkflow,
    private readonly opts: PlanOptions,
    private readonly p: Problems,
  ) {
    this.python = new SetupPythonPlanner(opts, p, (name) => this.resolve(name));
  }

  /** The planned jobs of one workflow job (several for a matrix); `count` = jobs planned so far in the run. */
  async plan(job: ParsedJob, count: number): Promise<PlannedJob[]> {
    this.checkJob(job);
    const remaining = this.opts.maxJobs - count;
    if (!job.strategy?.matrix) {
      if (remaining < 1) {
        this.tooMany(job.path);
        return [];
      }
      return this.one(job, null, { github: {}, matrix: {}, strategy: {}, inputs: {}, vars: {}, needs: {} });
    }
    const combos = await this.combinations(job, remaining);
    const planned: PlannedJob[] = [];
    const keys = new Set<string>();
    for (const [i, combo] of combos.entries()) {
      const strategy = {
        'fail-fast': job.strategy.failFast,
        'job-index': i,
        'job-total': combos.length,
        'max-parallel': job.strategy.maxParallel ?? combos.length,
      };
      const made = await this.one(job, combo, { github: {}, matrix: combo, strategy, inputs: {}, vars: {}, needs: {} });
      for (const m of made) {
        m.key = uniqueKey(m.key, keys);
        planned.push(m);
      }
    }
    return planned;
  }

  private checkJob(job: ParsedJob): void {
    const max = this.opts.maxTimeoutMinutes;
    if (job.timeoutMinutes !== null && job.timeoutMinutes > max) {
      this.p.add(`${job.path}.timeout-minutes`, `'timeout-minutes' is ${job.timeoutMinutes}, more than the ${max} minutes allowed: lower it`);
    }
    const m = this.opts.maxLimits;
    const l = job.limits;
    if (m) {
      const at = (k: string) => `${job.path}.limits.${k}`;
      if (l.memoryBytes !== undefined && l.memoryBytes > m.memoryBytes)
        this.p.add(at('memory'), `memory ${l.memoryBytes} bytes is above the maximum ${m.memoryBytes} (KILN_JOB_MEMORY_MAX): ask for less`);
      if (l.memoryBytes !== undefined && l.memoryBytes < 64 * 1024 * 1024) this.p.add(at('memory'), 'memory must be at least 64m');
      if (l.cpus !== undefined && l.cpus > m.cpus) this.p.add(at('cpus'), `cpus ${l.cpus} is above the maximum ${m.cpus} (KILN_JOB_CPUS_MAX): ask for less`);
      if (l.pids !== undefined && l.pids > m.pids) this.p.add(at('pids'), `pids ${l.pids} is above the maximum ${m.pids} (KILN_JOB_PIDS_MAX): ask for less`);
      if (l.pids !== undefined && l.pids < 16) this.p.add(at('pids'), 'pids must be at least 16');
      if (l.workspaceBytes !== undefined && l.workspaceBytes > m.workspaceBytes)
        this.p.add(at('workspace'), `workspace ${l.workspaceBytes} bytes is above the maximum ${m.workspaceBytes} (KILN_JOB_WORKSPACE_MAX): ask for less`);
    }
    if (this.opts.egress && job.egress) {
      for (const problem of grantFor(this.opts.egress, requestedRules(job.egress)).problems) this.p.add(`${job.path}.egress`, problem);
    }
    if (job.steps.length > this.opts.maxStepsPerJob) {
      this.p.add(`${job.path}.steps`, `the job has ${job.steps.length} steps, more than the ${this.opts.maxStepsPerJob} allowed: split it into several jobs`);
    }
  }

  private tooMany(path: string): void {
    if (this.tooManyReported) return;
    this.tooManyReported = true;
    this.p.add(path, `the run has more than ${this.opts.maxJobs} jobs after matrix expansion, the most allowed: reduce the matrix or the jobs`);
  }

  /** Evaluates the matrix' expressions, then expands it; problems are reported and yield no combinations. */
  private async combinations(job: ParsedJob, remaining: number): Promise<MatrixCombination[]> {
    const path = `${job.path}.strategy.matrix`;
    if ([...this.p.badExpressions].some((bad) => bad === path || bad.startsWith(`${path}.`) || bad.startsWith(`${path}[`))) return [];
    const matrix = await this.resolveMatrix(job.strategy!.matrix!, path);
    if (!matrix) return [];
    try {
      return expandMatrix(matrix, Math.max(remaining, 0));
    } catch (e) {
      if (!(e instanceof MatrixError)) throw e;
      if (e.tooMany) this.tooMany(path);
      else this.p.add(e.key ? `${path}.${e.key}` : path, e.message);
      return [];
    }
  }

  /** `${{ }}` in the matrix (whole, or per value) evaluated with the contexts GitHub offers there. */
  private async resolveMatrix(raw: Record<string, unknown> | string, path: string): Promise<Record<string, unknown> | null> {
    const ctx: ExprContext = { github: {}, inputs: {}, vars: {}, needs: {} };
    try {
      const value = await resolveNested(raw, ctx);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
      this.p.add(path, `the matrix expression produced ${JSON.stringify(value)}, not a mapping of keys to lists`);
    } catch (e) {
      this.p.add(path, `the matrix could not be evaluated: ${(e as Error).message}`);
    }
    return null;
  }

  private async one(job: ParsedJob, combo: MatrixCombination | null, ctx: ExprContext): Promise<PlannedJob[]> {
    const key = combo ? matrixJobKey(job.id, combo) : job.id;
    const found = await this.environment(job, ctx, combo);
    const name = await this.displayName(job, key, combo, ctx);
    if (!found || name === null) return [];
    const placed = await this.python.place(job, found.environment, found.label, ctx, key);
    if (!placed) return [];
    const { environment, placement } = placed;
    return [
      {
        key,
        jobId: job.id,
        name,
        matrix: combo,
        environment: { name: environment.name, version: environment.version, image: environment.image },
        ...(placement ? { placement } : {}),
        needs: [...job.needs],
        if: job.if,
        env: { ...this.wf.env, ...job.env },
        timeoutMinutes: job.timeoutMinutes ?? this.opts.defaultTimeoutMinutes,
        continueOnError: job.continueOnError,
        strategy: combo && job.strategy ? { failFast: job.strategy.failFast, maxParallel: job.strategy.maxParallel } : null,
        limits: { ...job.limits },
        ...(job.egress ? { egress: job.egress === 'none' ? 'none' : [...job.egress] } : {}),
        outputs: { ...job.outputs },
        steps: job.steps.map((s) => this.step(job, s)),
      },
    ];
  }

  /**
   * The display name: the job's `name` evaluated per combination; without `name`, the key. As GitHub
   * does, a matrix job whose `name` holds no expression gets the matrix values appended.
   */
  private async displayName(job: ParsedJob, key: string, combo: MatrixCombination | null, ctx: ExprContext): Promise<string | null> {
    if (job.name === null) return key;
    if (!hasExpression(job.name)) return combo ? `${job.name} (${matrixLabel(combo)})` : job.name;
    if (this.p.badExpressions.has(`${job.path}.name`)) return null;
    try {
      return await interpolate(job.name, ctx);
    } catch (e) {
      this.p.add(`${job.path}.name`, `the name could not be evaluated${combo ? ` for ${key}` : ''}: ${(e as Error).message}`);
      return null;
    }
  }

  /**
   * runs-on evaluated for this combination, mapped through labelMap, resolved to a published environment;
   * `label` is the runs-on label when the label map chose the environment (null when runs-on named it).
   */
  private async environment(
    job: ParsedJob,
    ctx: ExprContext,
    combo: MatrixCombination | null,
  ): Promise<{ environment: PlacedEnvironment; label: string | null } | null> {
    const path = `${job.path}.runs-on`;
    if (job.runsOn === null || this.p.badExpressions.has(path)) return null;
    const label = await this.runsOnLabel(job.runsOn, path, ctx, combo);
    if (label === null) return null;
    // An own key only: a label such as `constructor` or `__proto__` is a name to look up, not a property of Object.
    const mapped = Object.hasOwn(this.opts.labelMap, label) ? this.opts.labelMap[label] : undefined;
    const byMap = typeof mapped === 'string' && mapped !== '';
    const resolved = this.resolve(byMap ? mapped : label);
    if ('error' in resolved) {
      this.p.add(path, resolved.error);
      return null;
    }
    return { environment: { ...resolved }, label: byMap ? label : null };
  }

  /** A published environment by name (cached for the run), or the resolver's error naming those there are. */
  private resolve(name: string): PlacedEnvironment | { error: string } {
    let resolved = this.resolved.get(name);
    if (!resolved) {
      resolved = this.opts.resolveEnvironment(name);
      this.resolved.set(name, resolved);
    }
    return resolved;
  }

  private async runsOnLabel(raw: string, path: string, ctx: ExprContext, combo: MatrixCombination | null): Promise<string | null> {
    if (!hasExpression(raw)) return raw;
    const forCombo = combo ? ` for matrix (${matrixLabel(combo)})` : '';
    let value: unknown;
    try {
      value = await evaluateTemplate(raw, ctx);
    } catch (e) {
      this.p.add(path, `runs-on could not be evaluated${forCombo}: ${(e as Error).message}`);
      return null;
    }
    // GitHub accepts a one-label list from an expression too.
    if (Array.isArray(value) && value.length === 1) value = value[0];
    const label = typeof value === 'string' || typeof value === 'number' ? formatScalar(value).trim() : '';
    if (label === '') {
      this.p.add(path, `runs-on evaluated to ${JSON.stringify(value)}${forCombo}: it must give one environment name or label`);
      return null;
    }
    return label;
  }

  private step(job: ParsedJob, s: ParsedStep): StepSpec {
    return {
      index: s.index,
      id: s.id,
      name: s.name ?? defaultStepName(s),
      run: s.run,
      uses: s.uses,
      with: { ...s.with },
      shell: s.shell ?? job.defaults.shell ?? this.wf.defaults.shell ?? 'bash',
      workingDirectory: s.workingDirectory ?? job.defaults.workingDirectory ?? this.wf.defaults.workingDirectory ?? null,
      env: { ...s.env },
      if: s.if,
      continueOnError: s.continueOnError,
      // GitHub allows any step timeout; Kiln caps it at the server's maximum instead of refusing.
      timeoutMinutes: s.timeoutMinutes === null ? null : Math.min(s.timeoutMinutes, this.opts.maxTimeoutMinutes),
    };
  }
}

/** Strings with `${{ }}` evaluated; lists and mappings walked (a whole-matrix expression is one string). */
async function resolveNested(value: unknown, ctx: ExprContext): Promise<unknown> {
  if (typeof value === 'string') return hasExpression(value) ? evaluateTemplate(value, ctx) : value;
  if (Array.isArray(value)) return Promise.all(value.map((v) => resolveNested(v, ctx)));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await resolveNested(v, ctx);
    return out;
  }
  return value;
}

/** As GitHub shows unnamed steps: `Run <first line of the script>` or `Run <uses>`. */
export function defaultStepName(step: Pick<ParsedStep, 'run' | 'usesRef'>): string {
  if (step.run !== null) {
    const first = step.run.split('\n').find((line) => line.trim() !== '') ?? '';
    return `Run ${first.trim()}`;
  }
  return `Run ${step.usesRef ?? ''}`;
}

/** Two combinations can print alike (e.g. a repeated include): the second gets ` #2`. */
function uniqueKey(key: string, used: Set<string>): string {
  let candidate = key;
  for (let n = 2; used.has(candidate); n++) candidate = `${key} #${n}`;
  used.add(candidate);
  return candidate;
}
