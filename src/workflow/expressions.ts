/**
 * Helpers over GitHub's own expression engine (@actions/expressions): evaluation with plain JSON in and
 * out, `${{ }}` interpolation, `if:` conditions with GitHub's implicit `success() &&`, and a syntax check
 * used at submission time. No evaluator logic lives here: lexing, parsing, operators, coercions and the
 * built-in functions (contains, startsWith, format, join, toJSON, fromJSON, ...) are the library's.
 */
import type * as E from '@actions/expressions' with { 'resolution-mode': 'import' };
import { expressionsLib, type ExpressionsLib } from './expr-lib';

/** Plain JSON data per context: github, env, matrix, steps, job, runner, needs, inputs, secrets, strategy, vars. */
export interface ExprContext {
  [name: string]: unknown;
}

/** The job status as seen by the status check functions of an `if:` condition. */
export interface StatusFunctions {
  success(): boolean;
  failure(): boolean;
  cancelled(): boolean;
  always(): boolean;
  /** hashFiles(patterns...) -> hex, when the caller can answer it (the job runner). */
  hashFiles?(patterns: string[]): string;
}

/** Every context name Kiln knows; the place of an expression narrows this down (see plan-expressions.ts). */
export const ALL_CONTEXTS = ['github', 'env', 'matrix', 'steps', 'job', 'runner', 'needs', 'strategy', 'inputs', 'secrets', 'vars'] as const;

/** The status check functions, only meaningful in `if:` conditions. */
export const STATUS_FUNCTIONS = ['success', 'failure', 'cancelled', 'always'] as const;

/** Used by evaluate() when no status is given: a job that is running fine. */
const RUNNING_FINE: StatusFunctions = { success: () => true, failure: () => false, cancelled: () => false, always: () => true };

type Data = E.data.ExpressionData;
/** Structurally the library's FunctionDefinition (not exported from its index). */
interface FunctionDef {
  name: string;
  minArgs: number;
  maxArgs: number;
  call: (...args: Data[]) => Data;
}

// ---------------------------------------------------------------------------------------------
// Template scanning: where the `${{ }}` are in a string
// ---------------------------------------------------------------------------------------------

export type TemplatePart = { kind: 'text'; text: string } | { kind: 'expr'; expr: string };

/**
 * Splits a string into literal text and expression bodies. The closing `}}` is searched outside
 * single-quoted string literals, as GitHub does, so `${{ format('}}') }}` is one expression.
 * Throws when a `${{` is never closed (GitHub refuses that too instead of keeping it literally).
 */
export function splitTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let pos = 0;
  for (;;) {
    const open = template.indexOf('${{', pos);
    if (open < 0) break;
    const close = findClose(template, open + 3);
    if (close < 0) {
      throw new Error(`an expression starting at '${excerpt(template.slice(open))}' is not closed: add the closing '}}'`);
    }
    if (open > pos) parts.push({ kind: 'text', text: template.slice(pos, open) });
    parts.push({ kind: 'expr', expr: template.slice(open + 3, close) });
    pos = close + 2;
  }
  if (pos < template.length) parts.push({ kind: 'text', text: template.slice(pos) });
  return parts;
}

function findClose(s: string, from: number): number {
  let inString = false;
  for (let i = from; i < s.length; i++) {
    if (s[i] === "'")
      inString = !inString; // a doubled '' inside a literal toggles twice: still inside
    else if (!inString && s[i] === '}' && s[i + 1] === '}') return i;
  }
  return -1;
}

function excerpt(s: string): string {
  const line = s.split('\n')[0];
  return line.length > 40 ? `${line.slice(0, 40)}…` : line;
}

/** True when the string holds at least one `${{`. */
export function hasExpression(s: string): boolean {
  return s.includes('${{');
}

// ---------------------------------------------------------------------------------------------
// Parsing and evaluation through the library
// ---------------------------------------------------------------------------------------------

const STATUS_INFOS = STATUS_FUNCTIONS.map((name) => ({ name, minArgs: 0, maxArgs: 0 }));
// hashFiles parses (workflows using it are valid GitHub) but is refused when evaluated, for now.
const HASH_FILES_INFO = { name: 'hashFiles', minArgs: 1, maxArgs: 255 };

/** Parses one expression body; throws the library's error (message says what and where) on bad syntax. */
function parseBody(lib: ExpressionsLib, body: string, contexts: readonly string[], statusFunctions: boolean): E.Expr {
  const tokens = new lib.Lexer(body).lex().tokens;
  const functions = statusFunctions ? [...STATUS_INFOS, HASH_FILES_INFO] : [HASH_FILES_INFO];
  const tree = new lib.Parser(tokens, [...contexts], functions).parse();
  // The parser returns nothing for an empty body such as `${{ }}`.
  if (!tree) throw new Error('an expression was expected between ${{ and }}');
  return tree;
}

function functionMap(lib: ExpressionsLib, status: StatusFunctions): Map<string, FunctionDef> {
  const map = new Map<string, FunctionDef>();
  // The evaluator looks functions up by lower-case name.
  for (const name of STATUS_FUNCTIONS) {
    map.set(name, { name, minArgs: 0, maxArgs: 0, call: () => new lib.data.BooleanData(status[name]()) });
  }
  map.set('hashfiles', {
    ...HASH_FILES_INFO,
    call: (...args: Data[]) => {
      // The runner computes hashes in the sandbox beforehand (I/O cannot happen inside the evaluator).
      if (!status.hashFiles) throw new Error('hashFiles() is only available in steps');
      return new lib.data.StringData(status.hashFiles(args.map((a) => a.coerceString())));
    },
  });
  return map;
}

/** Plain JSON contexts -> the library's case-insensitive Dictionary; known but absent contexts are empty. */
function toDictionary(lib: ExpressionsLib, ctx: ExprContext): E.data.Dictionary {
  const pairs: { key: string; value: Data }[] = [];
  for (const [key, value] of Object.entries(ctx)) pairs.push({ key, value: toData(lib, value) });
  for (const name of ALL_CONTEXTS) {
    // The evaluator does not cope with a context that is missing altogether, so give an empty one.
    if (!(name in ctx)) pairs.push({ key: name, value: new lib.data.Dictionary() });
  }
  return new lib.data.Dictionary(...pairs);
}

function toData(lib: ExpressionsLib, value: unknown): Data {
  return JSON.parse(JSON.stringify(value ?? null), lib.data.reviver) as Data;
}

function toPlain(lib: ExpressionsLib, value: Data): unknown {
  return JSON.parse(JSON.stringify(value, lib.data.replacer) ?? 'null');
}

function contextNames(ctx: ExprContext): string[] {
  return [...new Set([...ALL_CONTEXTS, ...Object.keys(ctx)])];
}

async function evaluateData(expr: string, ctx: ExprContext, status: StatusFunctions): Promise<Data> {
  const lib = await expressionsLib();
  const tree = parseBody(lib, expr, contextNames(ctx), true);
  return new lib.Evaluator(tree, toDictionary(lib, ctx), functionMap(lib, status)).evaluate();
}

/** Evaluates one expression body (without ${{ }}), returning plain JSON (string/number/boolean/null/array/object). */
export async function evaluate(expr: string, ctx: ExprContext, status: StatusFunctions = RUNNING_FINE): Promise<unknown> {
  const lib = await expressionsLib();
  return toPlain(lib, await evaluateData(expr, ctx, status));
}

/** GitHub's string coercion: null -> '', booleans 'true'/'false', numbers as GitHub formats them, objects -> JSON (as toJSON prints). */
function coerceToString(lib: ExpressionsLib, value: Data): string {
  if (value.primitive) return value.coerceString();
  return JSON.stringify(value, lib.data.replacer, '  ');
}

/**
 * Replaces every ${{ expr }} in a string with its value coerced to string as GitHub does.
 * A string without ${{ }} is returned unchanged.
 */
export async function interpolate(template: string, ctx: ExprContext, status: StatusFunctions = RUNNING_FINE): Promise<string> {
  if (!hasExpression(template)) return template;
  const lib = await expressionsLib();
  let out = '';
  for (const part of splitTemplate(template)) {
    out += part.kind === 'text' ? part.text : coerceToString(lib, await evaluateData(part.expr, ctx, status));
  }
  return out;
}

/**
 * Like interpolate, but a string that is exactly one `${{ expr }}` yields the expression's value as it is
 * (an array, an object, a number...). This is how GitHub treats e.g. `matrix: ${{ fromJSON(...) }}`.
 */
export async function evaluateTemplate(template: string, ctx: ExprContext, status: StatusFunctions = RUNNING_FINE): Promise<unknown> {
  const parts = hasExpression(template) ? splitTemplate(template) : [];
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only?.kind === 'expr') return evaluate(only.expr, ctx, status);
  return interpolate(template, ctx, status);
}

// ---------------------------------------------------------------------------------------------
// if: conditions
// ---------------------------------------------------------------------------------------------

/**
 * The expression an `if:` stands for, as GitHub reads it: a bare expression; or a single `${{ x }}`
 * which is `x`; or text mixed with `${{ }}`, which GitHub turns into `format('text{0}...', x)` — a
 * string, so truthy when not empty (the well-known `if: ${{ a }} && b` trap behaves the same here).
 */
export function conditionBody(cond: string): string {
  const trimmed = cond.trim();
  if (!hasExpression(trimmed)) return trimmed;
  const parts = splitTemplate(trimmed);
  if (parts.length === 1 && parts[0].kind === 'expr') return parts[0].expr;
  let fmt = '';
  const args: string[] = [];
  for (const part of parts) {
    if (part.kind === 'text') fmt += part.text.replace(/[{}]/g, (c) => c + c);
    else fmt += `{${args.push(`(${part.expr})`) - 1}}`;
  }
  return `format('${fmt.replace(/'/g, "''")}', ${args.join(', ')})`;
}

/** Whether an expression calls one of success()/failure()/cancelled()/always() (found on the tokens, so string literals do not count). */
async function callsStatusFunction(body: string): Promise<boolean> {
  const lib = await expressionsLib();
  const tokens = new lib.Lexer(body).lex().tokens;
  const names = new Set<string>(STATUS_FUNCTIONS);
  return tokens.some((t, i) => names.has(t.lexeme.toLowerCase()) && tokens[i + 1]?.lexeme === '(' && tokens[i - 1]?.lexeme !== '.');
}

/** The full condition expression, with GitHub's implicit `success() &&` when no status function is called. */
export async function conditionExpression(cond: string | null): Promise<string> {
  const body = cond === null || cond.trim() === '' ? 'success()' : conditionBody(cond);
  return (await callsStatusFunction(body)) ? body : `success() && (${body})`;
}

/**
 * Evaluates an `if:` condition as GitHub does: with or without ${{ }}; when the condition calls none of
 * success()/failure()/cancelled()/always(), it is implicitly `success() && (cond)`; result is truthy per
 * GitHub's coercion (false, 0, NaN, '' and null are false; arrays and objects are true).
 */
export async function evaluateCondition(cond: string | null, ctx: ExprContext, status: StatusFunctions): Promise<boolean> {
  const lib = await expressionsLib();
  return truthy(lib, await evaluateData(await conditionExpression(cond), ctx, status));
}

/** GitHub's truthiness: false, 0, NaN, '' and null are false; everything else (arrays and objects too) is true. */
function truthy(lib: ExpressionsLib, d: Data): boolean {
  const { Kind } = lib.data;
  switch (d.kind) {
    case Kind.Null:
      return false;
    case Kind.Boolean:
      return (d as E.data.BooleanData).value;
    case Kind.Number: {
      const n = (d as E.data.NumberData).value;
      return n !== 0 && !Number.isNaN(n);
    }
    case Kind.String:
      return (d as E.data.StringData).value.length > 0;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Checking at submission time
// ---------------------------------------------------------------------------------------------

export interface CheckOptions {
  /** Allow success()/failure()/cancelled()/always() (GitHub allows them only in `if:`). Default true. */
  statusFunctions?: boolean;
}

/**
 * Parses (without evaluating) every ${{ }} in a string; returns syntax error messages (empty when fine).
 * Unknown context names are errors; allowed contexts are given.
 */
export async function checkExpressions(template: string, allowedContexts: string[], options: CheckOptions = {}): Promise<string[]> {
  if (!hasExpression(template)) return [];
  let parts: TemplatePart[];
  try {
    parts = splitTemplate(template);
  } catch (e) {
    return [(e as Error).message];
  }
  const errors: string[] = [];
  for (const part of parts) {
    if (part.kind !== 'expr') continue;
    const error = await checkBody(part.expr, allowedContexts, options.statusFunctions ?? true);
    if (error) errors.push(error);
  }
  return errors;
}

/** Checks an `if:` condition (with or without ${{ }}); status functions are allowed. */
export async function checkCondition(cond: string, allowedContexts: string[]): Promise<string[]> {
  let body: string;
  try {
    body = conditionBody(cond);
  } catch (e) {
    return [(e as Error).message];
  }
  // Errors quote the condition as written, not the format() GitHub would turn mixed text into.
  const error = await checkBody(body, allowedContexts, true, `if: ${cond.trim()}`);
  return error ? [error] : [];
}

async function checkBody(body: string, allowedContexts: string[], statusFunctions: boolean, shown = `'\${{ ${body.trim()} }}'`): Promise<string | null> {
  const lib = await expressionsLib();
  try {
    parseBody(lib, body, allowedContexts, statusFunctions);
    return null;
  } catch (e) {
    return `${(e as Error).message} in ${shown}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars as strings, without the engine (YAML values for env/with, matrix values in job names)
// ---------------------------------------------------------------------------------------------

/**
 * A plain value as GitHub prints it: null -> '', booleans 'true'/'false', numbers with at most 15
 * decimals and no trailing zeros (the library's NumberData.coerceString, mirrored because this is
 * needed synchronously), strings unchanged, arrays/objects as compact JSON.
 */
export function formatScalar(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return value === 0 ? '0' : (+value.toFixed(15)).toString();
  return JSON.stringify(value);
}
