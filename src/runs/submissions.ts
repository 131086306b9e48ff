import { BadRequestException } from '@nestjs/common';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { stringify } from 'yaml';
import { ArchiveError } from '../sources/tar-safety';
import { readFilesFromTar } from '../sources/tar-sanitize';
import { planFromYaml } from '../workflow/plan';
import { PlanOptions, RunPlan, WORKFLOW_FILE, WorkflowError } from '../workflow/model';
import { dispatchInputs, INPUT_NAME, MAX_INPUTS, resolveInputs } from '../workflow/inputs';
import type { RunContext } from '../execution/job';
import { sourceHttpException } from './source-status';
import { planContext } from './planning-options';

/** What a submission becomes before it is recorded: its workflow found and planned, the quick form as a workflow, its ref and repository names. */

export const WORKFLOW_MAX_BYTES = 256 * 1024;
/** All job specifications of one run, serialized (what is recorded and sent to the worker). */
const PLAN_MAX_BYTES = 8 * 1024 * 1024;

/** How a submission narrows or maps the workflow: one job (and what it needs), label overrides. */
export interface PlanChoices {
  job?: string;
  platform?: Record<string, string>;
  /** Refuse the workflow for any job that cannot run here, instead of marking such jobs not runnable. */
  strict?: boolean;
  /** workflow_dispatch inputs as given (name -> text); typed and completed with the declared defaults when planned. */
  inputs?: Record<string, string>;
}
export interface CommandSubmission {
  environment?: string;
  command: string;
  files?: Record<string, string>;
  shell?: 'bash' | 'sh' | 'python';
  timeoutMinutes?: number;
}

/** The workflow file of a source: the one asked for, else .kiln.*, else the only one there is. */
export async function findWorkflow(tarPath: string, wanted?: string): Promise<{ text: string; file: string }> {
  let found: Map<string, Buffer>;
  try {
    found = await readFilesFromTar(tarPath, (p) => WORKFLOW_FILE.test(p), WORKFLOW_MAX_BYTES);
  } catch (e) {
    if (e instanceof ArchiveError) throw sourceHttpException(e);
    throw e;
  }
  const names = [...found.keys()].sort();
  const pick = wanted ?? names.find((n) => n.startsWith('.kiln.')) ?? (names.length === 1 ? names[0] : undefined);
  if (wanted && !found.has(wanted))
    throw new BadRequestException(`workflowFile: ${wanted} is not in the source; it has: ${names.join(', ') || 'no workflow files'}`);
  if (!pick) {
    throw new BadRequestException(
      names.length
        ? `the source has ${names.length} workflows (${names.join(', ')}): choose one with workflowFile, or send a workflow`
        : 'no workflow: the source has no .kiln.yml or .github/workflows/*.yml; add one, or send the workflow with the submission',
    );
  }
  return { text: found.get(pick)!.toString('utf8'), file: pick };
}

/** One regular file of a sanitized source, as text; null when it is not there or is over maxBytes. */
export async function readSourceFile(tarPath: string, path: string, maxBytes: number): Promise<string | null> {
  try {
    return (await readFilesFromTar(tarPath, (p) => p === path, maxBytes)).get(path)?.toString('utf8') ?? null;
  } catch (e) {
    if (e instanceof ArchiveError && e.code === 'too-large') return null;
    throw e;
  }
}

/** The plan of a workflow (400 naming its problems), its recorded job specs capped in all, narrowed to one job if asked. */
export async function planWorkflow(text: string, file: string | null, opts: PlanOptions, job?: string): Promise<RunPlan> {
  let plan: RunPlan;
  try {
    plan = await planFromYaml(text, opts);
  } catch (e) {
    if (e instanceof WorkflowError) throw refusal(`the workflow${file ? ` ${file}` : ''} is not valid`, e);
    throw e;
  }
  // Aliases can make a small file plan huge (one 240 KiB string referenced by every env key of every
  // matrix job): the recorded job specs are capped in all, checked as they are serialized.
  let specBytes = 0;
  for (const j of plan.jobs) {
    specBytes += JSON.stringify(j).length;
    if (specBytes > PLAN_MAX_BYTES) {
      throw new BadRequestException(
        `the workflow${file ? ` ${file}` : ''} plans ${plan.jobs.length} job(s) whose specifications exceed ${PLAN_MAX_BYTES / 1024 / 1024} MiB in all (YAML aliases and matrices multiply env and steps): make env values smaller or use fewer matrix jobs`,
      );
    }
  }
  return job ? onlyJob(plan, job) : plan;
}

/** A 400 that names each problem, with the problems as data. */
function refusal(intro: string, e: WorkflowError): BadRequestException {
  return new BadRequestException({ statusCode: 400, error: 'Bad Request', message: `${intro}:\n${e.message}`, problems: e.problems });
}

/**
 * Which event a submission is, and its inputs. It is a workflow_dispatch when it gives inputs (even
 * none, to a workflow that declares workflow_dispatch), or when a push-like submission (CLI, API,
 * page) runs a workflow whose `on` lists workflow_dispatch and not push: on GitHub that workflow could
 * only have been started by hand. Otherwise the event stays what the channel said (push, or the
 * quick form's workflow_dispatch). Declared defaults fill `inputs` whatever the event. Returns the
 * run's context (typed inputs, event payload) and the planner's view of it; 400 naming a bad input.
 */
export function dispatchContext(
  text: string,
  file: string | null,
  context: RunContext,
  given: Record<string, string> | undefined,
): { context: RunContext; plan: NonNullable<PlanOptions['context']> } {
  const decl = dispatchInputs(text);
  const dispatched =
    (given !== undefined && (decl.dispatch || Object.keys(given).length > 0)) ||
    (context.event === 'push' && context.eventPayload === undefined && decl.dispatch && !decl.push);
  const resolved = resolveInputs(decl, given ?? {}, dispatched);
  if (resolved.problems.length) throw refusal(`the inputs do not fit the workflow${file ? ` ${file}` : ''}`, new WorkflowError(resolved.problems));
  const run: RunContext = { ...context, inputs: resolved.inputs };
  if (dispatched) run.event = 'workflow_dispatch';
  if (dispatched && run.eventPayload === undefined) run.eventPayload = { inputs: resolved.eventInputs, ref: run.ref, workflow: file ?? '' };
  return { context: run, plan: planContext(run) };
}

/** Most bytes of one input's value (a workflow_dispatch input is a form field on GitHub). */
export const INPUT_MAX_BYTES = 64 * 1024;

/** `inputs` of a submission (an object of name -> string, number or boolean), as text; 400 naming what is wrong. */
export function checkInputs(raw: unknown): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new BadRequestException('inputs must be an object of input name -> value');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_INPUTS)
    throw new BadRequestException(`inputs: at most ${MAX_INPUTS} (as GitHub allows a workflow_dispatch); ${entries.length} given`);
  const out: [string, string][] = [];
  for (const [k, v] of entries) {
    if (!INPUT_NAME.test(k)) throw new BadRequestException(`inputs: '${k.slice(0, 100)}' is not an input name (a letter or _, then letters, digits, - and _)`);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      throw new BadRequestException(`inputs.${k}: give a string, number or boolean`);
    const text = String(v);
    if (Buffer.byteLength(text) > INPUT_MAX_BYTES) throw new BadRequestException(`inputs.${k}: at most ${INPUT_MAX_BYTES / 1024} KiB`);
    out.push([k, text]);
  }
  // As own properties whatever the name (a `__proto__` is then an unknown input, not a prototype).
  return Object.fromEntries(out);
}

/** The multipart `inputs` field: the same object as JSON text. */
export function parseInputsField(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestException('inputs: the multipart field holds a JSON object of input name -> value, e.g. {"name":"x"}');
  }
  return checkInputs(value);
}

/** The quick form as a one-job workflow. */
export function commandWorkflow(s: CommandSubmission & { environment: string }): string {
  // The command is data, not a template: `${{` in it is written so that it reaches the shell unchanged.
  const run = s.command.replace(/\$\{\{/g, "${{ '${{' }}");
  return stringify({
    name: 'command',
    jobs: {
      command: {
        'runs-on': s.environment,
        ...(s.timeoutMinutes ? { 'timeout-minutes': s.timeoutMinutes } : {}),
        steps: [{ name: 'command', shell: s.shell ?? 'bash', run }],
      },
    },
  });
}

/** The plan narrowed to one job id and, transitively, the jobs it needs (like act -j). */
export function onlyJob(plan: RunPlan, jobId: string): RunPlan {
  const ids = [...new Set(plan.jobs.map((j) => j.jobId))];
  if (!ids.includes(jobId)) throw new BadRequestException(`job: the workflow has no job '${jobId}'; its jobs: ${ids.join(', ')}`);
  const keep = new Set<string>();
  const visit = (id: string) => {
    if (keep.has(id)) return;
    keep.add(id);
    for (const j of plan.jobs.filter((x) => x.jobId === id)) j.needs.forEach(visit);
  };
  visit(jobId);
  return { ...plan, jobs: plan.jobs.filter((j) => keep.has(j.jobId)) };
}

export function parsePlatform(s: string | undefined): Record<string, string> | undefined {
  if (!s) return undefined;
  return Object.fromEntries(s.split(',').map((pair) => pair.split('=') as [string, string]));
}

export function checkPlatform(p: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!p) return undefined;
  for (const [k, v] of Object.entries(p)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(k) || typeof v !== 'string' || !/^[a-z0-9][a-z0-9.@-]*$/.test(v)) {
      throw new BadRequestException(`platform: '${k}' must map a runs-on label to an environment name`);
    }
  }
  return p;
}

export function qualifyRef(ref: string): string {
  return ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
}

export function repositoryName(url: string): string {
  try {
    const p = new URL(url).pathname
      .replace(/\.git$/, '')
      .replace(/^\/+|\/+$/g, '')
      .split('/');
    return p.slice(-2).join('/') || 'unknown/unknown';
  } catch {
    return 'unknown/unknown';
  }
}

export async function sha1File(file: string): Promise<string> {
  const h = createHash('sha1');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
