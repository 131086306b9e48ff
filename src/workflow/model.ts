import type { EgressRule } from '../common/egress-rules';
import type { EnvironmentPythons, PyPy } from './python-versions';
/**
 * The typed model of a workflow after parsing and planning. Parsing and planning never touch Docker;
 * the runner never parses YAML. Strings that may hold `${{ }}` expressions are kept raw here and are
 * evaluated by the runner at the moment GitHub would evaluate them (steps see `steps`, `job`, ...).
 */

/** bash, sh, python, or a custom template such as `perl {0}` (the script file replaces {0}). */
export type Shell = 'bash' | 'sh' | 'python' | (string & { readonly __template?: true });
/** Where a source keeps its workflows: `.kiln.yml` or `.github/workflows/<name>.yml`. */
export const WORKFLOW_FILE = /^(\.kiln\.ya?ml|\.github\/workflows\/[^/]+\.ya?ml)$/;

export type BuiltinAction = 'checkout' | 'upload-artifact' | 'download-artifact' | 'setup-python';

/** One step as written, validated. Exactly one of `run` / `uses` is set. */
export interface StepSpec {
  index: number; // 0-based position in the job
  id: string | null;
  name: string; // explicit name, or `Run <first line of run>` / `Run <uses>` as GitHub shows it
  /** True when name is the default (`Run ...`): shown as written, never evaluated (it would print the script's expressions' values). */
  defaultName?: boolean;
  run: string | null; // raw script, may hold ${{ }}
  uses: BuiltinAction | null; // the built-in actions; anything else is refused at parse time
  with: Record<string, string>; // raw values (may hold ${{ }})
  shell: Shell; // step > job defaults.run > workflow defaults.run > 'bash'
  workingDirectory: string | null; // raw, relative to /workspace (absolute refused unless under /workspace or /tmp)
  env: Record<string, string>; // raw
  if: string | null; // raw condition, without or with ${{ }}; null = success()
  continueOnError: boolean | string; // boolean, or a raw expression
  timeoutMinutes: number | null;
}

export interface MatrixStrategy {
  failFast: boolean; // default true
  maxParallel: number | null;
}

/** Resource requests of a job (`limits:` key, Kiln's own); the server clamps nothing silently: over its maximum is an error. */
export interface JobLimits {
  memoryBytes?: number;
  cpus?: number;
  pids?: number;
  workspaceBytes?: number;
}

/** One concrete job after matrix expansion. */
export interface PlannedJob {
  key: string; // unique in the run: jobId, or `jobId (v1, v2)` for matrix jobs as GitHub names them
  jobId: string; // the key under `jobs:`
  name: string; // display name (job `name:` evaluated with matrix, or key)
  matrix: Record<string, unknown> | null;
  environment: { name: string; version: string; image: string }; // resolved from runs-on
  /** Why the job runs on an environment other than its runs-on label maps to (actions/setup-python's request), for its log. */
  placement?: string | null;
  needs: string[]; // jobIds (not keys); every job key of a needed jobId must finish first
  if: string | null; // raw; null = success()
  env: Record<string, string>; // workflow env merged under job env (raw values)
  timeoutMinutes: number; // job timeout (default from server config)
  continueOnError: boolean;
  strategy: MatrixStrategy | null; // null when the job has no matrix
  limits: JobLimits;
  /** `egress:` (Kiln's own): `none`, or the host:port rules the job asks for (a subset of the server's); absent = what the server allows. */
  egress?: 'none' | string[];
  /** `outputs:` raw (name -> expression over steps), evaluated when the job ends. */
  outputs: Record<string, string>;
  steps: StepSpec[];
  /**
   * Set when the job will not run, decided at submission: `not-runnable` (it needs what this server
   * does not have: an action, an environment for its runs-on, a job container...) or `skipped` (its
   * `if:` is false from what is known at submission). The scheduler completes it as skipped with the
   * reason; jobs that need it are skipped as on GitHub. Such a job has no environment and no steps.
   */
  verdict?: { kind: 'not-runnable' | 'skipped'; reason: string; path: string; line: number | null };
  /**
   * Set when the job's matrix, runs-on, name, continue-on-error or timeout-minutes read the `needs`
   * context: it is planned when its needs are done (as GitHub evaluates it), from this template. Until
   * then the job is one placeholder with no environment and no steps.
   */
  deferred?: DeferredJob;
}

/** What planning a job later takes: the job as parsed and the workflow-level parts it inherits. */
export interface DeferredJob {
  job: unknown; // the ParsedJob (parse.ts), plain data
  workflow: { name: string | null; env: Record<string, string>; defaults: { shell: string | null; workingDirectory: string | null } };
  /** Lines of the job's part of the text, for the problems found when it is planned. */
  lines: Record<string, number>;
  /** The label map the submission planned with (the server's and its own `platform`). */
  labelMap: Record<string, string>;
  /** The submission was strict: a combination that cannot run here fails the job instead of being marked not runnable. */
  strict?: boolean;
}

export interface RunPlan {
  workflowName: string;
  jobs: PlannedJob[]; // in a stable order: topological by needs, then as written, matrix in expansion order
}

/** One problem in a submitted workflow, with the place it was found. */
export interface WorkflowProblem {
  path: string; // e.g. `jobs.test.steps[2].uses`
  line: number | null; // 1-based line in the YAML, when known
  message: string; // what is wrong and what to do
  /** The file is valid, but its job cannot run on this server (an action, a label, a container it does not have). */
  notRunnable?: boolean;
}

export class WorkflowError extends Error {
  constructor(readonly problems: WorkflowProblem[]) {
    super(problems.map((p) => `${p.path}${p.line ? ` (line ${p.line})` : ''}: ${p.message}`).join('\n'));
  }
}

/** Resolves `runs-on` values to a published environment; returns an error message naming the known ones when it cannot. */
export type EnvironmentResolver = (
  label: string,
) => { name: string; version: string; image: string; python?: string | null; pypy?: PyPy | null } | { error: string };

export interface PlanOptions {
  resolveEnvironment: EnvironmentResolver;
  labelMap: Record<string, string>; // e.g. { 'ubuntu-latest': 'python-3.11' }, applied before resolveEnvironment
  defaultTimeoutMinutes: number; // job timeout when not given
  maxTimeoutMinutes: number; // larger timeout-minutes is an error
  maxJobs: number; // after matrix expansion (e.g. 256)
  maxStepsPerJob: number; // e.g. 100
  /** The most a job may ask for with `limits:` (the server's KILN_JOB_*_MAX); absent = unchecked. */
  maxLimits?: { memoryBytes: number; cpus: number; pids: number; workspaceBytes: number };
  /** The Pythons of each published environment (latest version), to route and say where a setup-python version is. */
  pythons?: Record<string, EnvironmentPythons>;
  /**
   * A file of the submitted source (a path relative to its root), for what setup-python reads from the
   * workspace (`python-version-file`); null when the source has no such file (or it is over maxBytes).
   */
  readFile?: (path: string, maxBytes: number) => Promise<string | null>;
  /** The server's egress rules, which a job's `egress:` may narrow but never widen; absent = unchecked. */
  egress?: { allow: EgressRule[]; internal: EgressRule[] };
  /**
   * What is known of the run at submission, for the job-level expressions GitHub evaluates before a job
   * starts (`if:`, matrix, runs-on, name): the `github` context (event_name, ref, sha, repository, event)
   * and the `inputs` (declared defaults with the given values, typed). Absent = empty contexts.
   */
  context?: { github: Record<string, unknown>; inputs: Record<string, unknown> };
  /** Refuse the whole workflow for any job that cannot run here (Kiln's former behaviour); default: such jobs are marked not runnable and the rest runs. */
  strict?: boolean;
}
