/**
 * YAML text -> a validated workflow (GitHub Actions syntax, the part Kiln supports). No Docker, no I/O.
 *
 * The untrusted text is loaded by the guarded loader (safe-yaml.ts); the fields are read here (the
 * workflow and its jobs), in parse-fields.ts (readers shared by all levels) and parse-steps.ts (steps).
 * Every problem found is collected with its path and 1-based line so one answer tells the submitter
 * everything to fix.
 * Expressions, matrices and runs-on are left raw here: the planner (plan.ts) checks and resolves them.
 */
import { formatRule, parseRule } from '../common/egress-rules';
import { formatScalar, hasExpression } from './expressions';
import { WorkflowError, type JobLimits, type WorkflowProblem } from './model';
import {
  checkKeys,
  ID_RE,
  isObj,
  optString,
  readBoolean,
  readCondition,
  readDefaults,
  readEnv,
  readPositiveNumber,
  Reader,
  type RunDefaults,
} from './parse-fields';
import { readSteps, type ParsedStep } from './parse-steps';
import { childPath, loadYaml, parentPath } from './safe-yaml';
import { parseSize } from '../common/size';

export interface ParsedStrategy {
  /** A mapping (values may hold `${{ }}`), or one `${{ }}` string producing the whole matrix; null = no matrix. */
  matrix: Record<string, unknown> | string | null;
  failFast: boolean;
  maxParallel: number | null;
}

export interface ParsedJob {
  id: string;
  path: string; // `jobs.<id>`
  name: string | null; // raw, may hold ${{ matrix.* }}
  runsOn: string | null; // raw label, may hold ${{ }}; null only when it was refused
  needs: string[];
  if: string | null;
  env: Record<string, string>;
  defaults: RunDefaults;
  timeoutMinutes: number | string | null; // a number, or a raw ${{ }} expression; null = the server default
  continueOnError: boolean | string; // a boolean, or a raw ${{ }} expression
  strategy: ParsedStrategy | null;
  limits: JobLimits;
  egress: 'none' | string[] | undefined;
  outputs: Record<string, string>;
  steps: ParsedStep[];
}

export interface ParsedWorkflow {
  name: string | null;
  runName: string | null; // kept, not evaluated
  env: Record<string, string>;
  defaults: RunDefaults;
  jobs: ParsedJob[]; // as written
  /** Problem path (`jobs.test.steps[2].uses`) -> 1-based line, for every key and list item of the text. */
  lines: Record<string, number>;
}

/** Throws WorkflowError (model.ts) listing EVERY problem found, each with path, 1-based line, and a message saying what to fix. */
export function parseWorkflow(text: string): ParsedWorkflow {
  const { workflow, problems } = collectWorkflow(text);
  if (problems.length > 0 || !workflow) throw new WorkflowError(problems);
  return workflow;
}

/**
 * Parses without throwing: the problems, and the workflow as far as it could be read (null when the YAML
 * itself could not be read). The planner runs on a partial workflow too, so parse and plan problems
 * are reported together.
 */
export function collectWorkflow(text: string): { workflow: ParsedWorkflow | null; problems: WorkflowProblem[] } {
  const loaded = loadYaml(text);
  if (!loaded.ok) return { workflow: null, problems: loaded.problems };
  const reader = new Reader(loaded.lines);
  reader.problems.push(...loaded.problems);
  const workflow = readWorkflow(loaded.value, reader);
  return { workflow, problems: reader.problems };
}

const TOP_KEYS = ['name', 'run-name', 'on', 'permissions', 'concurrency', 'env', 'defaults', 'jobs'];
const TOP_UNSUPPORTED: Record<string, string> = {};

const JOB_KEYS = [
  'name',
  'runs-on',
  'needs',
  'if',
  'env',
  'defaults',
  'timeout-minutes',
  'continue-on-error',
  'strategy',
  'steps',
  'limits',
  'egress',
  'permissions',
  'concurrency',
  'outputs',
];
const JOB_UNSUPPORTED: Record<string, string> = {
  container: "'container' is not supported by Kiln: jobs run in the environment named by runs-on; pick one of the published environments",
  services: "'services' is not supported by Kiln: a job runs alone in an isolated container without network; start what you need from a step",
  uses: "reusable workflows ('uses' on a job) are not supported by Kiln: write the job's steps here instead",
  with: "'with' on a job belongs to reusable workflows, which are not supported by Kiln",
  secrets: "'secrets' on a job belongs to reusable workflows, which are not supported by Kiln",
  environment: "deployment 'environment' is not supported by Kiln: remove it",
  snapshot: "'snapshot' (custom images) is not supported by Kiln: remove it",
};
/** Keys that make a job not runnable here (the rest of the workflow still runs), rather than the file invalid. */
const JOB_UNRUNNABLE = ['container', 'services', 'uses', 'with', 'secrets', 'environment', 'snapshot'];
const LIMIT_KEYS = ['memory', 'cpus', 'pids', 'workspace'];

function readWorkflow(root: unknown, r: Reader): ParsedWorkflow {
  const wf: ParsedWorkflow = { name: null, runName: null, env: {}, defaults: { shell: null, workingDirectory: null }, jobs: [], lines: r.lines };
  if (!isObj(root)) {
    r.problem('', "the workflow must be a YAML mapping with at least 'jobs'");
    return wf;
  }
  checkKeys(r, root, '', TOP_KEYS, TOP_UNSUPPORTED, 'the workflow');
  wf.name = optString(r, root, 'name', 'name');
  wf.runName = optString(r, root, 'run-name', 'run-name');
  wf.env = readEnv(r, root.env, 'env');
  wf.defaults = readDefaults(r, root.defaults, 'defaults');
  wf.jobs = readJobs(r, root.jobs);
  return wf;
}

/** Job outputs: name -> a string (usually `${{ steps.<id>.outputs.<name> }}`), evaluated when the job ends. */
function readOutputs(r: Reader, value: unknown, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined || value === null) return out;
  if (!isObj(value)) {
    r.problem(path, "'outputs' must be a mapping of output names to values (usually ${{ steps.<id>.outputs.<name> }})");
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    if (!ID_RE.test(k)) r.problem(childPath(path, k), `invalid output name '${k}': letters, digits, '-' and '_'`);
    else if (typeof v === 'object' && v !== null) r.problem(childPath(path, k), `the output '${k}' must be a string`);
    else out[k] = formatScalar(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

function readJobs(r: Reader, value: unknown): ParsedJob[] {
  if (value === undefined || value === null) {
    r.problem(value === null ? 'jobs' : '', "the workflow needs 'jobs': a mapping of job ids to jobs, each with runs-on and steps");
    return [];
  }
  if (!isObj(value) || Object.keys(value).length === 0) {
    r.problem('jobs', "'jobs' must be a non-empty mapping of job ids to jobs");
    return [];
  }
  const jobs: ParsedJob[] = [];
  for (const [id, job] of Object.entries(value)) {
    const parsed = readJob(r, id, job);
    if (parsed) jobs.push(parsed);
  }
  return jobs;
}

function readJob(r: Reader, id: string, value: unknown): ParsedJob | null {
  const path = `jobs.${id}`;
  if (!ID_RE.test(id)) {
    r.problem(path, `invalid job id '${id}': start with a letter or '_' and use only letters, digits, '-' and '_'`);
  }
  if (!isObj(value)) {
    r.problem(path, `job '${id}' must be a mapping with runs-on and steps`);
    return null;
  }
  checkKeys(r, value, path, JOB_KEYS, JOB_UNSUPPORTED, `job '${id}'`, JOB_UNRUNNABLE);
  // A reusable-workflow call has no runs-on/steps of its own: its one problem is enough.
  const reusable = value.uses !== undefined;
  return {
    id,
    path,
    name: optString(r, value, 'name', childPath(path, 'name')),
    runsOn: readRunsOn(r, value['runs-on'], childPath(path, 'runs-on'), reusable),
    needs: readNeeds(r, value.needs, childPath(path, 'needs')),
    if: readCondition(r, value.if, childPath(path, 'if')),
    env: readEnv(r, value.env, childPath(path, 'env')),
    defaults: readDefaults(r, value.defaults, childPath(path, 'defaults')),
    timeoutMinutes: expressionOr(value['timeout-minutes'], () =>
      readPositiveNumber(r, value['timeout-minutes'], childPath(path, 'timeout-minutes'), "'timeout-minutes'"),
    ),
    continueOnError: expressionOr(value['continue-on-error'], () =>
      readBoolean(r, value['continue-on-error'], childPath(path, 'continue-on-error'), 'continue-on-error', false),
    ),
    strategy: readStrategy(r, value.strategy, childPath(path, 'strategy')),
    limits: readLimits(r, value.limits, childPath(path, 'limits')),
    egress: readEgress(r, value.egress, childPath(path, 'egress')),
    outputs: readOutputs(r, value.outputs, childPath(path, 'outputs')),
    steps: reusable ? [] : readSteps(r, value.steps, childPath(path, 'steps')),
  };
}

/** A `${{ }}` string as written (evaluated when the job is planned), else what the reader makes of the value. */
function expressionOr<T>(value: unknown, read: () => T): T | string {
  return typeof value === 'string' && hasExpression(value) ? value : read();
}

const RUNS_ON_HINT = 'give one environment name or label, e.g. runs-on: python-3.11';

function readRunsOn(r: Reader, value: unknown, path: string, reusable: boolean): string | null {
  if (value === undefined || value === null) {
    if (!reusable) r.problem(parentPath(path), `missing 'runs-on': ${RUNS_ON_HINT}`);
    return null;
  }
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  if (Array.isArray(value)) {
    if (value.length === 1 && typeof value[0] === 'string' && value[0].trim() !== '') return value[0].trim();
    if (value.length > 1) {
      r.notRunnable(
        path,
        `runs-on lists ${value.length} labels (${value.map((v) => formatScalar(v)).join(', ')}); a Kiln job runs in exactly one environment: ${RUNS_ON_HINT}`,
      );
      return null;
    }
  }
  if (isObj(value)) {
    r.notRunnable(path, `runs-on with 'group'/'labels' (runner groups) is not supported by Kiln: ${RUNS_ON_HINT}`);
    return null;
  }
  r.problem(path, `'runs-on' must be an environment name or label: ${RUNS_ON_HINT}`);
  return null;
}

function readNeeds(r: Reader, value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  const needs: string[] = [];
  list.forEach((item, i) => {
    if (typeof item !== 'string' || item === '') {
      r.problem(Array.isArray(value) ? `${path}[${i}]` : path, "'needs' must be a job id or a list of job ids");
    } else if (!needs.includes(item)) needs.push(item);
  });
  return needs;
}

function readStrategy(r: Reader, value: unknown, path: string): ParsedStrategy | null {
  if (value === undefined || value === null) return null;
  if (!isObj(value)) {
    r.problem(path, "'strategy' must be a mapping with 'matrix'");
    return null;
  }
  checkKeys(r, value, path, ['matrix', 'fail-fast', 'max-parallel'], {}, "'strategy'");
  const strategy: ParsedStrategy = {
    matrix: null,
    failFast: readBoolean(r, value['fail-fast'], childPath(path, 'fail-fast'), 'fail-fast', true),
    maxParallel: null,
  };
  const maxParallel = value['max-parallel'];
  if (maxParallel !== undefined && maxParallel !== null) {
    if (typeof maxParallel === 'number' && Number.isInteger(maxParallel) && maxParallel >= 1) strategy.maxParallel = maxParallel;
    else r.problem(childPath(path, 'max-parallel'), "'max-parallel' must be a whole number of at least 1");
  }
  const matrix = value.matrix;
  const matrixPath = childPath(path, 'matrix');
  if (isObj(matrix)) strategy.matrix = matrix;
  else if (typeof matrix === 'string' && hasExpression(matrix)) strategy.matrix = matrix;
  else if (matrix !== undefined && matrix !== null) {
    r.problem(matrixPath, "'matrix' must be a mapping of keys to lists of values (or one ${{ fromJSON(...) }} expression)");
  }
  return strategy;
}

/** `egress: none`, or a list of host:port rules (each checked here; against the server's list when planned). */
function readEgress(r: Reader, value: unknown, path: string): 'none' | string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === 'none') return 'none';
  const what = "'egress' must be none or a list of host:port entries such as pypi.org:443 or *.pythonhosted.org:443";
  if (!Array.isArray(value) || !value.length) {
    r.problem(path, what);
    return undefined;
  }
  const rules: string[] = [];
  value.forEach((v, i) => {
    const rule = typeof v === 'string' ? parseRule(v) : { error: what };
    if ('error' in rule) r.problem(`${path}[${i}]`, rule.error);
    else rules.push(formatRule(rule));
  });
  return rules;
}

function readLimits(r: Reader, value: unknown, path: string): JobLimits {
  const limits: JobLimits = {};
  if (value === undefined || value === null) return limits;
  if (!isObj(value)) {
    r.problem(path, "'limits' must be a mapping with memory, cpus, pids and/or workspace");
    return limits;
  }
  checkKeys(r, value, path, LIMIT_KEYS, {}, "'limits'");
  const size = (key: 'memory' | 'workspace') => {
    const v = value[key];
    if (v === undefined || v === null) return undefined;
    const bytes = parseSize(v);
    if (bytes === null) r.problem(childPath(path, key), `'${key}' must be a size such as 512m or 2g (k, m, g, t are powers of 1024; a bare number is bytes)`);
    return bytes ?? undefined;
  };
  const memory = size('memory');
  if (memory !== undefined) limits.memoryBytes = memory;
  const workspace = size('workspace');
  if (workspace !== undefined) limits.workspaceBytes = workspace;
  const cpus = value.cpus;
  if (cpus !== undefined && cpus !== null) {
    const n = typeof cpus === 'string' && /^\d+(\.\d+)?$/.test(cpus.trim()) ? Number(cpus) : cpus;
    if (typeof n === 'number' && Number.isFinite(n) && n > 0) limits.cpus = n;
    else r.problem(childPath(path, 'cpus'), "'cpus' must be a number greater than 0, e.g. 1.5");
  }
  const pids = value.pids;
  if (pids !== undefined && pids !== null) {
    if (typeof pids === 'number' && Number.isInteger(pids) && pids >= 1) limits.pids = pids;
    else r.problem(childPath(path, 'pids'), "'pids' must be a whole number of at least 1");
  }
  return limits;
}
