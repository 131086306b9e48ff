import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { FileStore } from '../storage/file-store';
import { BLOB_STORE, blobKeys, BlobStore } from '../storage/blob-store';
import { LogStore, LogWriter } from '../storage/log-store';
import { evaluateCondition, ExprContext, hasExpression, interpolate, StatusFunctions } from '../workflow/expressions';
import type { PlannedJob, StepSpec } from '../workflow/model';
import { formatRule, grantFor, requestedRules, type EgressGrant } from '../common/egress-rules';
import { EXECUTION_BACKEND, ExecutionBackend, JobHandle, JobSandboxLimits } from './backend';
import { BuiltinActions, type ScriptedAction } from './builtin-actions';
import { githubContext } from './github-context';
import { EVENT_DIR, eventTar } from './event-file';
import { precomputeHashes } from './hash-files';
import { Conclusion, JobInput, JobOutcome, RetryableJobError, StepReason } from './job';
import type { JobReporter } from './reporter';
import { mib, runtimeFor, sandboxLimits } from './sandbox-limits';
import { applyEnvFiles, ScriptSteps } from './script-step';
import type { StepResult, StepScope } from './step-scope';
import { Metrics } from '../common/metrics';
import { CLOCK, Clock, systemClock } from '../common/clock';

interface StepRecord {
  outcome: Conclusion;
  conclusion: Conclusion;
  outputs: Record<string, string>;
}

/**
 * Runs one planned job in one sandbox through the ExecutionBackend, and tells what happens through
 * the JobReporter. Knows GitHub's step semantics (if:, continue-on-error, timeouts, env files); never
 * parses YAML, never talks to Docker itself and never writes records itself.
 */
@Injectable()
export class JobRunner {
  private readonly log = new Logger('JobRunner');
  private readonly removals = new Map<string, Promise<void>>();
  private readonly builtins: BuiltinActions;
  private readonly now: Clock;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(EXECUTION_BACKEND) private readonly backend: ExecutionBackend,
    private readonly logs: LogStore,
    files: FileStore,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    private readonly metrics: Metrics,
    @Optional() @Inject(CLOCK) clock?: Clock,
  ) {
    this.now = clock ?? systemClock;
    this.builtins = new BuiltinActions(config, backend, files, blobs);
  }

  async run(job: JobInput, reporter: JobReporter, signal: AbortSignal): Promise<JobOutcome> {
    const out = this.logs.writer(job.runId, job.jobId, Object.values(job.secrets));
    const spec = job.spec;
    const limits = sandboxLimits(this.config, spec.limits);
    let handle: JobHandle | null = null;
    try {
      const runtime = runtimeFor(this.config, spec.environment.name);
      const egress = this.egressOf(spec);
      out.notice(
        -1,
        `job ${spec.key} on ${spec.environment.name}@${spec.environment.version} (${spec.environment.image.slice(0, 19)}), runtime ${runtime}, memory ${mib(limits.memoryBytes)}, cpus ${limits.nanoCpus / 1e9}, pids ${limits.pids}, workspace ${mib(limits.workspaceBytes)}, timeout ${spec.timeoutMinutes} min, ${egressLine(egress, this.config.egress.maxBytes)}`,
      );
      if (spec.placement) out.notice(-1, spec.placement);
      try {
        handle = await this.backend.startJob({
          runId: job.runId,
          jobId: job.jobId,
          image: spec.environment.image,
          limits,
          runtime,
          ...(egress.rules.length ? { egress: { grant: egress, maxBytes: this.config.egress.maxBytes } } : {}),
        });
        // The run view says what the job may reach from its start; the full report replaces this at its end.
        if (egress.rules.length) {
          const rules = egress.rules.map(formatRule);
          await reporter.egress({ rules, hosts: [], lookups: [], totalBytes: 0, maxBytes: this.config.egress.maxBytes, capReached: false });
        }
        // A command run without files has an empty workspace: nothing to unpack (one exec saved).
        if (job.hasSources) {
          const source = await this.blobs.open(blobKeys.source(job.runId));
          if (!source) throw new Error(`the run's sources are missing from the store (${blobKeys.source(job.runId)}); is KILN_DATA_DIR shared by every node?`);
          await this.backend.putWorkspace(handle, source.stream);
        }
        // github.event as a file (GITHUB_EVENT_PATH), for a run that has a payload (a dispatch, a webhook push).
        if (job.context.eventPayload) await this.backend.putWorkspace(handle, eventTar(job.context.eventPayload), EVENT_DIR);
      } catch (e) {
        out.notice(-1, `could not prepare the sandbox: ${(e as Error).message}`);
        throw new RetryableJobError((e as Error).message);
      }
      const outcome = await this.steps(job, reporter, handle, limits, out, signal, egress.rules.map(formatRule));
      await this.reportEgress(handle, reporter, out);
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
        this.removals.set(
          job.jobId,
          this.backend
            .destroyJob(h)
            .catch((e: Error) => this.log.warn(`destroying ${job.jobId}: ${e.message}`))
            .finally(() => this.removals.delete(job.jobId)),
        );
      }
      out.close();
    }
  }

  /** What the job may reach: the server's egress rules, narrowed by its `egress:` (checked when it was planned). */
  private egressOf(spec: PlannedJob): EgressGrant {
    return grantFor(this.config.egress, requestedRules(spec.egress)).grant;
  }

  /** The job's egress report, recorded with the job (a failure to read it is logged, not the job's). */
  private async reportEgress(handle: JobHandle, reporter: JobReporter, out: LogWriter): Promise<void> {
    try {
      const report = await this.backend.egressReport?.(handle);
      if (!report) return;
      if (report.capReached) out.notice(-1, `warning: the job passed its egress byte cap (${mib(report.maxBytes)}): its gateway was cut off from the outside`);
      await reporter.egress(report);
    } catch (e) {
      this.log.warn(`egress report of ${handle.jobId}: ${(e as Error).message}`);
    }
  }

  /** Resolves once the job's sandbox (if it had one) is removed. */
  async sandboxGone(jobId: string): Promise<void> {
    await this.removals.get(jobId);
  }

  /** The step loop. */
  private async steps(
    job: JobInput,
    reporter: JobReporter,
    handle: JobHandle,
    limits: JobSandboxLimits,
    out: LogWriter,
    signal: AbortSignal,
    egressRules: string[],
  ): Promise<JobOutcome> {
    const spec = job.spec;
    const deadline = this.now() + spec.timeoutMinutes * 60_000;
    let jobStatus: 'success' | 'failure' = 'success';
    let stopReason: StepReason | null = null;
    let infraError: string | null = null;
    const stepsCtx: Record<string, StepRecord> = {};
    const jobEnv: Record<string, string> = {};
    const extraPath: string[] = [];
    const github = githubContext(job);
    const quota = { artifactBytesLeft: job.artifactBytesLeft };
    const debug = job.secrets.ACTIONS_STEP_DEBUG === 'true' || spec.env.ACTIONS_STEP_DEBUG === 'true' || spec.env.RUNNER_DEBUG === '1';
    // The gateway's proxy and the operator's package index, for a job that has egress (one without has no network to use them).
    const sandboxEnv = egressRules.length ? { ...handle.env, ...pipIndexEnv(this.config.egress.pipIndexUrl) } : {};
    const scripts = new ScriptSteps(this.backend, limits, debug, this.log, sandboxEnv, egressRules.length ? egressRules : null);
    const baseCtx = (): ExprContext => ({
      github,
      matrix: spec.matrix ?? {},
      needs: job.needs,
      steps: stepsCtx,
      job: { status: jobStatus },
      runner: { os: 'Linux', arch: 'X64', name: 'kiln', temp: '/tmp', tool_cache: '/opt/hostedtoolcache', environment: 'self-hosted' },
      strategy: spec.strategy ? { 'fail-fast': spec.strategy.failFast, 'max-parallel': spec.strategy.maxParallel } : {},
      env: jobEnv,
      secrets: job.secrets,
      vars: {},
      inputs: job.context.inputs ?? {},
    });
    // Job env is evaluated once, in order; later steps see what GITHUB_ENV adds on top.
    for (const [k, v] of Object.entries(spec.env)) jobEnv[k] = await interpolate(v, baseCtx());

    for (const planned of spec.steps) {
      // Time spent between steps (hashFiles, a built-in action's upload) counts too: a step that would start after the deadline is not run.
      if (!stopReason && this.now() >= deadline) stopReason = 'job-timeout';
      if (stopReason) {
        await reporter.stepNotRun(planned.index, stopReason);
        continue;
      }
      if (signal.aborted) {
        await reporter.cancelled();
        // A job whose own step had failed is a failure, whatever stopped it afterwards (fail-fast, a cancel).
        return { conclusion: jobStatus === 'failure' ? 'failure' : 'cancelled', error: null, beforeSteps: false };
      }
      const hashes = await precomputeHashes(
        this.backend,
        handle,
        [planned.name, planned.if, planned.run, planned.shell, planned.workingDirectory, ...Object.values(planned.env), ...Object.values(planned.with)],
        signal,
      );
      const status: StatusFunctions = {
        success: () => jobStatus === 'success',
        failure: () => jobStatus === 'failure',
        cancelled: () => signal.aborted,
        always: () => true,
        hashFiles: (patterns) => {
          const h = hashes.get(JSON.stringify(patterns));
          if (h === undefined) throw new Error("hashFiles() takes literal patterns in quotes, e.g. hashFiles('**/requirements.txt')");
          return h;
        },
      };
      let ctx = baseCtx();
      // As GitHub does, the name is evaluated before the if: (a skipped step shows it evaluated too), with the job's env.
      const step = await evaluateName(planned, ctx, status, out);
      const renamed = step.name !== planned.name ? step.name : undefined;
      let run_ = false;
      try {
        run_ = await evaluateCondition(step.if, ctx, status);
      } catch (e) {
        out.notice(step.index, `the if: condition could not be evaluated: ${(e as Error).message}`);
        await this.finishStep(reporter, step, out, 'failure', null, null);
        jobStatus = 'failure';
        stepsCtx[step.id ?? `__${step.index}`] = { outcome: 'failure', conclusion: 'failure', outputs: {} };
        continue;
      }
      if (!run_) {
        await reporter.stepSkipped(step.index, renamed);
        if (step.id) stepsCtx[step.id] = { outcome: 'skipped', conclusion: 'skipped', outputs: {} };
        continue;
      }
      await reporter.stepStarted(step.index, renamed);
      out.notice(step.index, `▶ ${step.name}`);
      const stepEnv: Record<string, string> = { ...jobEnv };
      ctx = { ...baseCtx(), env: stepEnv };
      for (const [k, v] of Object.entries(step.env)) stepEnv[k] = await interpolate(v, ctx);
      ctx = { ...ctx, env: stepEnv };
      const remaining = deadline - this.now();
      const stepTimeout = Math.min(step.timeoutMinutes ? step.timeoutMinutes * 60_000 : Infinity, remaining);
      const scope: StepScope = { job, handle, out, reporter, step, ctx, status, signal, quota };
      let result: StepResult;
      const stepStarted = process.hrtime.bigint();
      try {
        const run = this.builtins.scriptFor(scope);
        if (run !== null) {
          result = await scripts.run({ ...scope, step: { ...step, run, shell: 'bash', workingDirectory: null } }, stepEnv, extraPath, stepTimeout);
        } else if (step.uses) result = await this.builtins.handlers[step.uses as Exclude<typeof step.uses, ScriptedAction>](scope);
        else result = await scripts.run(scope, stepEnv, extraPath, stepTimeout);
      } catch (e) {
        out.notice(step.index, `error: ${(e as Error).message}`);
        result = { outcome: 'failure', reason: null, exitCode: null, outputs: {} };
      }
      if (result.state?.timedOut && remaining <= (step.timeoutMinutes ?? Infinity) * 60_000) result.reason = 'job-timeout';
      let continueOnError = false;
      if (result.outcome === 'failure') {
        continueOnError =
          typeof step.continueOnError === 'boolean'
            ? step.continueOnError
            : Boolean(
                await interpolate(step.continueOnError, ctx, status)
                  .then((v) => v === 'true')
                  .catch(() => false),
              );
      }
      const conclusion: Conclusion = result.outcome === 'failure' && continueOnError ? 'success' : result.outcome;
      this.metrics.stepSeconds.observe({ conclusion }, Number(process.hrtime.bigint() - stepStarted) / 1e9);
      await this.finishStep(reporter, step, out, result.outcome, conclusion, result.exitCode, result.reason, continueOnError);
      if (step.id) stepsCtx[step.id] = { outcome: result.outcome, conclusion, outputs: result.outputs };
      if (result.outcome === 'cancelled') {
        await reporter.cancelled();
        // A job whose own step had failed is a failure, whatever stopped it afterwards (fail-fast, a cancel).
        return { conclusion: jobStatus === 'failure' ? 'failure' : 'cancelled', error: null, beforeSteps: false };
      }
      if (conclusion === 'failure') jobStatus = 'failure';
      if (result.state) {
        applyEnvFiles(step, result.state, jobEnv, extraPath, out, result.commands);
        if (result.state.error) {
          stopReason = 'infrastructure';
          infraError = result.state.error;
        } else if (result.state.pidsLimited) stopReason = 'pids-limit';
        else if (result.state.sandboxLost) stopReason = 'sandbox-lost';
      }
      if (result.reason === 'job-timeout') stopReason = 'job-timeout';
    }
    const error = stopError(stopReason, infraError, spec.timeoutMinutes);
    const summary = scripts.summary();
    if (summary !== null) await reporter.summary(out.maskText(summary));
    const outputs = await this.jobOutputs(spec.outputs ?? {}, baseCtx(), out);
    return { conclusion: jobStatus === 'success' && !stopReason ? 'success' : 'failure', error, beforeSteps: false, outputs };
  }

  private async finishStep(
    reporter: JobReporter,
    step: StepSpec,
    out: LogWriter,
    outcome: Conclusion,
    conclusion: Conclusion | null,
    exitCode: number | null,
    reason: StepReason | null = null,
    continueOnError = false,
  ): Promise<void> {
    const c = conclusion ?? outcome;
    out.notice(
      step.index,
      `■ ${step.name}: ${outcome}${exitCode !== null ? ` (exit code ${exitCode})` : ''}${reason ? `, ${reason}` : ''}${continueOnError && outcome === 'failure' ? ' (continue-on-error)' : ''}`,
    );
    await reporter.stepFinished(step.index, { outcome, conclusion: c, exitCode, reason });
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
}

/** The step with its `${{ }}` name evaluated; a name that cannot be evaluated is shown as written, and the log says why. */
async function evaluateName(step: StepSpec, ctx: ExprContext, status: StatusFunctions, out: LogWriter): Promise<StepSpec> {
  if (step.defaultName || !hasExpression(step.name)) return step;
  try {
    // Masked as the log is: the name is stored and shown by the API, the CLI and the page.
    return { ...step, name: out.maskText(await interpolate(step.name, ctx, status)) };
  } catch (e) {
    out.notice(step.index, `warning: the step name could not be evaluated (shown as written): ${(e as Error).message}`);
    return step;
  }
}

/** The setup line's words on the network: none, or what the job may reach. */
function egressLine(grant: EgressGrant, maxBytes: number): string {
  if (!grant.rules.length) return 'network none';
  return `network: egress gateway to ${grant.rules.map(formatRule).join(', ')} (at most ${mib(maxBytes)})`;
}

/** The operator's package index for pip and uv (an http index is also trusted: pip ignores one otherwise). */
function pipIndexEnv(url: string | null): Record<string, string> {
  if (!url) return {};
  const env: Record<string, string> = { PIP_INDEX_URL: url, UV_INDEX_URL: url, UV_DEFAULT_INDEX: url };
  if (url.startsWith('http://')) env.PIP_TRUSTED_HOST = new URL(url).hostname;
  return env;
}

/** The job's error when a step stopped it (later steps not run); null when none did. */
function stopError(stopReason: StepReason | null, infraError: string | null, timeoutMinutes: number): string | null {
  switch (stopReason) {
    case 'infrastructure':
      return `infrastructure: ${infraError ?? 'the engine failed during the job'}`;
    case 'job-timeout':
      return `the job exceeded its timeout of ${timeoutMinutes} minutes`;
    case 'pids-limit':
      return 'the job reached its process limit; later steps could not run';
    case 'sandbox-lost':
      return "the job's sandbox stopped; later steps could not run";
    default:
      return null;
  }
}
