import { BadRequestException } from '@nestjs/common';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { stringify } from 'yaml';
import { ArchiveError } from '../sources/tar-safety';
import { readFilesFromTar } from '../sources/tar-sanitize';
import { planFromYaml } from '../workflow/plan';
import { PlanOptions, RunPlan, WORKFLOW_FILE, WorkflowError } from '../workflow/model';
import { sourceHttpException } from './source-status';

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
    if (e instanceof WorkflowError) {
      throw new BadRequestException({
        statusCode: 400,
        error: 'Bad Request',
        message: `the workflow${file ? ` ${file}` : ''} is not valid:\n${e.message}`,
        problems: e.problems,
      });
    }
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
