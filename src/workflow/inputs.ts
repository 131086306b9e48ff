/**
 * `on.workflow_dispatch.inputs` of a workflow, and the values a submission gives them. Pure: the text is
 * read by the same guarded loader as the parser and the push trigger. The result is what GitHub's
 * `inputs` context holds (booleans as booleans, numbers as numbers) and what `github.event.inputs`
 * holds (every value as text, as GitHub keeps it there).
 */
import { lineOf } from './safe-yaml';
import { loadYaml } from './safe-yaml';
import type { WorkflowProblem } from './model';

export type InputType = 'string' | 'boolean' | 'number' | 'choice' | 'environment';
export type InputValue = string | number | boolean;

export interface DeclaredInput {
  name: string;
  type: InputType;
  /** The declared default as text (a YAML `true` or `3` read as `'true'`, `'3'`); null when none. */
  default: string | null;
  required: boolean;
  description: string | null;
  /** The options of a choice input. */
  options: string[];
}

export interface DispatchDeclaration {
  /** Whether `on` lists workflow_dispatch (string, list or mapping form). */
  dispatch: boolean;
  /** Whether `on` lists push. */
  push: boolean;
  inputs: DeclaredInput[];
  /** What is wrong in the declaration itself (a type Kiln does not know, a default not of its type). */
  problems: WorkflowProblem[];
}

/** GitHub's limit on the inputs of a workflow_dispatch (raised from 10 to 25). */
export const MAX_INPUTS = 25;
/** An input's name as GitHub allows it: a letter or `_` first, then letters, digits, `-` and `_`. */
export const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/;
const TYPES: InputType[] = ['string', 'boolean', 'number', 'choice', 'environment'];
const BASE = 'on.workflow_dispatch.inputs';

/** The workflow_dispatch declaration of a workflow; a text that does not load declares nothing (the parser says why). */
export function dispatchInputs(workflowText: string): DispatchDeclaration {
  const none: DispatchDeclaration = { dispatch: false, push: false, inputs: [], problems: [] };
  const loaded = loadYaml(workflowText);
  if (!loaded.ok || !isObj(loaded.value)) return none;
  const on = loaded.value.on;
  const lists = (event: string) => on === event || (Array.isArray(on) && on.includes(event)) || (isObj(on) && event in on);
  const decl: DispatchDeclaration = { ...none, dispatch: lists('workflow_dispatch'), push: lists('push') };
  const dispatch = isObj(on) ? on.workflow_dispatch : null;
  const raw = isObj(dispatch) ? dispatch.inputs : null;
  if (!isObj(raw)) return decl;
  const problem = (path: string, message: string) => decl.problems.push({ path, line: lineOf(loaded.lines, path), message });
  for (const [name, value] of Object.entries(raw)) {
    const path = `${BASE}.${name}`;
    if (!INPUT_NAME.test(name)) problem(path, 'an input name starts with a letter or _ and holds only letters, digits, - and _');
    const v = isObj(value) ? value : {};
    const type = (v.type ?? 'string') as InputType;
    if (!TYPES.includes(type)) {
      problem(`${path}.type`, `type must be one of ${TYPES.join(', ')}`);
      continue;
    }
    const options = Array.isArray(v.options) ? v.options.map((o) => text(o)) : [];
    if (type === 'choice' && !options.length) problem(`${path}.options`, 'a choice input lists its options');
    const input: DeclaredInput = {
      name,
      type,
      default: v.default === undefined || v.default === null ? null : text(v.default),
      required: v.required === true || v.required === 'true',
      description: typeof v.description === 'string' ? v.description : null,
      options,
    };
    if (input.default !== null) {
      const bad = typeProblem(input, input.default);
      if (bad) problem(`${path}.default`, `the default ${bad}`);
    }
    decl.inputs.push(input);
  }
  if (decl.inputs.length > MAX_INPUTS)
    problem(BASE, `a workflow_dispatch declares at most ${MAX_INPUTS} inputs (as GitHub allows); this one declares ${decl.inputs.length}`);
  return decl;
}

export interface ResolvedInputs {
  /** The `inputs` context: every declared input, typed. */
  inputs: Record<string, InputValue>;
  /** `github.event.inputs`: the same as text. */
  eventInputs: Record<string, string>;
  problems: WorkflowProblem[];
}

/**
 * The given values (name -> text) against the declaration: each declared input gets its given value,
 * else its default, else what GitHub gives an input left empty ('' ; false for a boolean). Unknown
 * names, a required input without value or default (in a dispatched run: a push needs no inputs), and
 * values not of their type are problems.
 */
export function resolveInputs(decl: DispatchDeclaration, given: Record<string, string>, dispatched = true): ResolvedInputs {
  const out: ResolvedInputs = { inputs: {}, eventInputs: {}, problems: [...decl.problems] };
  const declared = new Map(decl.inputs.map((i) => [i.name, i]));
  const names = decl.inputs.map((i) => i.name).join(', ') || 'none';
  for (const name of Object.keys(given)) {
    if (declared.has(name)) continue;
    out.problems.push({
      path: `inputs.${name}`,
      line: null,
      message: decl.dispatch
        ? `the workflow declares no input '${name}' (its inputs: ${names}); remove it or declare it under ${BASE}`
        : `the workflow is not triggered by workflow_dispatch, so it takes no inputs: remove '${name}', or add workflow_dispatch with its inputs to on:`,
    });
  }
  for (const input of decl.inputs) {
    const value = Object.hasOwn(given, input.name) ? given[input.name] : input.default;
    if (value === null) {
      if (input.required && dispatched) {
        out.problems.push({ path: `inputs.${input.name}`, line: null, message: `the input '${input.name}' is required and has no default: give it a value` });
      }
      out.inputs[input.name] = input.type === 'boolean' ? false : '';
      out.eventInputs[input.name] = input.type === 'boolean' ? 'false' : '';
      continue;
    }
    const bad = Object.hasOwn(given, input.name) ? typeProblem(input, value) : null;
    if (bad) {
      out.problems.push({ path: `inputs.${input.name}`, line: null, message: `the input '${input.name}' ${bad}` });
      continue;
    }
    out.inputs[input.name] = typed(input, value);
    out.eventInputs[input.name] = value;
  }
  return out;
}

/** What is wrong with a text as a value of the input's type, or null. */
function typeProblem(input: DeclaredInput, value: string): string | null {
  if (input.type === 'boolean' && value !== 'true' && value !== 'false') return `is a boolean: give true or false, not '${short(value)}'`;
  if (input.type === 'number' && !isNumber(value)) return `is a number: give a number, not '${short(value)}'`;
  if (input.type === 'choice' && !input.options.includes(value))
    return `is a choice: give one of ${input.options.map((o) => `'${short(o)}'`).join(', ')}, not '${short(value)}'`;
  return null;
}

function typed(input: DeclaredInput, value: string): InputValue {
  if (input.type === 'boolean') return value === 'true';
  if (input.type === 'number') return Number(value);
  return value;
}

function isNumber(value: string): boolean {
  return value.trim() !== '' && Number.isFinite(Number(value));
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

function short(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}
