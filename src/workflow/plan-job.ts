/**
 * One workflow job -> its planned jobs: matrix expanded, runs-on evaluated and resolved, name,
 * continue-on-error and timeout-minutes evaluated per combination, defaults applied. A job whose
 * environment this server does not have is a planned job marked not runnable (unless the submission
 * is strict). Problems go to the run's Problems. No Docker, no I/O.
 */
import { grantFor, requestedRules } from '../common/egress-rules';
import { evaluateTemplate, formatScalar, hasExpression, interpolate, type ExprContext } from './expressions';
import { expandMatrix, matrixJobKey, matrixLabel, MatrixError, type MatrixCombination } from './matrix';
import type { PlannedJob, PlanOptions, StepSpec } from './model';
import type { ParsedJob, ParsedWorkflow } from './parse';
import type { ParsedStep } from './parse-steps';
import type { Problems } from './plan-problems';
import { SetupPythonPlanner, type PlacedEnvironment } from './plan-python';

/** The workflow-level parts a job planner reads (all of a ParsedWorkflow, or a deferred job's copy). */
export type WorkflowPart = Pick<ParsedWorkflow, 'env' | 'defaults'>;

// =============================================================================================
// Jobs: matrix, runs-on, defaults
// =============================================================================================

export class JobPlanner {
  private readonly resolved = new Map<string, PlacedEnvironment | { error: string }>();
  private readonly python: SetupPythonPlanner;
  private tooManyReported = false;

  constructor(
    private readonly wf: WorkflowPart,
    private readonly opts: PlanOptions,
    private readonly p: Problems,
  ) {
    this.python = new SetupPythonPlanner(opts, p, (name) => this.resolve(name));
  }

  /** The contexts of a job's head (if, matrix, runs-on, name): what is known of the run, and the needs once they are done. */
  private base(needs: Record<string, unknown>): ExprContext {
    const known = this.opts.context;
    return { github: known?.github ?? {}, inputs: known?.inputs ?? {}, vars: {}, needs };
  }

  /**
   * The planned jobs of one workflow job (several for a matrix); `count` = jobs planned so far in the
   * run; `needs` = the needs context when the job is planned late (its needs are done).
   */
  async plan(job: ParsedJob, count: number, needs: Record<string, unknown> | null = null): Promise<PlannedJob[]> {
    this.checkJob(job);
    const late = needs !== null;
    const remaining = this.opts.maxJobs - count;
    const base = this.base(needs ?? {});
    if (!job.strategy?.matrix) {
      if (remaining < 1) {
        this.tooMany(job.path);
        return [];
      }
      return this.one(job, null, { ...base, matrix: {}, strategy: {} });
    }
    const combos = await this.combinations(job, remaining, base, late);
    const planned: PlannedJob[] = [];
    const keys = new Set<string>();
    for (const [i, combo] of combos.entries()) {
      const strategy = {
        'fail-fast': job.strategy.failFast,
        'job-index': i,
        'job-total': combos.length,
        'max-parallel': job.strategy.maxParallel ?? combos.length,
      };
      const made = await this.one(job, combo, { ...base, matrix: combo, strategy });
      for (const m of made) {
        m.key = uniqueKey(m.key, keys);
        planned.push(m);
      }
    }
    return planned;
  }

  /** What can be checked of a job before its matrix and head are evaluated (also for a job planned late). */
  checkJob(job: ParsedJob): void {
    if (typeof job.timeoutMinutes === 'number') this.checkTimeout(job, job.timeoutMinutes);
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

  private checkTimeout(job: ParsedJob, minutes: number, forKey = ''): boolean {
    const max = this.opts.maxTimeoutMinutes;
    if (minutes <= max) return true;
    this.p.add(`${job.path}.timeout-minutes`, `'timeout-minutes' is ${minutes}${forKey}, more than the ${max} minutes allowed: lower it`);
    return false;
  }

  private tooMany(path: string): void {
    if (this.tooManyReported) return;
    this.tooManyReported = true;
    this.p.add(path, `the run has more than ${this.opts.maxJobs} jobs after matrix expansion, the most allowed: reduce the matrix or the jobs`);
  }

  /** Evaluates the matrix' expressions, then expands it; problems are reported and yield no combinations. */
  private async combinations(job: ParsedJob, remaining: number, ctx: ExprContext, late: boolean): Promise<MatrixCombination[]> {
    const path = `${job.path}.strategy.matrix`;
    if ([...this.p.badExpressions].some((bad) => bad === path || bad.startsWith(`${path}.`) || bad.startsWith(`${path}[`))) return [];
    const matrix = await this.resolveMatrix(job.strategy!.matrix!, path, ctx);
    if (!matrix) return [];
    // A matrix computed by another job may well be empty (nothing changed, nothing to test): it runs no job.
    if (late && isEmptyMatrix(matrix)) return [];
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
  private async resolveMatrix(raw: Record<string, unknown> | string, path: string, ctx: ExprContext): Promise<Record<string, unknown> | null> {
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
    const name = await this.displayName(job, key, combo, ctx);
    const found = await this.environment(job, ctx, combo);
    if (name === null) return [];
    if (found && 'notRunnable' in found) return [notRunnableJob(job, key, name, found.notRunnable, `${job.path}.runs-on`, this.p)];
    const continueOnError = await this.flag(job, 'continue-on-error', job.continueOnError, ctx, key);
    const timeoutMinutes = await this.timeout(job, ctx, key);
    if (!found || continueOnError === null || timeoutMinutes === null) return [];
    // setup-python's request that no environment can meet makes the job not runnable here, not the file invalid.
    const before = this.p.list.length;
    const placed = await this.python.place(job, found.environment, found.label, ctx, key);
    if (!placed) {
      const unmet = this.opts.strict ? [] : this.p.takeNotRunnable(before);
      if (!unmet.length || this.p.list.length > before) return [];
      return [notRunnableJob(job, key, name, unmet.map((u) => u.message).join('; '), unmet[0].path, this.p)];
    }
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
        timeoutMinutes,
        continueOnError,
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
  ): Promise<{ environment: PlacedEnvironment; label: string | null } | { notRunnable: string } | null> {
    const path = `${job.path}.runs-on`;
    if (job.runsOn === null || this.p.badExpressions.has(path)) return null;
    const label = await this.runsOnLabel(job.runsOn, path, ctx, combo);
    if (label === null) return null;
    // An own key only: a label such as `constructor` or `__proto__` is a name to look up, not a property of Object.
    const mapped = Object.hasOwn(this.opts.labelMap, label) ? this.opts.labelMap[label] : undefined;
    const byMap = typeof mapped === 'string' && mapped !== '';
    const resolved = this.resolve(byMap ? mapped : label);
    if ('error' in resolved) {
      if (!this.opts.strict) return { notRunnable: resolved.error };
      this.p.add(path, resolved.error);
      return null;
    }
    return { environment: { ...resolved }, label: byMap ? label : null };
  }

  /** A job's continue-on-error: a boolean, or an expression evaluated per combination (GitHub's truthiness of its text). */
  private async flag(job: ParsedJob, key: string, raw: boolean | string, ctx: ExprContext, jobKey: string): Promise<boolean | null> {
    if (typeof raw === 'boolean') return raw;
    const path = `${job.path}.${key}`;
    if (this.p.badExpressions.has(path)) return null;
    try {
      const value = await evaluateTemplate(raw, ctx);
      if (typeof value === 'boolean') return value;
      const text = formatScalar(value).trim();
      if (text === 'true' || text === 'false') return text === 'true';
      this.p.add(path, `${key} evaluated to ${JSON.stringify(value)} for ${jobKey}: it must give true or false`);
    } catch (e) {
      this.p.add(path, `${key} could not be evaluated for ${jobKey}: ${(e as Error).message}`);
    }
    return null;
  }

  /** timeout-minutes: a number, or an expression evaluated per combination; the server's default when absent. */
  private async timeout(job: ParsedJob, ctx: ExprContext, jobKey: string): Promise<number | null> {
    const raw = job.timeoutMinutes;
    if (raw === null) return this.opts.defaultTimeoutMinutes;
    if (typeof raw === 'number') return raw <= this.opts.maxTimeoutMinutes ? raw : null;
    const path = `${job.path}.timeout-minutes`;
    if (this.p.badExpressions.has(path)) return null;
    try {
      const value = Number(formatScalar(await evaluateTemplate(raw, ctx)));
      if (Number.isFinite(value) && value > 0) return this.checkTimeout(job, value, ` for ${jobKey}`) ? value : null;
      this.p.add(path, `timeout-minutes evaluated to no number greater than 0 for ${jobKey}`);
    } catch (e) {
      this.p.add(path, `timeout-minutes could not be evaluated for ${jobKey}: ${(e as Error).message}`);
    }
    return null;
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
      ...(s.name === null ? { defaultName: true } : {}),
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

/** No values in any vector and no include entries: `{}`, `{"include": []}`, `{"python": []}`. */
function isEmptyMatrix(matrix: Record<string, unknown>): boolean {
  return Object.entries(matrix).every(([key, value]) => key === 'exclude' || (Array.isArray(value) && value.length === 0) || value === null);
}

const INSERT_KEY = /^\$\{\{\s*insert\s*\}\}$/;
const WHOLE_EXPRESSION = /^\s*\$\{\{[\s\S]*\}\}\s*$/;

/**
 * Strings with `${{ }}` evaluated; lists and mappings walked (a whole-matrix expression is one string).
 * As in GitHub's templates, a list item that is one expression giving a list is spliced into its list,
 * and a `${{ insert }}` key merges the mapping its value gives into the mapping that holds it.
 */
export async function resolveNested(value: unknown, ctx: ExprContext): Promise<unknown> {
  if (typeof value === 'string') return hasExpression(value) ? evaluateTemplate(value, ctx) : value;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      const r = await resolveNested(v, ctx);
      if (typeof v === 'string' && WHOLE_EXPRESSION.test(v) && Array.isArray(r)) out.push(...(r as unknown[]));
      else out.push(r);
    }
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = await resolveNested(v, ctx);
      if (!INSERT_KEY.test(k)) out[k] = r;
      else if (typeof r === 'object' && r !== null && !Array.isArray(r)) Object.assign(out, r);
      else throw new Error(`\${{ insert }} must give a mapping to merge, not ${JSON.stringify(r)}`);
    }
    return out;
  }
  return value;
}

/** A job that cannot run on this server: kept in the run (shown skipped with the reason), with no environment and no steps. */
export function notRunnableJob(job: ParsedJob, key: string, name: string, reason: string, path: string, p: Problems): PlannedJob {
  return {
    ...verdictBase(job, key, name),
    verdict: { kind: 'not-runnable', reason: `not runnable here: ${reason}`, path, line: p.lineOf(path) },
  };
}

/** The fields of a job that will not run as planned (a verdict or a deferred placeholder). */
export function verdictBase(job: ParsedJob, key: string, name: string): PlannedJob {
  return {
    key,
    jobId: job.id,
    name,
    matrix: null,
    environment: { name: '', version: '', image: '' },
    needs: [...job.needs],
    if: job.if,
    env: {},
    timeoutMinutes: 0,
    continueOnError: false,
    strategy: null,
    limits: {},
    outputs: {},
    steps: [],
  };
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
