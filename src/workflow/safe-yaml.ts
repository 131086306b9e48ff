/**
 * The guarded YAML loader for workflow text (the parser and the push trigger use it). No Docker, no I/O.
 *
 * The text is untrusted: its size is capped before parsing, nesting is pre-scanned before the YAML
 * parser sees it (the parser recurses), alias expansion is capped, and every problem found is collected
 * with its path and 1-based line so one answer tells the submitter everything to fix.
 */
import { isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Document } from 'yaml';
import { formatScalar } from './expressions';
import type { WorkflowProblem } from './model';

export const WORKFLOW_LIMITS = { maxBytes: 256 * 1024, maxAliases: 100, maxDepth: 64, maxExpandedBytes: 1024 * 1024 };

/** The 1-based line of a path, or of its nearest ancestor that has one. */
export function lineOf(lines: Record<string, number>, path: string): number | null {
  for (let p = path; p; p = parentPath(p)) {
    if (Object.hasOwn(lines, p)) return lines[p];
  }
  return null;
}

export function parentPath(path: string): string {
  const last = /(\.[^.[\]]*|\[\d+\])$/.exec(path);
  return last ? path.slice(0, last.index) : '';
}

/** The path used for problems about the whole text. */
export const ROOT_PATH = '(workflow)';

// =============================================================================================
// YAML loading: size, nesting, syntax, duplicate keys, aliases
// =============================================================================================

/** The plain value with its line map, or the problems; `empty` when the text holds no document (nothing, or only comments). */
export type Loaded =
  { ok: true; value: unknown; lines: Record<string, number>; problems: WorkflowProblem[] } | { ok: false; problems: WorkflowProblem[]; empty?: true };

export function loadYaml(text: string): Loaded {
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
  if (doc.contents === null)
    return { ok: false, empty: true, problems: [{ path: ROOT_PATH, line: null, message: "the workflow is empty: it needs at least 'jobs'" }] };

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
    return fail(
      null,
      `the YAML aliases expand the workflow to more than ${WORKFLOW_LIMITS.maxExpandedBytes / 1024 / 1024} MiB: repeat less through '*' aliases`,
    );
  }
  return { ok: true, value, lines: walk.lines, problems: walk.problems };
}

/** Size of the value with every alias expanded (strings and keys counted), stopping once past budget. */
function expandedSize(value: unknown, budget: number): number {
  let total = 0;
  const visit = (v: unknown): void => {
    if (total > budget) return;
    if (typeof v === 'string') total += v.length;
    else if (Array.isArray(v)) {
      total += 2;
      for (const x of v) {
        visit(x);
        if (total > budget) return;
      }
    } else if (v && typeof v === 'object') {
      total += 2;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        total += k.length;
        visit(x);
        if (total > budget) return;
      }
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
    if (scalarNext)
      scalarNext = false; // the scalar's source text: its brackets are not structure
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

export function childPath(path: string, key: string): string {
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
        this.problems.push({
          path: p,
          line: keyLine,
          message: `duplicate key '${key}'${first ? ` (first at line ${first})` : ''}: each key may appear only once in a mapping`,
        });
        continue;
      }
      seen.set(key, keyLine);
      this.record(p, keyLine);
      this.node(pair.value, p, depth + 1);
    }
  }

  private checkString(value: unknown, path: string): void {
    if (typeof value === 'string' && value.includes('\0')) {
      this.problems.push({
        path: path || ROOT_PATH,
        line: lineOf(this.lines, path),
        message: 'contains a NUL character (\\0), which cannot be passed to a process: remove it',
      });
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
