/**
 * The planner's first pass: every `${{ }}` of the workflow checked at submission (syntax and
 * contexts), each mistake reported once with its path and line.
 */
import { ALL_CONTEXTS, checkCondition, checkExpressions } from './expressions';
import type { ParsedJob, ParsedWorkflow } from './parse';
import type { ParsedStep } from './parse-steps';
import type { Problems } from './plan-problems';

// =============================================================================================
// Expressions: where each may appear and which contexts it may use (as GitHub documents them)
// =============================================================================================

const CONTEXTS = {
  runName: ['github', 'inputs', 'vars'],
  workflowEnv: ['github', 'secrets', 'inputs', 'vars'],
  /** A job's runs-on, name, continue-on-error and timeout-minutes are evaluated per matrix combination. */
  jobHead: ['matrix', 'github', 'strategy', 'inputs', 'vars', 'needs'],
  /** A job's if: is evaluated before its matrix is expanded. */
  jobIf: ['github', 'needs', 'vars', 'inputs'],
  jobEnv: ['github', 'needs', 'strategy', 'matrix', 'vars', 'secrets', 'inputs'],
  /** A shell in defaults.run (of the workflow or a job), evaluated for each step it applies to. */
  defaultsRun: ['github', 'needs', 'strategy', 'matrix', 'env', 'vars', 'inputs'],
  matrix: ['github', 'needs', 'vars', 'inputs'],
  step: [...ALL_CONTEXTS],
  /** GitHub refuses secrets in if: (put them in env and test env instead). */
  stepIf: ALL_CONTEXTS.filter((c) => c !== 'secrets'),
} satisfies Record<string, string[]>;

interface Field {
  path: string;
  text: string;
  contexts: string[];
  condition?: boolean;
}

export async function checkAllExpressions(wf: ParsedWorkflow, p: Problems): Promise<void> {
  for (const field of expressionFields(wf)) {
    const errors = field.condition
      ? await checkCondition(field.text, field.contexts)
      : await checkExpressions(field.text, field.contexts, { statusFunctions: false });
    for (const error of errors) {
      p.badExpressions.add(field.path);
      const hint = !/Unrecognized named-value/.test(error)
        ? ''
        : field.condition && /'secrets'/.test(error)
          ? '; secrets cannot be used in if: conditions: put the secret in env and test env.NAME instead'
          : ` (available here: ${field.contexts.join(', ')})`;
      p.add(field.path, `invalid expression: ${error}${hint}`);
    }
  }
}

/** Every string field that may hold `${{ }}`, with the contexts allowed there. */
function* expressionFields(wf: ParsedWorkflow): Generator<Field> {
  if (wf.runName !== null) yield { path: 'run-name', text: wf.runName, contexts: CONTEXTS.runName };
  yield* mapFields(wf.env, 'env', CONTEXTS.workflowEnv);
  if (wf.defaults.workingDirectory) yield { path: 'defaults.run.working-directory', text: wf.defaults.workingDirectory, contexts: CONTEXTS.step };
  if (wf.defaults.shell) yield { path: 'defaults.run.shell', text: wf.defaults.shell, contexts: CONTEXTS.defaultsRun };
  for (const job of wf.jobs) yield* jobFields(job);
}

function* jobFields(job: ParsedJob): Generator<Field> {
  const at = (key: string) => `${job.path}.${key}`;
  if (job.name !== null) yield { path: at('name'), text: job.name, contexts: CONTEXTS.jobHead };
  if (job.runsOn !== null) yield { path: at('runs-on'), text: job.runsOn, contexts: CONTEXTS.jobHead };
  if (job.if !== null) yield { path: at('if'), text: job.if, contexts: CONTEXTS.jobIf, condition: true };
  if (typeof job.continueOnError === 'string') yield { path: at('continue-on-error'), text: job.continueOnError, contexts: CONTEXTS.jobHead };
  if (typeof job.timeoutMinutes === 'string') yield { path: at('timeout-minutes'), text: job.timeoutMinutes, contexts: CONTEXTS.jobHead };
  yield* mapFields(job.env, at('env'), CONTEXTS.jobEnv);
  if (job.defaults.workingDirectory) yield { path: at('defaults.run.working-directory'), text: job.defaults.workingDirectory, contexts: CONTEXTS.step };
  if (job.defaults.shell) yield { path: at('defaults.run.shell'), text: job.defaults.shell, contexts: CONTEXTS.defaultsRun };
  const matrix = job.strategy?.matrix;
  if (typeof matrix === 'string') yield { path: at('strategy.matrix'), text: matrix, contexts: CONTEXTS.matrix };
  else if (matrix) yield* nestedStrings(matrix, at('strategy.matrix'), CONTEXTS.matrix);
  for (const step of job.steps) yield* stepFields(step);
}

function* stepFields(step: ParsedStep): Generator<Field> {
  const at = (key: string) => `${step.path}.${key}`;
  const all = CONTEXTS.step;
  if (step.name !== null) yield { path: at('name'), text: step.name, contexts: all };
  if (step.run !== null) yield { path: at('run'), text: step.run, contexts: all };
  if (step.shell !== null) yield { path: at('shell'), text: step.shell, contexts: all };
  yield* mapFields(step.with, at('with'), all);
  yield* mapFields(step.env, at('env'), all);
  if (step.workingDirectory !== null) yield { path: at('working-directory'), text: step.workingDirectory, contexts: all };
  if (step.if !== null) yield { path: at('if'), text: step.if, contexts: CONTEXTS.stepIf, condition: true };
  if (typeof step.continueOnError === 'string') yield { path: at('continue-on-error'), text: step.continueOnError, contexts: all };
}

function* mapFields(map: Record<string, string>, path: string, contexts: string[]): Generator<Field> {
  for (const [key, text] of Object.entries(map)) yield { path: `${path}.${key}`, text, contexts };
}

function* nestedStrings(value: unknown, path: string, contexts: string[]): Generator<Field> {
  if (typeof value === 'string') yield { path, text: value, contexts };
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* nestedStrings(value[i], `${path}[${i}]`, contexts);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value)) yield* nestedStrings(v, `${path}.${key}`, contexts);
  }
}
