import type { Logger } from '@nestjs/common';
import * as path from 'node:path';
import type { LogWriter } from '../storage/log-store';
import { hasExpression, interpolate } from '../workflow/expressions';
import { shellProblem } from '../workflow/parse-fields';
import type { Shell, StepSpec } from '../workflow/model';
import { ExecutionBackend, JobSandboxLimits, STEP_FILES_DIR, STEP_SCRIPTS_DIR, StepState } from './backend';
import { parseEnvFile, parsePathFile } from './env-files';
import { defaultEnv, WORKSPACE } from './github-context';
import type { Conclusion, StepReason } from './job';
import { mib } from './sandbox-limits';
import type { StepResult, StepScope } from './step-scope';
import { egressNetworkNote, refusedNotes } from './egress-notes';
import { allowsUnsecureCommands, type Annotation, type CommandEffects, WorkflowCommands } from './workflow-commands';

/** A step's own files: GitHub's GITHUB_ENV, GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STEP_SUMMARY and GITHUB_STATE. */
function stepFiles(i: number) {
  return {
    env: `${STEP_FILES_DIR}/env-${i}`,
    output: `${STEP_FILES_DIR}/output-${i}`,
    path: `${STEP_FILES_DIR}/path-${i}`,
    summary: `${STEP_FILES_DIR}/summary-${i}`,
    state: `${STEP_FILES_DIR}/state-${i}`,
  };
}
const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SUMMARY_CAP_BYTES = 1024 * 1024;
const MAX_ANNOTATIONS = 50;

/**
 * What tools print when the network is not there: name resolution failing (pip, requests, curl, git,
 * npm, getaddrinfo) or no route at all. A failing step that printed one gets the note below.
 */
const NO_NETWORK =
  /Temporary failure in name resolution|Name or service not known|Could not resolve host|getaddrinfo (?:EAI_AGAIN|ENOTFOUND)|NameResolutionError|Network is unreachable|No route to host|No address associated with hostname/;
export const NO_NETWORK_TITLE = 'No network';
export const NO_NETWORK_NOTE =
  'this step tried to reach the network, and this job has none: nothing in the sandbox can resolve a name or open a connection (the server lets jobs reach no hosts, or the job asked for egress: none). Install from the workspace instead: commit the wheels your job needs and use pip install --no-index --find-links ./wheels -r requirements.txt (pip download -d wheels -r requirements.txt makes them on a machine with network).';

/**
 * The `run:` steps of one job: each runs its script in the sandbox, its output read for workflow
 * commands (annotations, masks); what it writes to GITHUB_STEP_SUMMARY is kept for the job summary.
 */
export class ScriptSteps {
  private annotationSeq = 0;
  private readonly summaries: string[] = [];
  private summaryBytes = 0;

  constructor(
    private readonly backend: ExecutionBackend,
    private readonly limits: JobSandboxLimits,
    private readonly debug: boolean,
    private readonly log: Logger,
    /** What every step gets from the sandbox and the server (the gateway's proxy, the operator's package index). */
    private readonly sandboxEnv: Record<string, string> = {},
    /** The job's egress rules when it has a gateway (null: no network at all). */
    private readonly egressRules: string[] | null = null,
  ) {}

  /** Records an annotation of Kiln's own (capped with the step's: MAX_ANNOTATIONS a job) and logs it. */
  private async note(s: StepScope, a: Annotation): Promise<void> {
    if (this.annotationSeq >= MAX_ANNOTATIONS) return;
    s.out.notice(s.step.index, `${a.level}: ${a.message}`);
    await s.reporter.annotation(s.step.index, this.annotationSeq++, a).catch((e: Error) => this.log.warn(`annotation: ${e.message}`));
  }

  async run(s: StepScope, stepEnv: Record<string, string>, extraPath: string[], timeoutMs: number): Promise<StepResult> {
    const { out, step } = s;
    const cmds = new WorkflowCommands(
      {
        annotate: (a) => {
          if (this.annotationSeq >= MAX_ANNOTATIONS) return;
          const m = (v: string | null) => (v === null ? null : out.maskText(v));
          void s.reporter
            .annotation(step.index, this.annotationSeq++, { ...a, message: out.maskText(a.message), title: m(a.title), file: m(a.file) })
            .catch((e: Error) => this.log.warn(`annotation: ${e.message}`));
        },
        addMask: (v) => out.addMask(v),
      },
      this.debug,
      allowsUnsecureCommands(stepEnv),
    );
    let triedNetwork = false;
    out.setFilter((_step, text) => {
      if (!triedNetwork && NO_NETWORK.test(text)) triedNetwork = true;
      return cmds.line(text);
    });
    let result: StepResult;
    try {
      result = await this.exec(s, stepEnv, extraPath, timeoutMs);
    } finally {
      out.flush(step.index);
      out.setFilter(null);
    }
    result = withCommandEffects(result, cmds.effects);
    const refused = this.egressRules ? refusedNotes(await this.egressActivity(s), this.egressRules) : [];
    for (const a of refused) await this.note(s, { ...a, message: out.maskText(a.message) });
    if (triedNetwork && result.outcome === 'failure' && !refused.length) {
      const message = this.egressRules ? egressNetworkNote(this.egressRules) : NO_NETWORK_NOTE;
      await this.note(s, { level: 'warning', message, title: NO_NETWORK_TITLE, file: null, line: null, endLine: null, col: null, endColumn: null });
    }
    const raw = result.state?.files[stepFiles(step.index).summary];
    const summary = raw && out.maskText(raw); // before the cap, which could cut a secret in two
    if (summary) {
      const room = SUMMARY_CAP_BYTES - this.summaryBytes;
      if (Buffer.byteLength(summary) > room) out.notice(step.index, "warning: the job summary is capped at 1 MiB; the rest of this step's summary was dropped");
      const kept = Buffer.from(summary).subarray(0, Math.max(0, room)).toString('utf8');
      this.summaries.push(kept);
      this.summaryBytes += Buffer.byteLength(kept);
    }
    return result;
  }

  /** The step's requests through the gateway (none when they cannot be read: the report at the job's end still has them). */
  private async egressActivity(s: StepScope) {
    try {
      return (await this.backend.egressActivity?.(s.handle)) ?? [];
    } catch (e) {
      this.log.warn(`egress activity of ${s.job.jobId}: ${(e as Error).message}`);
      return [];
    }
  }

  /** The steps' summaries so far, one after the other; null when no step wrote one. */
  summary(): string | null {
    return this.summaries.length ? this.summaries.join('\n') : null;
  }

  private async exec(s: StepScope, stepEnv: Record<string, string>, extraPath: string[], timeoutMs: number): Promise<StepResult> {
    const { step, ctx, status, out } = s;
    const script = await interpolate(step.run ?? '', ctx, status);
    const shell = await evaluateShell(step.shell, s);
    const i = step.index;
    const files = stepFiles(i);
    const ext = shell === 'python' ? 'py' : shell === 'bash' || shell === 'sh' ? 'sh' : 'script';
    const scriptPath = `${STEP_SCRIPTS_DIR}/step-${i}.${ext}`;
    const argv = shellArgv(shell, scriptPath);
    const workdir = step.workingDirectory ? resolveWorkdir(await interpolate(step.workingDirectory, ctx, status)) : WORKSPACE;
    const env: Record<string, string> = {
      ...defaultEnv(s.job),
      ...this.sandboxEnv,
      ...stepEnv,
      PATH: [...extraPath, BASE_PATH].join(':'),
      GITHUB_ENV: files.env,
      GITHUB_OUTPUT: files.output,
      GITHUB_PATH: files.path,
      GITHUB_STEP_SUMMARY: files.summary,
      GITHUB_STATE: files.state,
      GITHUB_ACTION: step.id ?? `__run_${i}`,
    };
    const state = await this.backend.execStep(
      s.handle,
      {
        argv,
        env,
        workdir,
        timeoutMs,
        script: { path: scriptPath, content: script },
        writable: Object.values(files),
        readBack: [files.env, files.output, files.path, files.summary],
        maxFileBytes: 1024 * 1024,
      },
      (stream, chunk) => out.write(i, stream, chunk),
      s.signal,
    );
    const reason = stateReason(state);
    this.explain(reason, state, timeoutMs, s);
    const outcome: Conclusion = state.cancelled ? 'cancelled' : state.exitCode === 0 && !reason ? 'success' : 'failure';
    const outputs = parseEnvFile(state.files[files.output] ?? '', 'GITHUB_OUTPUT');
    for (const p of outputs.problems) out.notice(i, `warning: ${p}`);
    return { outcome, reason, exitCode: state.exitCode, outputs: outputs.values, state };
  }

  /** Says in the log why the step was stopped, in terms of the job's limits. */
  private explain(reason: StepReason | null, state: StepState, timeoutMs: number, { out, step, handle }: StepScope): void {
    const i = step.index;
    const limits = this.limits;
    if (reason === 'timeout')
      out.notice(i, `the step exceeded its time limit of ${Math.round(timeoutMs / 1000)} s and was stopped (SIGTERM, then SIGKILL after 5 s)`);
    if (reason === 'oom-killed') out.notice(i, `a process was killed for lack of memory: the job's limit is ${mib(limits.memoryBytes)} (memory and swap)`);
    if (reason === 'pids-limit') out.notice(i, `the job reached its limit of ${limits.pids} processes (fork failed)`);
    if (reason === 'sandbox-lost')
      out.notice(
        i,
        `${state.sandboxLost}: under the ${handle.runtime ?? 'runc'} runtime this is what exhausting the job's memory (${mib(limits.memoryBytes)}) or processes (${limits.pids}) looks like; later steps cannot run`,
      );
    if (reason === 'infrastructure') out.notice(i, `infrastructure error: ${state.error}`);
  }
}

/** Why the sandbox stopped the step, if it did (the first that applies). */
function stateReason(state: StepState): StepReason | null {
  if (state.cancelled) return 'cancelled';
  if (state.timedOut) return 'timeout';
  if (state.oomKilled) return 'oom-killed';
  if (state.pidsLimited) return 'pids-limit';
  if (state.sandboxLost) return 'sandbox-lost';
  if (state.error) return 'infrastructure';
  return null;
}

/**
 * A `${{ }}` shell (the step's, or defaults.run's) evaluated when the step runs, with the step's contexts;
 * a value Kiln has no shell for fails the step (thrown), naming the shells there are.
 */
async function evaluateShell(shell: Shell, { ctx, status }: StepScope): Promise<Shell> {
  if (!hasExpression(shell)) return shell;
  const value = (await interpolate(shell, ctx, status)).trim();
  const problem = shellProblem(value);
  if (problem) throw new Error(`${problem} (the value of shell: ${shell})`);
  return value as Shell;
}

/** As on GitHub: bash -eo pipefail, sh -e, python; a custom template gets the script file for {0}. */
function shellArgv(shell: Shell, scriptPath: string): string[] {
  if (shell === 'bash') return ['bash', '--noprofile', '--norc', '-eo', 'pipefail', scriptPath];
  if (shell === 'sh') return ['sh', '-e', scriptPath];
  if (shell === 'python') return ['python3', scriptPath];
  return shell
    .trim()
    .split(/\s+/)
    .map((part) => part.replace('{0}', scriptPath));
}

/**
 * The old commands' part of a step's result: set-output's values under GITHUB_OUTPUT's (the file is read
 * when the step ends, as on GitHub); a command GitHub could not process fails a step that exited 0.
 */
function withCommandEffects(result: StepResult, effects: CommandEffects): StepResult {
  const failed = effects.failed && result.outcome === 'success';
  return { ...result, outcome: failed ? 'failure' : result.outcome, outputs: { ...effects.outputs, ...result.outputs }, commands: effects };
}

/** What a step's set-env and add-path commands, then its GITHUB_ENV and GITHUB_PATH, add for the steps after it. */
export function applyEnvFiles(
  step: StepSpec,
  state: StepState,
  jobEnv: Record<string, string>,
  extraPath: string[],
  out: LogWriter,
  commands?: Pick<CommandEffects, 'env' | 'path'>,
): void {
  if (commands) {
    Object.assign(jobEnv, commands.env);
    for (const dir of commands.path) {
      const at = extraPath.indexOf(dir);
      if (at >= 0) extraPath.splice(at, 1);
      extraPath.unshift(dir);
    }
  }
  const files = stepFiles(step.index);
  const env = parseEnvFile(state.files[files.env] ?? '', 'GITHUB_ENV');
  for (const p of env.problems) out.notice(step.index, `warning: ${p}`);
  Object.assign(jobEnv, env.values);
  const dirs = parsePathFile(state.files[files.path] ?? '');
  extraPath.unshift(...dirs.reverse());
}

/** A working directory relative to the workspace; absolute ones only inside /workspace or /tmp. */
export function resolveWorkdir(dir: string): string {
  const abs = path.posix.resolve(WORKSPACE, dir);
  if (abs === WORKSPACE || abs.startsWith(`${WORKSPACE}/`) || abs === '/tmp' || abs.startsWith('/tmp/')) return abs;
  throw new Error(`working-directory '${dir}' is outside ${WORKSPACE} and /tmp`);
}
