import { Inject, Injectable, Logger } from '@nestjs/common';
import { newId } from '../http/ids';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { ArchiveError } from '../sources/tar-safety';
import { FileStore } from '../storage/file-store';
import { BLOB_STORE, blobKeys, BlobStore } from '../storage/blob-store';
import { patient } from '../db/patient';
import { LogStore, LogWriter } from '../storage/log-store';
import { RunsRepository } from '../runs/runs.repository';
import type { Conclusion, Job, Run, StepReason } from '../runs/runs.types';
import { evaluateCondition, ExprContext, interpolate, StatusFunctions } from '../workflow/expressions';
import type { JobLimits, StepSpec } from '../workflow/model';
import { ContainerRuntime, EXECUTION_BACKEND, ExecutionBackend, JobHandle, JobSandboxLimits, STEP_FILES_DIR, STEP_SCRIPTS_DIR, StepState } from './backend';
import { parseEnvFile, parsePathFile } from './env-files';
import { WorkflowCommands } from './workflow-commands';
import { createHash } from 'node:crypto';
import { Metrics } from '../metrics/metrics';

export const WORKSPACE = '/workspace';
/** A step's own files: GitHub's GITHUB_ENV, GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STEP_SUMMARY and GITHUB_STATE. */
function stepFiles(i: number) {
  return { env: `${STEP_FILES_DIR}/env-${i}`, output: `${STEP_FILES_DIR}/output-${i}`, path: `${STEP_FILES_DIR}/path-${i}`, summary: `${STEP_FILES_DIR}/summary-${i}`, state: `${STEP_FILES_DIR}/state-${i}` };
}
const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface NeedResult {
  result: Conclusion;
  outputs: Record<string, string>;
}

export interface RunOptions {
  /** The run owner's secrets, for ${{ secrets.NAME }}; masked in the log. */
  secrets: Record<string, string>;
  artifactBytesLeft: number;
}

export interface JobOutcome {
  conclusion: Conclusion;
  error: string | null;
  outputs?: Record<string, string>;
  /** True when the job failed before any step started (safe to retry). */
  beforeSteps: boolean;
}

interface StepRecord {
  outcome: Conclusion;
  conclusion: Conclusion;
  outputs: Record<string, string>;
}

/** Thrown when the infrastructure failed before any step ran: the queue retries these. */
export class RetryableJobError extends Error {}

/**
 * Runs one planned job in one sandbox through the ExecutionBackend. Knows GitHub's step semantics
 * (if:, continue-on-error, timeouts, env files); never parses YAML and never talks to Docker itself.
 */
@Injectable()
export class JobRunner {
  private readonly log = new Logger('JobRunner');

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(EXECUTION_BACKEND) private readonly backend: ExecutionBackend,
    repo: RunsRepository,
    private readonly logs: LogStore,
    private readonly files: FileStore,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    private readonly metrics: Metrics,
  ) {
    // The records of a running job outlive a brief database outage (writes are retried, see patient.ts).
    this.repo = patient(repo, this.log);
  }

  private readonly repo: RunsRepository;
  private readonly removals = new Map<string, Promise<void>>();

  /** A job's sandbox limits: its own `limits:` over the configured defaults. */
  limitsFor(job: Pick<Job, 'spec'>): JobSandboxLimits {
    return sandboxLimits(this.config, job.spec.limits);
  }

  async run(run: Run, job: Job, needs: Record<string, NeedResult>, signal: AbortSignal, opts: RunOptions = { secrets: {}, artifactBytesLeft: Infinity }): Promise<JobOutcome> {
    const out = this.logs.writer(run.id, job.id, Object.values(opts.secrets));
    const spec = job.spec;
    const limits = this.limitsFor(job);
    let handle: JobHandle | null = null;
    try {
      const runtime = runtimeFor(this.config, spec.environment.name);
      out.notice(-1, `job ${job.key} on ${spec.environment.name}@${spec.environment.version} (${spec.environment.image.slice(0, 19)}), runtime ${runtime}, memory ${mib(limits.memoryBytes)}, cpus ${limits.nanoCpus / 1e9}, pids ${limits.pids}, workspace ${mib(limits.workspaceBytes)}, timeout ${spec.timeoutMinutes} min, network none`);
      try {
        handle = await this.backend.startJob({ runId: run.id, jobId: job.id, image: spec.environment.image, limits, runtime });
        // A command run without files has an empty workspace: nothing to unpack (one exec saved).
        if (!(run.source.kind === 'command' && run.source.files === 0)) {
          const source = await this.blobs.open(blobKeys.source(run.id));
          if (!source) throw new Error(`the run's sources are missing from the store (${blobKeys.source(run.id)}); is KILN_DATA_DIR shared by every node?`);
          await this.backend.putWorkspace(handle, source.stream);
        }
      } catch (e) {
        out.notice(-1, `could not prepare the sandbox: ${(e as Error).message}`);
        throw new RetryableJobError((e as Error).message);
      }
      const outcome = await this.steps(run, job, handle, out, needs, signal, opts);
      return { ...outcome, error: outcome.error === null ? null : out.maskText(outcome.error) };
    } catch (e) {
      // The message becomes the job's recorded error (and the server's log line): masked like the log.
      if (e instanceof Error) {
        e.message = out.maskText(e.message);
        if (e.stack) e.stack = out.maskText(e.stack);
      }
      throw e;
    } finally {
      // The sandbox is removed while the outcome is recorded (removal is a good part of a short job's
      // time); the worker awaits sandboxGone() before it frees the slot or lets the queue retry.
      if (handle) {
        const h = handle;
        this.removals.set(job.id, this.backend.destroyJob(h).catch((e: Error) => this.log.warn(`destroying ${job.id}: ${e.message}`)).finally(() => this.removals.delete(job.id)));
      }
      out.close();
    }
  }

  /** Resolves once the job's sandbox (if it had one) is removed. */
  async sandboxGone(jobId: string): Promise<void> {
    await this.removals.get(jobId);
  }

  private async steps(run: Run, job: Job, handle: JobHandle, out: LogWriter, needs: Record<string, NeedResult>, signal: AbortSignal, opts: RunOptions): Promise<JobOutcome> {
    const spec = job.spec;
    const deadline = Date.now() + spec.timeoutMinutes * 60_000;
    let jobStatus: 'success' | 'failure' = 'success';
    let stopReason: StepReason | null = null;
    let infraError: string | null = null;
    const stepsCtx: Record<string, StepRecord> = {};
    const jobEnv: Record<string, string> = {};
    const extraPath: string[] = [];
    const github = this.githubContext(run, job);
    const summaries: string[] = [];
    let summaryBytes = 0;
    let annotationSeq = 0;
    const debug = opts.secrets.ACTIONS_STEP_DEBUG === 'true' || spec.env.ACTIONS_STEP_DEBUG === 'true' || spec.env.RUNNER_DEBUG === '1';
    const baseCtx = (): ExprContext => ({
      github, matrix: spec.matrix ?? {}, needs, steps: stepsCtx, job: { status: jobStatus },
      runner: { os: 'Linux', arch: 'X64', name: 'kiln', temp: '/tmp', tool_cache: '/opt/hostedtoolcache', environment: 'self-hosted' },
      strategy: spec.strategy ? { 'fail-fast': spec.strategy.failFast, 'max-parallel': spec.strategy.maxParallel } : {},
      env: jobEnv, secrets: opts.secrets, vars: {}, inputs: {},
    });
    // Job env is evaluated once, in order; later steps see what GITHUB_ENV adds on top.
    for (const [k, v] of Object.entries(spec.env)) jobEnv[k] = await interpolate(v, baseCtx());

    for (const step of spec.steps) {
      if (stopReason) {
        await this.repo.updateStep(job.id, step.index, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', reason: stopReason, finished: true });
        continue;
      }
      if (signal.aborted) {
        await this.repo.closeOpenSteps(job.id, 'cancelled', 'cancelled');
        return { conclusion: 'cancelled', error: null, beforeSteps: false };
      }
      const hashes = await this.precomputeHashes(handle, [step.if, step.run, step.workingDirectory, ...Object.values(step.env), ...Object.values(step.with)], signal);
      const status: StatusFunctions = {
        success: () => jobStatus === 'success',
        failure: () => jobStatus === 'failure',
        cancelled: () => signal.aborted,
        always: () => true,
        hashFiles: (patterns) => {
          const h = hashes.get(JSON.stringify(patterns));
          if (h === undefined) throw new Error('hashFiles() takes literal patterns in quotes, e.g. hashFiles(\'**/requirements.txt\')');
          return h;
        },
      };
      let ctx = baseCtx();
      let run_ = false;
      try {
        run_ = await evaluateCondition(step.if, ctx, status);
      } catch (e) {
        out.notice(step.index, `the if: condition could not be evaluated: ${(e as Error).message}`);
        await this.finishStep(job, step, out, 'failure', null, null);
        jobStatus = 'failure';
        stepsCtx[step.id ?? `__${step.index}`] = { outcome: 'failure', conclusion: 'failure', outputs: {} };
        continue;
      }
      if (!run_) {
        await this.repo.updateStep(job.id, step.index, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', started: true, finished: true });
        if (step.id) stepsCtx[step.id] = { outcome: 'skipped', conclusion: 'skipped', outputs: {} };
        continue;
      }
      await this.repo.updateStep(job.id, step.index, { status: 'in_progress', started: true });
      out.notice(step.index, `▶ ${step.name}`);
      const stepEnv: Record<string, string> = { ...jobEnv };
      ctx = { ...baseCtx(), env: stepEnv };
      for (const [k, v] of Object.entries(step.env)) stepEnv[k] = await interpolate(v, ctx);
      ctx = { ...ctx, env: stepEnv };
      const remaining = deadline - Date.now();
      const stepTimeout = Math.min(step.timeoutMinutes ? step.timeoutMinutes * 60_000 : Infinity, remaining);
      let result: { outcome: Conclusion; reason: StepReason | null; exitCode: number | null; outputs: Record<string, string>; state?: StepState };
      const stepStarted = process.hrtime.bigint();
      try {
        if (step.uses === 'checkout') {
          out.notice(step.index, `the source is already in ${WORKSPACE} (actions/checkout is built in)`);
          result = { outcome: 'success', reason: null, exitCode: null, outputs: {} };
        } else if (step.uses === 'upload-artifact') {
          result = await this.uploadArtifact(run, job, handle, step, ctx, status, out, opts);
        } else if (step.uses === 'download-artifact') {
          result = await this.downloadArtifact(run, handle, step, ctx, status, out);
        } else if (step.uses === 'setup-python') {
          out.notice(step.index, `actions/setup-python: Python comes from the environment ${spec.environment.name}@${spec.environment.version} (checked when the run was submitted)`);
          result = { outcome: 'success', reason: null, exitCode: null, outputs: {} };
        } else {
          const cmds = new WorkflowCommands({
            annotate: (a) => {
              if (annotationSeq >= 50) return;
              const m = (v: string | null) => (v === null ? null : out.maskText(v));
              void this.repo.insertAnnotation(run.id, job.id, step.index, annotationSeq++, { ...a, message: out.maskText(a.message), title: m(a.title), file: m(a.file) }).catch((e: Error) => this.log.warn(`annotation: ${e.message}`));
            },
            addMask: (v) => out.addMask(v),
          }, debug);
          out.setFilter((_step, text) => cmds.line(text));
          try {
            result = await this.runScript(run, job, handle, step, ctx, status, stepEnv, extraPath, stepTimeout, out, signal);
          } finally {
            out.flush(step.index);
            out.setFilter(null);
          }
          const raw = result.state?.files[stepFiles(step.index).summary];
          const summary = raw && out.maskText(raw); // before the cap, which could cut a secret in two
          if (summary) {
            const room = 1024 * 1024 - summaryBytes;
            if (Buffer.byteLength(summary) > room) out.notice(step.index, 'warning: the job summary is capped at 1 MiB; the rest of this step\'s summary was dropped');
            const kept = Buffer.from(summary).subarray(0, Math.max(0, room)).toString('utf8');
            summaries.push(kept);
            summaryBytes += Buffer.byteLength(kept);
          }
        }
      } catch (e) {
        out.notice(step.index, `error: ${(e as Error).message}`);
        result = { outcome: 'failure', reason: null, exitCode: null, outputs: {} };
      }
      if (result.state?.timedOut && remaining <= (step.timeoutMinutes ?? Infinity) * 60_000) result.reason = 'job-timeout';
      let continueOnError = false;
      if (result.outcome === 'failure') {
        continueOnError = typeof step.continueOnError === 'boolean' ? step.continueOnError : Boolean(await interpolate(step.continueOnError, ctx, status).then((v) => v === 'true').catch(() => false));
      }
      const conclusion: Conclusion = result.outcome === 'failure' && continueOnError ? 'success' : result.outcome;
      this.metrics.stepSeconds.observe({ conclusion }, Number(process.hrtime.bigint() - stepStarted) / 1e9);
      await this.finishStep(job, step, out, result.outcome, conclusion, result.exitCode, result.reason, continueOnError);
      if (step.id) stepsCtx[step.id] = { outcome: result.outcome, conclusion, outputs: result.outputs };
      if (result.outcome === 'cancelled') {
        await this.repo.closeOpenSteps(job.id, 'cancelled', 'cancelled');
        return { conclusion: 'cancelled', error: null, beforeSteps: false };
      }
      if (conclusion === 'failure') jobStatus = 'failure';
      if (result.state) {
        this.applyEnvFiles(step, result.state, jobEnv, extraPath, out);
        if (result.state.error) { stopReason = 'infrastructure'; infraError = result.state.error; }
        else if (result.state.pidsLimited) stopReason = 'pids-limit';
        else if (result.state.sandboxLost) stopReason = 'sandbox-lost';
      }
      if (result.reason === 'job-timeout') stopReason = 'job-timeout';
    }
    const error = stopReason === 'infrastructure' ? `infrastructure: ${infraError ?? 'the engine failed during the job'}` : stopReason === 'job-timeout' ? `the job exceeded its timeout of ${spec.timeoutMinutes} minutes` : stopReason === 'pids-limit' ? 'the job reached its process limit; later steps could not run' : stopReason === 'sandbox-lost' ? 'the job\'s sandbox stopped; later steps could not run' : null;
    if (summaries.length) await this.repo.setJobSummary(job.id, out.maskText(summaries.join('\n')));
    const outputs = await this.jobOutputs(spec.outputs ?? {}, baseCtx(), out);
    return { conclusion: jobStatus === 'success' && !stopReason ? 'success' : 'failure', error, beforeSteps: false, outputs };
  }

  private async finishStep(job: Job, step: StepSpec, out: LogWriter, outcome: Conclusion, conclusion: Conclusion | null, exitCode: number | null, reason: StepReason | null = null, continueOnError = false): Promise<void> {
    const c = conclusion ?? outcome;
    out.notice(step.index, `■ ${step.name}: ${outcome}${exitCode !== null ? ` (exit code ${exitCode})` : ''}${reason ? `, ${reason}` : ''}${continueOnError && outcome === 'failure' ? ' (continue-on-error)' : ''}`);
    await this.repo.updateStep(job.id, step.index, { status: 'completed', outcome, conclusion: c, exitCode, reason, finished: true });
  }

  private async runScript(run: Run, job: Job, handle: JobHandle, step: StepSpec, ctx: ExprContext, status: StatusFunctions, stepEnv: Record<string, string>, extraPath: string[], timeoutMs: number, out: LogWriter, signal: AbortSignal) {
    const script = await interpolate(step.run ?? '', ctx, status);
    const i = step.index;
    const files = stepFiles(i);
    const ext = step.shell === 'python' ? 'py' : step.shell === 'bash' || step.shell === 'sh' ? 'sh' : 'script';
    const scriptPath = `${STEP_SCRIPTS_DIR}/step-${i}.${ext}`;
    // As on GitHub: bash -eo pipefail, sh -e, python; a custom template gets the script file for {0}.
    const argv = step.shell === 'bash' ? ['bash', '--noprofile', '--norc', '-eo', 'pipefail', scriptPath]
      : step.shell === 'sh' ? ['sh', '-e', scriptPath]
      : step.shell === 'python' ? ['python3', scriptPath]
      : step.shell.trim().split(/\s+/).map((part) => part.replace('{0}', scriptPath));
    const workdir = step.workingDirectory ? resolveWorkdir(await interpolate(step.workingDirectory, ctx, status)) : WORKSPACE;
    const env: Record<string, string> = {
      ...this.defaultEnv(run, job),
      ...stepEnv,
      PATH: [...extraPath, BASE_PATH].join(':'),
      GITHUB_ENV: files.env, GITHUB_OUTPUT: files.output, GITHUB_PATH: files.path, GITHUB_STEP_SUMMARY: files.summary, GITHUB_STATE: files.state,
      GITHUB_ACTION: step.id ?? `__run_${i}`,
    };
    const state = await this.backend.execStep(handle, {
      argv, env, workdir, timeoutMs, script: { path: scriptPath, content: script }, writable: Object.values(files),
      readBack: [files.env, files.output, files.path, files.summary], maxFileBytes: 1024 * 1024,
    }, (stream, chunk) => out.write(i, stream, chunk), signal);
    const limits = this.limitsFor(job);
    let reason: StepReason | null = null;
    if (state.cancelled) reason = 'cancelled';
    else if (state.timedOut) reason = 'timeout';
    else if (state.oomKilled) reason = 'oom-killed';
    else if (state.pidsLimited) reason = 'pids-limit';
    else if (state.sandboxLost) reason = 'sandbox-lost';
    else if (state.error) reason = 'infrastructure';
    if (reason === 'timeout') out.notice(i, `the step exceeded its time limit of ${Math.round(timeoutMs / 1000)} s and was stopped (SIGTERM, then SIGKILL after 5 s)`);
    if (reason === 'oom-killed') out.notice(i, `a process was killed for lack of memory: the job's limit is ${mib(limits.memoryBytes)} (memory and swap)`);
    if (reason === 'pids-limit') out.notice(i, `the job reached its limit of ${limits.pids} processes (fork failed)`);
    if (reason === 'sandbox-lost') out.notice(i, `${state.sandboxLost}: under the ${handle.runtime ?? 'runc'} runtime this is what exhausting the job's memory (${mib(limits.memoryBytes)}) or processes (${limits.pids}) looks like; later steps cannot run`);
    if (reason === 'infrastructure') out.notice(i, `infrastructure error: ${state.error}`);
    const outcome: Conclusion = state.cancelled ? 'cancelled' : state.exitCode === 0 && !reason ? 'success' : 'failure';
    const outputs = parseEnvFile(state.files[files.output] ?? '', 'GITHUB_OUTPUT');
    for (const p of outputs.problems) out.notice(i, `warning: ${p}`);
    return { outcome, reason, exitCode: state.exitCode, outputs: outputs.values, state };
  }

  private applyEnvFiles(step: StepSpec, state: StepState, jobEnv: Record<string, string>, extraPath: string[], out: LogWriter): void {
    const files = stepFiles(step.index);
    const env = parseEnvFile(state.files[files.env] ?? '', 'GITHUB_ENV');
    for (const p of env.problems) out.notice(step.index, `warning: ${p}`);
    Object.assign(jobEnv, env.values);
    const dirs = parsePathFile(state.files[files.path] ?? '');
    extraPath.unshift(...dirs.reverse());
  }

  private async uploadArtifact(run: Run, job: Job, handle: JobHandle, step: StepSpec, ctx: ExprContext, status: StatusFunctions, out: LogWriter, opts: RunOptions) {
    const i = step.index;
    const name = (await interpolate(step.with.name ?? 'artifact', ctx, status)).trim();
    const fail = (message: string, reason: StepReason = 'artifact-error') => {
      out.notice(i, `error: ${message}`);
      return { outcome: 'failure' as Conclusion, reason, exitCode: null, outputs: {} };
    };
    if (out.holdsSecret(name)) return fail('the artifact name holds a secret (or its base64, hex or URL-encoded form): names are stored and shown in download URLs, so it was refused; choose a name without it');
    // `.` and `..` would name the folder itself or its parent where download-artifact unpacks by name.
    if (!/^[^"\\:<>|*?\r\n/]{1,128}$/.test(name) || name === '.' || name === '..') return fail(`artifact name '${name}' is not valid: 1 to 128 characters, none of " : < > | * ? \\ / or newlines, and not . or ..`);
    const patterns = (await interpolate(step.with.path ?? '', ctx, status)).split('\n').map((l) => l.trim()).filter(Boolean);
    const excluded = patterns.filter((p) => p.startsWith('!'));
    if (excluded.length) out.notice(i, `warning: exclusion patterns are not supported yet and were ignored: ${excluded.join(', ')}`);
    const include = patterns.filter((p) => !p.startsWith('!'));
    if (!include.length) return fail('upload-artifact needs `with: path:` (one or more paths or globs)');
    const ifNone = (step.with['if-no-files-found'] ?? 'warn').trim();
    const retention = Math.min(Number(step.with['retention-days'] ?? this.config.artifactRetentionDays) || this.config.artifactRetentionDays, this.config.artifactRetentionDays);
    const id = newId();
    const key = blobKeys.artifact(run.id, id);
    // Collected into this worker's scratch (swept if the worker dies), put in the store once complete.
    const tmp = this.files.upload('.artifact.tar');
    const collected = await this.backend.collect(handle, include, WORKSPACE, tmp, {
      maxEntries: 100_000, maxDepth: 64, maxPathLength: 4096,
      maxFileBytes: this.config.artifactMaxBytes, maxTotalBytes: this.config.artifactMaxBytes, maxCompressedBytes: this.config.artifactMaxBytes + 64 * 1024 * 1024,
    });
    const sanitized = collected.tar;
    if (!sanitized) {
      const e = collected.error;
      if (e instanceof ArchiveError && /empty/.test(e.message)) {
        const msg = `no files were found with the provided path: ${include.join(', ')}${collected.stderr ? ` (${collected.stderr.trim().slice(0, 300)})` : ''}`;
        if (ifNone === 'error') return fail(msg, 'no-files');
        if (ifNone !== 'ignore') out.notice(i, `warning: ${msg}; no artifact will be uploaded`);
        return { outcome: 'success' as Conclusion, reason: null, exitCode: null, outputs: {} };
      }
      return fail(`artifact '${name}' was refused: ${e?.message ?? 'the collector gave nothing'}`);
    }
    if (collected.exitCode !== 0 && collected.stderr) out.notice(i, `warning: ${collected.stderr.trim().slice(0, 500)}`);
    const dropped = sanitized.droppedLinks;
    if (dropped) out.notice(i, `warning: ${dropped} symbolic link(s) were left out of the artifact`);
    if (sanitized.totalBytes > opts.artifactBytesLeft) {
      await fs.promises.rm(tmp, { force: true });
      return fail(`artifact '${name}' (${sanitized.totalBytes} bytes) would exceed your artifact storage quota (${Math.max(0, opts.artifactBytesLeft)} bytes left)`);
    }
    opts.artifactBytesLeft -= sanitized.totalBytes;
    await this.blobs.put(key, tmp);
    const createdAt = new Date();
    try {
      await this.repo.insertArtifact({
        id, runId: run.id, jobId: job.id, name, sizeBytes: sanitized.totalBytes, files: sanitized.files,
        createdAt: createdAt.toISOString(), expiresAt: new Date(createdAt.getTime() + retention * 86_400_000).toISOString(),
      });
    } catch {
      await this.blobs.remove(key);
      return fail(`an artifact named '${name}' already exists in this run; names must be unique`);
    }
    out.notice(i, `artifact '${name}' uploaded: ${sanitized.files} file(s), ${sanitized.totalBytes} bytes, kept ${retention} day(s)`);
    return { outcome: 'success' as Conclusion, reason: null, exitCode: null, outputs: {} };
  }

  /** Job outputs, evaluated when the job ends; a value holding a secret (in any masked form) is left out, as on GitHub. */
  private async jobOutputs(raw: Record<string, string>, ctx: ExprContext, out: LogWriter): Promise<Record<string, string>> {
    const outputs: Record<string, string> = {};
    for (const [name, template] of Object.entries(raw)) {
      try {
        const value = await interpolate(template, ctx);
        if (out.holdsSecret(value)) {
          out.notice(-1, `warning: the job output '${name}' was left out because it contains a secret`);
          continue;
        }
        outputs[name] = value;
      } catch (e) {
        out.notice(-1, `warning: the job output '${name}' could not be evaluated: ${(e as Error).message}`);
      }
    }
    return outputs;
  }

  /**
   * hashFiles() needs the workspace, and the expression engine cannot wait for I/O: every call with
   * literal patterns in the step's strings is computed in the sandbox first. GitHub's algorithm: the
   * SHA-256 of the concatenated SHA-256 digests of the matching files (sorted by path); '' if none.
   */
  private async precomputeHashes(handle: JobHandle, strings: (string | null | undefined)[], signal: AbortSignal): Promise<Map<string, string>> {
    const calls = new Map<string, string[]>();
    for (const str of strings) {
      if (!str) continue;
      for (const m of str.matchAll(/hashFiles\(\s*((?:'(?:[^']|'')*'\s*,?\s*)+)\)/gi)) {
        const args = [...m[1].matchAll(/'((?:[^']|'')*)'/g)].map((a) => a[1].replace(/''/g, "'"));
        calls.set(JSON.stringify(args), args);
      }
    }
    const out = new Map<string, string>();
    for (const [key, patterns] of calls) {
      let stdout = '';
      const script = [
        'shopt -s globstar nullglob dotglob; cd /workspace || exit 0',
        'inc=(); exc=()',
        'for p in "$@"; do if [[ $p == !* ]]; then exc+=("${p:1}"); else inc+=("$p"); fi; done',
        'IFS=$\'\\n\'',
        'for p in "${inc[@]}"; do for f in $p; do [ -f "$f" ] || continue; skip=; for x in "${exc[@]}"; do [[ $f == $x ]] && skip=1; done; [ -z "$skip" ] && printf "%s\\0" "$f"; done; done | sort -zu | xargs -0 -r sha256sum',
      ].join('\n');
      const state = await this.backend.execStep(handle, { argv: ['bash', '-c', script, 'hashFiles', ...patterns], env: {}, workdir: WORKSPACE, timeoutMs: 120_000 }, (stream, chunk) => { if (stream === 'stdout') stdout += chunk.toString(); }, signal);
      if (state.exitCode !== 0) continue;
      const digests = stdout.split('\n').map((l) => /^([0-9a-f]{64}) /.exec(l)?.[1]).filter((h): h is string => Boolean(h));
      if (!digests.length) {
        out.set(key, '');
        continue;
      }
      const total = createHash('sha256');
      for (const d of digests) total.update(Buffer.from(d, 'hex'));
      out.set(key, total.digest('hex'));
    }
    return out;
  }

  /** download-artifact: one artifact of this run into `path`, or (without name) each into path/<name>. */
  private async downloadArtifact(run: Run, handle: JobHandle, step: StepSpec, ctx: ExprContext, status: StatusFunctions, out: LogWriter) {
    const i = step.index;
    const name = step.with.name ? (await interpolate(step.with.name, ctx, status)).trim() : null;
    const target = resolveWorkdir(step.with.path ? await interpolate(step.with.path, ctx, status) : '.');
    const all = await this.repo.artifacts(run.id);
    const chosen = name ? all.filter((a) => a.name === name) : all;
    if (name && !chosen.length) {
      out.notice(i, `error: no artifact named '${name}' in this run${all.length ? ` (there are: ${all.map((a) => a.name).join(', ')})` : ''}; the job that uploads it must be listed in needs`);
      return { outcome: 'failure' as Conclusion, reason: 'artifact-error' as StepReason, exitCode: null, outputs: {} };
    }
    for (const a of chosen) {
      const dir = name ? target : `${target}/${a.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
      const blob = await this.blobs.open(blobKeys.artifact(run.id, a.id));
      if (!blob) {
        out.notice(i, `error: artifact '${a.name}' has expired`);
        return { outcome: 'failure' as Conclusion, reason: 'artifact-error' as StepReason, exitCode: null, outputs: {} };
      }
      await this.backend.putWorkspace(handle, blob.stream, dir);
      out.notice(i, `artifact '${a.name}' (${a.files} file(s), ${a.sizeBytes} bytes) downloaded to ${dir}`);
    }
    if (!chosen.length) out.notice(i, 'warning: this run has no artifacts (yet)');
    return { outcome: 'success' as Conclusion, reason: null, exitCode: null, outputs: {} };
  }

  private githubContext(run: Run, job: Job) {
    const c = run.context;
    return {
      sha: c.sha, ref: c.ref, ref_name: c.ref.replace(/^refs\/(heads|tags)\//, ''), repository: c.repository,
      repository_owner: c.repository.split('/')[0] ?? '', event_name: c.event, run_id: run.id, run_number: c.runNumber, run_attempt: 1,
      job: job.jobId, workspace: WORKSPACE, server_url: '', api_url: '', actor: 'kiln', workflow: run.workflowName, action: '', token: '',
    };
  }

  private defaultEnv(run: Run, job: Job): Record<string, string> {
    const g = this.githubContext(run, job);
    return {
      CI: 'true', GITHUB_ACTIONS: 'true', KILN: 'true', HOME: '/home/runner',
      GITHUB_WORKSPACE: WORKSPACE, GITHUB_SHA: g.sha, GITHUB_REF: g.ref, GITHUB_REF_NAME: g.ref_name, GITHUB_REPOSITORY: g.repository,
      GITHUB_REPOSITORY_OWNER: g.repository_owner, GITHUB_RUN_ID: run.id, GITHUB_RUN_NUMBER: String(g.run_number), GITHUB_RUN_ATTEMPT: '1',
      GITHUB_JOB: job.jobId, GITHUB_EVENT_NAME: g.event_name, GITHUB_WORKFLOW: run.workflowName, GITHUB_ACTOR: 'kiln',
      RUNNER_OS: 'Linux', RUNNER_ARCH: 'X64', RUNNER_NAME: 'kiln', RUNNER_TEMP: '/tmp', RUNNER_ENVIRONMENT: 'self-hosted',
    };
  }
}

/** A working directory relative to the workspace; absolute ones only inside /workspace or /tmp. */
export function resolveWorkdir(dir: string): string {
  const abs = path.posix.resolve(WORKSPACE, dir);
  if (abs === WORKSPACE || abs.startsWith(`${WORKSPACE}/`) || abs === '/tmp' || abs.startsWith('/tmp/')) return abs;
  throw new Error(`working-directory '${dir}' is outside ${WORKSPACE} and /tmp`);
}

function mib(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${Math.round(bytes / 1024 / 1024)} MiB`;
}

/** Sandbox limits from a job's `limits:` over the configured defaults (no `limits`: the defaults, as the warm pool makes them). */
export function sandboxLimits(config: KilnConfig, l: JobLimits = {}): JobSandboxLimits {
  const j = config.jobs;
  return {
    memoryBytes: l.memoryBytes ?? j.memoryBytes,
    nanoCpus: Math.round((l.cpus ?? j.cpus) * 1e9),
    pids: l.pids ?? j.pids,
    workspaceBytes: l.workspaceBytes ?? j.workspaceBytes,
    tmpBytes: j.tmpBytes,
    fileSizeBytes: Math.max(l.workspaceBytes ?? j.workspaceBytes, j.tmpBytes) * 2,
    openFiles: 4096,
  };
}

/** The operator's choice only: KILN_RUNSC_ENVIRONMENTS names environments that always run under gVisor; the rest get KILN_RUNTIME. */
export function runtimeFor(config: KilnConfig, environment: string): ContainerRuntime {
  return config.runscEnvironments.includes(environment) ? 'runsc' : config.runtime;
}
