/**
 * YAML text -> a validated workflow (GitHub Actions syntax, the part Kiln supports). No Docker, no I/O.
 *
 * The text is untrusted: its size is capped before parsing, nesting is pre-scanned before the YAML
 * parser sees it (the parser recurses), alias expansion is capped, and every problem found is collected
 * with its path and 1-based line so one answer tells the submitter everything to fix.
 * Expressions, matrices and runs-on are left raw here: the planner (plan.ts) checks and resolves them.
 */
import * as posix from 'node:path/posix';
import { isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Document } from 'yaml';
import { formatScalar, hasExpression } from './expressions';
import { WorkflowError, type BuiltinAction, type JobLimits, type Shell, type WorkflowProblem } from './model';

export const WORKFLOW_LIMITS = { maxBytes: 256 * 1024, maxAliases: 100, maxDepth: 64, maxExpandedBytes: 1024 * 1024 };

/** `defaults.run` of the workflow or of a job. */
export interface RunDefaults {
  shell: Shell | null;
  workingDirectory: string | null;
}

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
  timeoutMinutes: number | null; // null = the server default
  continueOnError: boolean;
  strategy: ParsedStrategy | null;
  limits: JobLimits;
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

/** The 1-based line of a path, or of its nearest ancestor that has one. */
export function lineOf(lines: Record<string, number>, path: string): number | null {
  for (let p = path; p; p = parentPath(p)) {
    if (Object.hasOwn(lines, p)) return lines[p];
  }
  return null;
}

function parentPath(path: string): string {
  const last = /(\.[^.[\]]*|\[\d+\])$/.exec(path);
  return last ? path.slice(0, last.index) : '';
}

/** The path used for problems about the whole text. */
export const ROOT_PATH = '(workflow)';

// =============================================================================================
// YAML loading: size, nesting, syntax, duplicate keys, aliases
// =============================================================================================

type Loaded = { ok: true; value: unknown; lines: Record<string, number>; problems: WorkflowProblem[] } | { ok: false; problems: WorkflowProblem[] };

function loadYaml(text: string): Loaded {
  const fail = (line: number | null, message: string, path = ROOT_PATH): Loaded => ({ ok: false, problems: [{ path, line, message }] });
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > WORKFLOW_LIMITS.maxBytes) {
    return fail(null, `the workflow is ${bytes} bytes, more than the ${WORKFLOW_LIMITS.maxBytes} allowed: make it smaller`);
  }
  const deep = prescanNesting(text);
  if (deep !== null) return fail(deep, tooDeep());

  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { uniqueKeys: true, lineCounter, prettyErrors: false });
  } catch (e) {
    return fail(null, `the YAML could not be read: ${(e as Error).message}`);
  }
  // An error at the very end (e.g. an unclosed quote) would point past the last line: clamp it.
  const lastLine = text.replace(/\n$/, '').split('\n').length;
  const line = (offset: number) => Math.min(lineCounter.linePos(offset).line, lastLine);
  // Duplicate keys are reported by our own walk below, with the key's full path.
  const yamlProblems = [...doc.errors, ...doc.warnings]
    .filter((e) => e.code !== 'DUPLICATE_KEY')
    .map((e) => ({ path: ROOT_PATH, line: line(e.pos[0]), message: yamlMessage(e.code, e.message) }));
  if (yamlProblems.length > 0) return { ok: false, problems: yamlProblems };
  if (doc.contents === null) return fail(null, "the workflow is empty: it needs at least 'jobs'");

  const walk = new AstWalk(line);
  walk.node(doc.contents, '', 0);
  // Past these, converting to plain objects would be unsafe (a prototype) or lossy (collection keys).
  if (walk.fatal) return { ok: false, problems: walk.problems };

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: WORKFLOW_LIMITS.maxAliases });
  } catch (e) {
    const message = (e as Error).message;
    if (/alias count/i.test(message)) return fail(null, `the YAML aliases expand too much (${message}): use fewer '*' aliases`);
    return fail(null, `invalid YAML: ${message}`); // e.g. an alias whose anchor is defined later or not at all
  }
  const deepPath = jsTooDeep(value, '', 0);
  if (deepPath !== null) return fail(lineOf(walk.lines, deepPath), tooDeep(), deepPath || ROOT_PATH);
  // The alias count is capped, but one alias can stand for a large value: cap what the aliases expand to.
  if (expandedSize(value, WORKFLOW_LIMITS.maxExpandedBytes) > WORKFLOW_LIMITS.maxExpandedBytes) {
    return fail(null, `the YAML aliases expand the workflow to more than ${WORKFLOW_LIMITS.maxExpandedBytes / 1024 / 1024} MiB: repeat less through '*' aliases`);
  }
  return { ok: true, value, lines: walk.lines, problems: walk.problems };
}

/** Size of the value with every alias expanded (strings and keys counted), stopping once past budget. */
function expandedSize(value: unknown, budget: number): number {
  let total = 0;
  const visit = (v: unknown): void => {
    if (total > budget) return;
    if (typeof v === 'string') total += v.length;
    else if (Array.isArray(v)) { total += 2; for (const x of v) { visit(x); if (total > budget) return; } }
    else if (v && typeof v === 'object') {
      total += 2;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) { total += k.length; visit(x); if (total > budget) return; }
    } else total += 8;
  };
  visit(value);
  return total;
}

function tooDeep(): string {
  return `the YAML is nested deeper than ${WORKFLOW_LIMITS.maxDepth} levels: flatten it`;
}

function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return "invalid YAML: the text holds several documents (separated by '---'): submit one workflow";
  return `invalid YAML: ${message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`;
}

/** The yaml Lexer's zero-width control tokens (see yaml's CST docs): not part of the source text. */
const CONTROL = { document: '\x02', flowEnd: '\x18', scalar: '\x1f' };

/**
 * An upper bound of the nesting before the YAML parser runs: the parser recurses per level, and a few
 * hundred kilobytes of `[[[[` or `- - - -` must not reach it. Runs the yaml package's Lexer (a flat state
 * machine, no recursion), so brackets inside quoted and block scalars do not count. Counts flow brackets
 * (net), and the width of each line's indentation plus `- `/`? `/`: ` indicators (every block level
 * takes at least one column). The bounds are generous (4x maxDepth, 16x in columns); the exact limit is
 * checked on the parsed nodes. Returns the line of the first excess, or null.
 */
function prescanNesting(text: string): number | null {
  const maxFlow = WORKFLOW_LIMITS.maxDepth * 4;
  const maxColumn = WORKFLOW_LIMITS.maxDepth * 16;
  let line = 1;
  let flow = 0;
  let prefix = 0; // width of the current line's indentation and indicators; -1 once past them
  let scalarNext = false;
  for (const token of new Lexer().lex(text)) {
    if (token === CONTROL.scalar) {
      scalarNext = true;
      prefix = -1;
      continue;
    }
    if (token === CONTROL.document || token === CONTROL.flowEnd) continue;
    if (scalarNext) scalarNext = false; // the scalar's source text: its brackets are not structure
    else if (token === '[' || token === '{') flow++;
    else if ((token === ']' || token === '}') && flow > 0) flow--;
    if (flow > maxFlow) return line;
    if (token === '\n' || token === '\r\n') prefix = 0;
    else if (prefix >= 0 && (/^[ \t]+$/.test(token) || token === '-' || token === '?' || token === ':')) prefix += token.length;
    else prefix = -1;
    if (prefix > maxColumn) return line;
    for (const c of token) if (c === '\n') line++;
  }
  return null;
}

/** Depth of the value after alias expansion (aliases can nest what the node walk saw as shallow). */
function jsTooDeep(value: unknown, path: string, depth: number): string | null {
  if (typeof value !== 'object' || value === null) return null;
  if (depth > WORKFLOW_LIMITS.maxDepth) return path;
  const children: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [`${path}[${i}]`, v])
    : Object.entries(value).map(([k, v]) => [childPath(path, k), v]);
  for (const [p, v] of children) {
    const found = jsTooDeep(v, p, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

function childPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * One pass over the YAML nodes: records the line of every key and list item under its problem path,
 * and reports duplicate keys, non-string keys, `__proto__` keys, NUL characters and excessive nesting.
 * Aliases are not followed (their target was walked where it is defined).
 */
class AstWalk {
  /** Path -> line; no prototype, so a key named `constructor` or `toString` is a path like any other. */
  readonly lines: Record<string, number> = Object.create(null) as Record<string, number>;
  readonly problems: WorkflowProblem[] = [];
  /** Set for nesting beyond the limit, non-string keys and `__proto__` keys. */
  fatal = false;

  constructor(private readonly line: (offset: number) => number) {}

  node(node: unknown, path: string, depth: number): void {
    if (this.fatal) return;
    if (depth > WORKFLOW_LIMITS.maxDepth) {
      this.fatal = true;
      this.problems.push({ path: path || ROOT_PATH, line: this.lineOfNode(node), message: tooDeep() });
      return;
    }
    if (isMap(node)) this.map(node.items, path, depth);
    else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const p = `${path}[${i}]`;
        this.record(p, this.lineOfNode(item));
        this.node(item, p, depth + 1);
      });
    } else if (isScalar(node)) this.checkString(node.value, path);
  }

  private map(items: { key: unknown; value: unknown }[], path: string, depth: number): void {
    const seen = new Map<string, number | null>();
    for (const pair of items) {
      const keyLine = this.lineOfNode(pair.key) ?? this.lineOfNode(pair.value);
      if (!isScalar(pair.key) || (pair.key.value !== null && typeof pair.key.value === 'object')) {
        this.fatal = true;
        this.problems.push({ path: path || ROOT_PATH, line: keyLine, message: 'mapping keys must be plain strings, not lists or mappings' });
        continue;
      }
      const key = formatScalar(pair.key.value);
      const p = childPath(path, key);
      this.record(p, keyLine); // before the checks, so that a problem with the key names the key's own line
      this.checkString(key, p);
      if (key === '__proto__') {
        this.fatal = true;
        this.problems.push({ path: p, line: keyLine, message: "the key '__proto__' is not allowed" });
        continue;
      }
      if (seen.has(key)) {
        const first = seen.get(key);
        this.problems.push({ path: p, line: keyLine, message: `duplicate key '${key}'${first ? ` (first at line ${first})` : ''}: each key may appear only once in a mapping` });
        continue;
      }
      seen.set(key, keyLine);
      this.record(p, keyLine);
      this.node(pair.value, p, depth + 1);
    }
  }

  private checkString(value: unknown, path: string): void {
    if (typeof value === 'string' && value.includes('\0')) {
      this.problems.push({ path: path || ROOT_PATH, line: lineOf(this.lines, path), message: 'contains a NUL character (\\0), which cannot be passed to a process: remove it' });
    }
  }

  private record(path: string, line: number | null): void {
    if (line !== null && this.lines[path] === undefined) this.lines[path] = line;
  }

  private lineOfNode(node: unknown): number | null {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? this.line(range[0]) : null;
  }
}

// =============================================================================================
// Validation of the plain value
// =============================================================================================

/** Collects problems; knows the line of every path. */
class Reader {
  readonly problems: WorkflowProblem[] = [];
  constructor(readonly lines: Record<string, number>) {}

  problem(path: string, message: string): void {
    this.problems.push({ path: path || ROOT_PATH, line: lineOf(this.lines, path), message });
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const ID_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHELLS: readonly Shell[] = ['bash', 'sh', 'python'];

const TOP_KEYS = ['name', 'run-name', 'on', 'permissions', 'concurrency', 'env', 'defaults', 'jobs'];
const TOP_UNSUPPORTED: Record<string, string> = {};

const JOB_KEYS = ['name', 'runs-on', 'needs', 'if', 'env', 'defaults', 'timeout-minutes', 'continue-on-error', 'strategy', 'steps', 'limits', 'permissions', 'concurrency', 'outputs'];
const JOB_UNSUPPORTED: Record<string, string> = {
  container: "'container' is not supported by Kiln: jobs run in the environment named by runs-on; pick one of the published environments",
  services: "'services' is not supported by Kiln: a job runs alone in an isolated container without network; start what you need from a step",
  uses: "reusable workflows ('uses' on a job) are not supported by Kiln: write the job's steps here instead",
  with: "'with' on a job belongs to reusable workflows, which are not supported by Kiln",
  secrets: "'secrets' on a job belongs to reusable workflows, which are not supported by Kiln",
  environment: "deployment 'environment' is not supported by Kiln: remove it",
  snapshot: "'snapshot' (custom images) is not supported by Kiln: remove it",
};

const STEP_KEYS = ['id', 'name', 'run', 'uses', 'with', 'shell', 'working-directory', 'env', 'if', 'continue-on-error', 'timeout-minutes'];
const LIMIT_KEYS = ['memory', 'cpus', 'pids', 'workspace'];
const UPLOAD_KEYS = ['name', 'path', 'if-no-files-found', 'retention-days', 'compression-level', 'overwrite', 'include-hidden-files'];

/** Refuses keys outside `allowed`: known GitHub keys Kiln does not support get their own message. */
function checkKeys(r: Reader, obj: Obj, path: string, allowed: string[], unsupported: Record<string, string>, where: string): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    r.problem(childPath(path, key), (Object.hasOwn(unsupported, key) ? unsupported[key] : undefined) ?? `unknown key '${key}' in ${where} (supported: ${allowed.join(', ')})`);
  }
}

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

/** A scalar as a string (numbers/booleans formatted as GitHub does); null when absent; a problem for lists/mappings. */
function optString(r: Reader, obj: Obj, key: string, path: string): string | null {
  const value = obj[key];
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') {
    r.problem(path, `'${key}' must be a string`);
    return null;
  }
  return formatScalar(value);
}

function readEnv(r: Reader, value: unknown, path: string): Record<string, string> {
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

function readDefaults(r: Reader, value: unknown, path: string): RunDefaults {
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

/** Shells the environments have; a custom template names a program and {0} (the script file), as on GitHub. */
const UNAVAILABLE_SHELLS = ['pwsh', 'powershell', 'cmd'];

function readShell(r: Reader, value: unknown, path: string): Shell | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' && (SHELLS as readonly string[]).includes(value)) return value as Shell;
  if (typeof value === 'string' && UNAVAILABLE_SHELLS.includes(value)) {
    r.problem(path, `the shell '${value}' is not in Kiln's environments: use one of ${SHELLS.join(', ')}, or a template such as 'perl {0}'`);
    return null;
  }
  if (typeof value === 'string' && /^[A-Za-z0-9_./-]+( +[^ {}]+)* *\{0\}( +[^ {}]+)*$/.test(value.trim()) && !hasExpression(value)) return value.trim() as Shell;
  r.problem(path, `unsupported shell '${formatScalar(value)}': use one of ${SHELLS.join(', ')}, or a custom template with {0} for the script file (e.g. 'perl {0}')`);
  return null;
}

/** Relative to /workspace; an absolute path must stay under /workspace or /tmp; `..` may not climb out. */
function readWorkingDirectory(r: Reader, value: unknown, path: string): string | null {
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

function readPositiveNumber(r: Reader, value: unknown, path: string, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  r.problem(path, `${what} must be a number greater than 0${typeof value === 'string' && hasExpression(value) ? ' (expressions are not supported here)' : ''}`);
  return null;
}

function readBoolean(r: Reader, value: unknown, path: string, key: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  r.problem(path, `'${key}' must be true or false`);
  return fallback;
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
  checkKeys(r, value, path, JOB_KEYS, JOB_UNSUPPORTED, `job '${id}'`);
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
    timeoutMinutes: readPositiveNumber(r, value['timeout-minutes'], childPath(path, 'timeout-minutes'), "'timeout-minutes'"),
    continueOnError: readBoolean(r, value['continue-on-error'], childPath(path, 'continue-on-error'), 'continue-on-error', false),
    strategy: readStrategy(r, value.strategy, childPath(path, 'strategy')),
    limits: readLimits(r, value.limits, childPath(path, 'limits')),
    outputs: readOutputs(r, value.outputs, childPath(path, 'outputs')),
    steps: reusable ? [] : readSteps(r, value.steps, childPath(path, 'steps')),
  };
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
      r.problem(path, `runs-on lists ${value.length} labels (${value.map((v) => formatScalar(v)).join(', ')}); a Kiln job runs in exactly one environment: ${RUNS_ON_HINT}`);
      return null;
    }
  }
  if (isObj(value)) {
    r.problem(path, `runs-on with 'group'/'labels' (runner groups) is not supported by Kiln: ${RUNS_ON_HINT}`);
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

/** `if:` accepts a string expression (with or without ${{ }}) or a YAML boolean/number literal. */
function readCondition(r: Reader, value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') {
    r.problem(path, "'if' must be an expression such as github.ref == 'refs/heads/main'");
    return null;
  }
  const cond = formatScalar(value);
  return cond.trim() === '' ? null : cond;
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

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512m" / "2g" / "1.5G" / "256MiB" / 1048576 -> bytes (binary units, as Docker reads them); null when invalid. */
export function parseSize(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : null;
  if (typeof value !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(value.trim());
  if (!m) return null;
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : null;
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

function readSteps(r: Reader, value: unknown, path: string): ParsedStep[] {
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

const ACTION_NOT_AVAILABLE = 'only actions/checkout, actions/upload-artifact, actions/download-artifact and actions/setup-python are built in; other actions would need the network';

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
  if (!builtin) r.problem(path, `the action '${uses}' is not available in Kiln: ${ACTION_NOT_AVAILABLE}`);
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
    if (isObj(value)) checkKeys(r, value, path, ['python-version', 'cache', 'architecture', 'check-latest', 'allow-prereleases', 'update-environment'], {}, 'the inputs of actions/setup-python');
    if (inputs['python-version-file'] !== undefined) r.problem(childPath(path, 'python-version-file'), "'python-version-file' is not supported: give python-version");
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
