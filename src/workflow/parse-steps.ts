/** The `steps` of a job: run and uses steps, step ids, and the inputs of the built-in actions. */
import { formatScalar, hasExpression } from './expressions';
import type { BuiltinAction, Shell } from './model';
import {
  checkKeys,
  ID_RE,
  isObj,
  optString,
  readCondition,
  readEnv,
  readPositiveNumber,
  readShell,
  readWorkingDirectory,
  type Obj,
  type Reader,
} from './parse-fields';
import { childPath, parentPath } from './safe-yaml';

export interface ParsedStep {
  path: string; // e.g. `jobs.test.steps[2]`, for the planner's problems
  index: number; // 0-based position as written
  id: string | null;
  name: string | null; // explicit `name:` only (raw); the planner derives the default
  run: string | null; // raw script
  uses: BuiltinAction | null;
  usesRef: string | null; // `uses:` as written, e.g. `actions/checkout@v4`
  with: Record<string, string>; // raw; upload-artifact gets GitHub's defaults filled in
  shell: Shell | null; // as written on the step; defaults are applied by the planner
  workingDirectory: string | null;
  env: Record<string, string>;
  if: string | null;
  continueOnError: boolean | string;
  timeoutMinutes: number | null;
}

const STEP_KEYS = ['id', 'name', 'run', 'uses', 'with', 'shell', 'working-directory', 'env', 'if', 'continue-on-error', 'timeout-minutes'];
const UPLOAD_KEYS = ['name', 'path', 'if-no-files-found', 'retention-days', 'compression-level', 'overwrite', 'include-hidden-files'];

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

export function readSteps(r: Reader, value: unknown, path: string): ParsedStep[] {
  if (value === undefined || value === null) {
    r.problem(parentPath(path), "missing 'steps': a job needs a list of steps, each with 'run' or 'uses'");
    return [];
  }
  if (!Array.isArray(value) || value.length === 0) {
    r.problem(path, "'steps' must be a non-empty list of steps, each with 'run' or 'uses'");
    return [];
  }
  const steps: ParsedStep[] = [];
  const ids = new Map<string, string>();
  value.forEach((item, index) => {
    const step = readStep(r, item, `${path}[${index}]`, index);
    if (!step) return;
    if (step.id !== null) {
      const other = ids.get(step.id);
      if (other) r.problem(`${step.path}.id`, `duplicate step id '${step.id}' (also used by ${other}): step ids must be unique in a job`);
      else ids.set(step.id, step.path);
    }
    steps.push(step);
  });
  return steps;
}

function readStep(r: Reader, value: unknown, path: string, index: number): ParsedStep | null {
  if (!isObj(value)) {
    r.problem(path, "a step must be a mapping with 'run' or 'uses'");
    return null;
  }
  checkKeys(r, value, path, STEP_KEYS, {}, 'a step');
  const at = (key: string) => childPath(path, key);
  const run = optString(r, value, 'run', at('run'));
  const usesRef = optString(r, value, 'uses', at('uses'));
  if (run !== null && usesRef !== null) r.problem(path, "a step has either 'run' or 'uses', not both: split it into two steps");
  if (run === null && usesRef === null) r.problem(path, "a step needs 'run' (a script) or 'uses' (actions/checkout or actions/upload-artifact)");
  if (run !== null && run.trim() === '') r.problem(at('run'), "'run' is empty: give the script to run");
  const uses = run === null && usesRef !== null ? builtinAction(r, usesRef, at('uses')) : null;
  if ((run === null) !== (usesRef === null)) {
    onlyFor(r, value, path, run !== null ? ['with'] : ['shell', 'working-directory'], run !== null ? 'uses' : 'run');
  }
  const step: ParsedStep = {
    path,
    index,
    id: readStepId(r, value.id, at('id')),
    name: optString(r, value, 'name', at('name')),
    run,
    uses,
    usesRef: uses ? usesRef : null,
    with: uses ? readWith(r, uses, value.with, at('with')) : {},
    shell: readShell(r, value.shell, at('shell')),
    workingDirectory: readWorkingDirectory(r, value['working-directory'], at('working-directory')),
    env: readEnv(r, value.env, at('env')),
    if: readCondition(r, value.if, at('if')),
    continueOnError: readContinueOnError(r, value['continue-on-error'], at('continue-on-error')),
    timeoutMinutes: readPositiveNumber(r, value['timeout-minutes'], at('timeout-minutes'), "'timeout-minutes'"),
  };
  // A step with neither a script nor a built-in action was reported above; the rest was still checked.
  return run === null && uses === null ? null : step;
}

/** `with` belongs to `uses` steps; `shell` and `working-directory` to `run` steps (GitHub refuses the mix too). */
function onlyFor(r: Reader, step: Obj, path: string, keys: string[], kind: 'run' | 'uses'): void {
  for (const key of keys) {
    if (step[key] !== undefined) r.problem(childPath(path, key), `'${key}' only applies to '${kind}' steps: remove it`);
  }
}

function readStepId(r: Reader, value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' && ID_RE.test(value)) return value;
  r.problem(path, `invalid step id '${formatScalar(value)}': start with a letter or '_' and use only letters, digits, '-' and '_'`);
  return null;
}

function readContinueOnError(r: Reader, value: unknown, path: string): boolean | string {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && hasExpression(value)) return value;
  r.problem(path, "'continue-on-error' must be true, false or a ${{ }} expression");
  return false;
}

const ACTION_NOT_AVAILABLE =
  'only actions/checkout, actions/upload-artifact, actions/download-artifact and actions/setup-python are built in; other actions would need the network';

const BUILTINS: Record<string, BuiltinAction> = {
  'actions/checkout': 'checkout',
  'actions/upload-artifact': 'upload-artifact',
  'actions/download-artifact': 'download-artifact',
  'actions/setup-python': 'setup-python',
};

/** Maps `uses:` to a built-in action; any ref is accepted (the built-ins are Kiln's own, not downloaded). */
function builtinAction(r: Reader, uses: string, path: string): BuiltinAction | null {
  const m = /^([^@\s]+)@(\S+)$/.exec(uses.trim());
  const name = (m ? m[1] : uses.trim()).toLowerCase();
  const builtin = Object.hasOwn(BUILTINS, name) ? BUILTINS[name] : null;
  if (builtin && !m) {
    r.problem(path, `'${uses}' needs a version: write ${name}@v4`);
    return null;
  }
  if (!builtin) r.notRunnable(path, `the action '${uses}' is not available in Kiln: ${ACTION_NOT_AVAILABLE}`);
  return builtin;
}

/**
 * `with` inputs. checkout: every input is accepted and ignored (the source is already in the workspace).
 * upload-artifact: the inputs of actions/upload-artifact@v4; `path` is required, `name` defaults to
 * 'artifact' and `if-no-files-found` to 'warn' as GitHub does; literal values are range-checked.
 */
function readWith(r: Reader, uses: BuiltinAction, value: unknown, path: string): Record<string, string> {
  const inputs = readInputs(r, value, path);
  if (uses === 'checkout') return inputs;
  if (uses === 'setup-python') {
    if (isObj(value))
      checkKeys(
        r,
        value,
        path,
        ['python-version', 'python-version-file', 'cache', 'architecture', 'check-latest', 'allow-prereleases', 'update-environment'],
        {},
        'the inputs of actions/setup-python',
      );
    return inputs;
  }
  if (uses === 'download-artifact') {
    if (isObj(value)) checkKeys(r, value, path, ['name', 'path', 'pattern', 'merge-multiple'], {}, 'the inputs of actions/download-artifact');
    return inputs;
  }
  if (isObj(value)) checkKeys(r, value, path, UPLOAD_KEYS, {}, 'the inputs of actions/upload-artifact');
  if (!inputs.path?.trim()) {
    const where = value === undefined || value === null ? parentPath(path) : inputs.path === undefined ? path : childPath(path, 'path');
    r.problem(where, "actions/upload-artifact needs 'with.path': the files to upload (one glob per line)");
  }
  checkLiteral(r, inputs, 'retention-days', path, (v) => /^\d+$/.test(v) && +v >= 1 && +v <= 90, 'a whole number of days from 1 to 90');
  checkLiteral(r, inputs, 'if-no-files-found', path, (v) => ['warn', 'error', 'ignore'].includes(v), 'one of warn, error, ignore');
  checkLiteral(r, inputs, 'compression-level', path, (v) => /^\d$/.test(v), 'a whole number from 0 to 9');
  checkLiteral(r, inputs, 'overwrite', path, (v) => v === 'true' || v === 'false', 'true or false');
  checkLiteral(r, inputs, 'include-hidden-files', path, (v) => v === 'true' || v === 'false', 'true or false');
  return { name: 'artifact', 'if-no-files-found': 'warn', ...inputs };
}

function readInputs(r: Reader, value: unknown, path: string): Record<string, string> {
  const inputs: Record<string, string> = {};
  if (value === undefined || value === null) return inputs;
  if (!isObj(value)) {
    r.problem(path, "'with' must be a mapping of input names to values");
    return inputs;
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'object' && v !== null) r.problem(childPath(path, key), `the input '${key}' must be a string, number or boolean`);
    else inputs[key] = formatScalar(v);
  }
  return inputs;
}

/** Checks an input's literal value; a value with ${{ }} is only known at run time. */
function checkLiteral(r: Reader, inputs: Record<string, string>, key: string, path: string, ok: (v: string) => boolean, expected: string): void {
  const v = inputs[key];
  if (v === undefined || hasExpression(v) || ok(v.trim())) return;
  r.problem(childPath(path, key), `'${key}' must be ${expected}, not '${v}'`);
}
