/**
 * The field readers shared by a workflow, its jobs and its steps: each reads one value of the plain
 * (already loaded) YAML, collecting a problem with path and line for what it cannot accept.
 */
import * as posix from 'node:path/posix';
import { formatScalar, hasExpression } from './expressions';
import type { Shell, WorkflowProblem } from './model';
import { childPath, lineOf, ROOT_PATH } from './safe-yaml';

/** `defaults.run` of the workflow or of a job. */
export interface RunDefaults {
  shell: Shell | null;
  workingDirectory: string | null;
}

// =============================================================================================
// Validation of the plain value
// =============================================================================================

/** Collects problems; knows the line of every path. */
export class Reader {
  readonly problems: WorkflowProblem[] = [];
  constructor(readonly lines: Record<string, number>) {}

  problem(path: string, message: string): void {
    this.problems.push({ path: path || ROOT_PATH, line: lineOf(this.lines, path), message });
  }

  /** A valid job that cannot run on this server (see WorkflowProblem.notRunnable). */
  notRunnable(path: string, message: string): void {
    this.problems.push({ path: path || ROOT_PATH, line: lineOf(this.lines, path), message, notRunnable: true });
  }
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const ID_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHELLS: readonly Shell[] = ['bash', 'sh', 'python'];

/** Refuses keys outside `allowed`: known GitHub keys Kiln does not support get their own message. */
export function checkKeys(
  r: Reader,
  obj: Obj,
  path: string,
  allowed: string[],
  unsupported: Record<string, string>,
  where: string,
  /** Keys whose use makes the job not runnable here, rather than the file invalid. */
  unrunnable: string[] = [],
): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    (unrunnable.includes(key) ? r.notRunnable.bind(r) : r.problem.bind(r))(
      childPath(path, key),
      (Object.hasOwn(unsupported, key) ? unsupported[key] : undefined) ?? `unknown key '${key}' in ${where} (supported: ${allowed.join(', ')})`,
    );
  }
}

/** A scalar as a string (numbers/booleans formatted as GitHub does); null when absent; a problem for lists/mappings. */
export function optString(r: Reader, obj: Obj, key: string, path: string): string | null {
  const value = obj[key];
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') {
    r.problem(path, `'${key}' must be a string`);
    return null;
  }
  return formatScalar(value);
}

export function readEnv(r: Reader, value: unknown, path: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (value === undefined || value === null) return env;
  if (!isObj(value)) {
    r.problem(path, "'env' must be a mapping of variable names to values");
    return env;
  }
  for (const [name, v] of Object.entries(value)) {
    const p = childPath(path, name);
    if (!ENV_NAME_RE.test(name)) {
      r.problem(p, `invalid environment variable name '${name}': use letters, digits and '_', not starting with a digit`);
    } else if (/^(GITHUB_|RUNNER_)/i.test(name)) {
      r.problem(p, `the environment variable name '${name}' is reserved (GITHUB_* and RUNNER_* are set by the runner): choose another name`);
    } else if (typeof v === 'object' && v !== null) {
      r.problem(p, `the value of '${name}' must be a string, number or boolean, not a ${Array.isArray(v) ? 'list' : 'mapping'}`);
    } else {
      env[name] = formatScalar(v);
    }
  }
  return env;
}

export function readDefaults(r: Reader, value: unknown, path: string): RunDefaults {
  const defaults: RunDefaults = { shell: null, workingDirectory: null };
  if (value === undefined || value === null) return defaults;
  if (!isObj(value)) {
    r.problem(path, "'defaults' must be a mapping with 'run'");
    return defaults;
  }
  checkKeys(r, value, path, ['run'], {}, "'defaults'");
  const run = value.run;
  const runPath = childPath(path, 'run');
  if (run === undefined || run === null) return defaults;
  if (!isObj(run)) {
    r.problem(runPath, "'defaults.run' must be a mapping with 'shell' and/or 'working-directory'");
    return defaults;
  }
  checkKeys(r, run, runPath, ['shell', 'working-directory'], {}, "'defaults.run'");
  defaults.shell = readShell(r, run.shell, childPath(runPath, 'shell'));
  defaults.workingDirectory = readWorkingDirectory(r, run['working-directory'], childPath(runPath, 'working-directory'));
  return defaults;
}

/** Shells the environments have; a custom template names a program and {0} (the script file), as on GitHub. */
const UNAVAILABLE_SHELLS = ['pwsh', 'powershell', 'cmd'];

/**
 * Why a shell cannot be used (null when it can): checked on the written value at submission, and on
 * the value of a `${{ }}` shell when its step runs.
 */
export function shellProblem(value: string): string | null {
  if ((SHELLS as readonly string[]).includes(value)) return null;
  if (UNAVAILABLE_SHELLS.includes(value))
    return `the shell '${value}' is not in Kiln's environments: use one of ${SHELLS.join(', ')}, or a template such as 'perl {0}'`;
  if (/^[A-Za-z0-9_./-]+( +[^ {}]+)* *\{0\}( +[^ {}]+)*$/.test(value.trim()) && !hasExpression(value)) return null;
  return `unsupported shell '${value}': use one of ${SHELLS.join(', ')}, or a custom template with {0} for the script file (e.g. 'perl {0}')`;
}

/** A shell as written: one Kiln has, or a `${{ }}` expression (kept raw, evaluated when the step runs). */
export function readShell(r: Reader, value: unknown, path: string): Shell | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' && hasExpression(value)) return value as Shell;
  const problem = shellProblem(formatScalar(value));
  if (problem === null && typeof value === 'string') return value.trim() as Shell;
  r.problem(path, problem ?? "'shell' must be a string");
  return null;
}

/** Relative to /workspace; an absolute path must stay under /workspace or /tmp; `..` may not climb out. */
export function readWorkingDirectory(r: Reader, value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.trim() === '') {
    r.problem(path, "'working-directory' must be a non-empty path relative to the workspace");
    return null;
  }
  if (hasExpression(value)) return value; // checked when evaluated, at run time
  const norm = posix.normalize(value);
  const inside = value.startsWith('/')
    ? ['/workspace', '/tmp'].some((root) => norm === root || norm.startsWith(`${root}/`))
    : norm !== '..' && !norm.startsWith('../');
  if (!inside) {
    r.problem(path, `working-directory '${value}' is outside the workspace: use a path relative to the workspace (or under /workspace or /tmp)`);
    return null;
  }
  return value;
}

export function readPositiveNumber(r: Reader, value: unknown, path: string, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  r.problem(path, `${what} must be a number greater than 0${typeof value === 'string' && hasExpression(value) ? ' (expressions are not supported here)' : ''}`);
  return null;
}

export function readBoolean(r: Reader, value: unknown, path: string, key: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  r.problem(path, `'${key}' must be true or false`);
  return fallback;
}

/** `if:` accepts a string expression (with or without ${{ }}) or a YAML boolean/number literal. */
export function readCondition(r: Reader, value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') {
    r.problem(path, "'if' must be an expression such as github.ref == 'refs/heads/main'");
    return null;
  }
  const cond = formatScalar(value);
  return cond.trim() === '' ? null : cond;
}
