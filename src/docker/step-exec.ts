import type { Logger } from '@nestjs/common';
import type Docker from 'dockerode';
import { PassThrough, Readable } from 'node:stream';
import type { ExecSpec, JobHandle, OutputSink, StepState } from '../execution/backend';
import { demux } from './demux';
import { HelperTimeout, runHelper } from './helper-exec';
import { JOB_USER, KEEPER_USER } from './job-sandbox';
import type { SandboxState } from './sandbox-state';
import type { StepReadBack } from './step-readback';

/** Grace between SIGTERM and SIGKILL when a step is stopped. */
const KILL_GRACE_MS = 5000;

/**
 * Run as the keeper before each step (see prepareStep): $1 the script's path ('' for none, its text on
 * stdin), then the files the step may write. Files of earlier steps are removed first: their space is
 * the next step's. Builtins and coreutils only (minimal images).
 */
export const PREPARE_STEP_SCRIPT = `
umask 022
script=$1; shift
for f in "$@"; do rm -f -- "\${f%/*}"/* 2>/dev/null; done
if [ -n "$script" ]; then
  for f in "\${script%/*}"/*; do [ -f "$f" ] && rm -f -- "$f"; done
  cat > "$script" || exit 1
  chmod 644 "$script" || exit 1
else
  cat > /dev/null
fi
for f in "$@"; do : > "$f" && chmod 666 "$f" || exit 1; done
`;

/**
 * One step in a job's sandbox (ExecutionBackend.execStep): its files prepared by the keeper, its exec,
 * its output, its timeout and cancellation, and what became of it (exit, counters, a lost sandbox).
 */
export class StepExec {
  constructor(
    private readonly state: SandboxState,
    private readonly readBack: StepReadBack,
    private readonly isAvailable: () => Promise<boolean>,
    private readonly log: Logger,
  ) {}

  /**
   * A sandbox that stopped without running out of memory may have been stopped by its engine shutting
   * down (dockerd restarted: it stops every container, then goes away a moment later). Watching the
   * engine for a few seconds tells that infrastructure fault apart from the job's own doing.
   */
  private async engineWentAway(pings = 12): Promise<boolean> {
    for (let i = 0; i < pings; i++) {
      if (i > 0) await sleep(250);
      if (!(await this.isAvailable())) return true;
    }
    return false;
  }

  async run(c: Docker.Container, job: JobHandle, step: ExecSpec, sink: OutputSink, signal: AbortSignal): Promise<StepState> {
    const startCounters = this.state.startCounters.get(job.id);
    if (startCounters) {
      this.state.startCounters.delete(job.id);
      await startCounters;
    }
    const state: StepState = {
      exitCode: null,
      oomKilled: false,
      pidsLimited: false,
      timedOut: false,
      cancelled: false,
      error: null,
      sandboxLost: null,
      files: {},
    };
    const argv = step.argv;
    let exec: Docker.Exec;
    let stream: NodeJS.ReadWriteStream;
    try {
      if (step.script || step.writable?.length) await this.prepareStep(c, step);
      exec = await c.exec({
        Cmd: argv,
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        User: JOB_USER,
        Env: envList(step.env),
        WorkingDir: step.workdir,
        Tty: false,
      });
      stream = (await exec.start({ hijack: true, stdin: false })) as unknown as NodeJS.ReadWriteStream;
    } catch (e) {
      if (e instanceof HelperTimeout) await c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      return this.failedToStart(c, job, state, e);
    }
    // If the whole sandbox stops (gVisor dies with its memory or thread limit), the exec's stream may
    // never end: the container's own exit ends the step too.
    const waitAbort = new AbortController();
    const sandboxStopped = new Promise<void>((resolve) => {
      c.wait({ condition: 'not-running', abortSignal: waitAbort.signal }).then(
        () => resolve(),
        () => undefined,
      );
    });
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (d: Buffer) => sink('stdout', d));
    err.on('data', (d: Buffer) => sink('stderr', d));
    demux(stream as unknown as Readable, out, err);

    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    let stopping: Promise<void> | undefined;
    const stop = (why: 'timeout' | 'cancel') => {
      if (why === 'timeout') state.timedOut = true;
      else state.cancelled = true;
      stopping ??= this.killJobProcesses(c, exec);
    };
    const timer = setTimeout(() => stop('timeout'), step.timeoutMs);
    const onAbort = () => stop('cancel');
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort);
    const exited = this.waitExecExit(exec, ended);
    try {
      await Promise.race([ended, exited, sandboxStopped]);
      // A daemon the step left behind may hold the output open: the step is over when its process is.
      await Promise.race([ended, sleep(1000)]);
    } finally {
      waitAbort.abort();
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      (stream as unknown as { destroy?: () => void }).destroy?.();
    }
    if (stopping) await stopping;
    let seen = await this.lookAfterTrouble(c, false);
    if (seen.kind === 'running') {
      try {
        state.exitCode = (await exec.inspect()).ExitCode ?? null;
      } catch (e) {
        state.error = `the engine lost the step: ${(e as Error).message}`;
        return state;
      }
      const post = await this.readBack.afterStep(c, job, step.readBack ?? [], step.maxFileBytes ?? 1024 * 1024);
      if (!post.execFailed) {
        // A dockerd shutting down kills the step and may still answer on open connections for a moment:
        // a failed step asks the engine once more, over a new connection.
        if (state.exitCode !== 0 && (await this.engineWentAway(1))) {
          state.error = ENGINE_WENT_AWAY;
          return state;
        }
        const before = this.state.counters.get(job.id) ?? { pidsMax: 0, oomKill: 0 };
        if (post.counters) {
          state.oomKilled = post.counters.oomKill > before.oomKill;
          state.pidsLimited = post.counters.pidsMax > before.pidsMax;
          this.state.counters.set(job.id, post.counters);
        }
        state.files = post.files;
        return state;
      }
      seen = await this.lookAfterTrouble(c, true);
      if (seen.kind === 'running') {
        // The engine is steady and the sandbox runs, yet our reader could not start: the job's process table is full.
        state.pidsLimited = true;
        return state;
      }
      if (seen.kind === 'stopped' && !seen.oomKilled) {
        state.sandboxLost = "the sandbox was stopped: Kiln's helpers in it did not answer (the job stopped or starved them)";
        return state;
      }
    }
    if (seen.kind === 'engine') {
      state.error = ENGINE_WENT_AWAY;
      return state;
    }
    if (seen.kind === 'stopped') state.oomKilled = seen.oomKilled;
    state.sandboxLost = `the sandbox stopped (${seen.how})`;
    state.exitCode ??= await exec.inspect().then(
      (i) => i.ExitCode ?? null,
      () => null,
    );
    return state;
  }

  /**
   * Before a step, as the keeper (nobody: the job can neither write these places nor signal this exec):
   * the earlier steps' scripts and files removed, the step's script written (0644), and the files the
   * step may write made empty and writable by it (0666) in STEP_FILES_DIR, where only Kiln can add one.
   */
  private async prepareStep(c: Docker.Container, step: ExecSpec): Promise<void> {
    const script = step.script ?? null;
    const res = await runHelper(c, ['sh', '-c', PREPARE_STEP_SCRIPT, 'prepare', script?.path ?? '', ...(step.writable ?? [])], {
      user: KEEPER_USER,
      stdin: Readable.from([Buffer.from(script?.content ?? '')]),
    });
    if (res.exitCode !== 0) throw new Error(`preparing the step's files failed (exit ${res.exitCode}): ${res.stderr.slice(-500)}`);
  }

  /**
   * How a sandbox is after a step did not end plainly (it stopped, or Kiln's helpers failed in it).
   * dockerd stopping or restarting (live-restore is off) kills every container and, while it shuts
   * down, may still call a sandbox running and refuse execs in it; so before the job is blamed (its
   * process table, its sandbox) the engine is watched for 3 s and the sandbox looked at again. Running
   * out of memory is the job's own doing whatever the engine does next.
   */
  private async lookAfterTrouble(c: Docker.Container, helpersFailed: boolean): Promise<SandboxSeen> {
    const first = await seeSandbox(c);
    if (first.kind === 'stopped' && first.oomKilled) return first;
    if (first.kind === 'running' && !helpersFailed) return first;
    if (await this.engineWentAway()) return { kind: 'engine' };
    return first.kind === 'stopped' ? first : seeSandbox(c);
  }

  /** SIGTERM to every process of the job user, then SIGKILL after a grace; the keeper (nobody) survives. */
  private async killJobProcesses(c: Docker.Container, exec: Docker.Exec): Promise<void> {
    // `kill` is the shell's builtin: minimal images have no procps. -1 = every process we may signal.
    const signalAll = async (sig: string) => {
      const r = await runHelper(c, ['sh', '-c', `kill -${sig} -1 2>/dev/null; exit 0`], { timeoutMs: 10_000 });
      if (r.exitCode !== 0) throw new Error(`kill -${sig} -1 exited ${r.exitCode}: ${r.stderr || r.stdout.toString()}`.trim());
    };
    // `kill -0 -1` succeeds while any process of the job user other than the asker is left.
    const survivors = async () => (await runHelper(c, ['sh', '-c', 'kill -0 -1 2>/dev/null'], { timeoutMs: 10_000 })).exitCode === 0;
    try {
      await signalAll('TERM');
      // The grace is for every process of the job, not only the step's main one: an orphan that
      // ignores SIGTERM must not outlive its step because the main process obeyed.
      const deadline = Date.now() + KILL_GRACE_MS;
      while (Date.now() < deadline) {
        if (!(await exec.inspect()).Running && !(await survivors())) return;
        await sleep(200);
      }
      await signalAll('KILL');
    } catch (e) {
      // No exec can start (pids exhausted): stop the whole sandbox instead.
      this.log.warn(`could not signal the job's processes (${(e as Error).message}); killing its container`);
      await c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    }
  }

  private async waitExecExit(exec: Docker.Exec, ended: Promise<void>): Promise<void> {
    let done = false;
    void ended.then(() => {
      done = true;
    });
    while (!done) {
      await sleep(250);
      try {
        if (!(await exec.inspect()).Running) return;
      } catch {
        return;
      }
    }
  }

  private async failedToStart(c: Docker.Container, job: JobHandle, state: StepState, e: unknown): Promise<StepState> {
    const message = (e as Error).message ?? String(e);
    // An exec that cannot start because the process table is full is the job's doing, not ours.
    const post = await this.readBack.postStep(c, job, [], 0);
    const seen = await this.lookAfterTrouble(c, post.execFailed);
    if (seen.kind === 'engine') {
      state.error = ENGINE_WENT_AWAY;
      return state;
    }
    if (seen.kind === 'running' && post.execFailed) {
      state.pidsLimited = true;
      state.exitCode = 126;
      return state;
    }
    if (seen.kind === 'stopped') {
      state.oomKilled = seen.oomKilled;
      state.sandboxLost = `the sandbox had stopped (${seen.how})`;
      return state;
    }
    state.error = `could not start the step: ${message}`;
    return state;
  }
}

/** How the job's container ended, when it is no longer running (null while it runs or cannot be inspected). */
type SandboxSeen = { kind: 'running' } | { kind: 'engine' } | { kind: 'stopped'; oomKilled: boolean; how: string } | { kind: 'unseen'; how: string };

/** What the engine says of a sandbox: running, stopped (how), or not to be seen (removed, or the engine not answering). */
async function seeSandbox(c: Docker.Container): Promise<SandboxSeen> {
  try {
    const info = await c.inspect();
    if (info.State.Running) return { kind: 'running' };
    return { kind: 'stopped', oomKilled: info.State.OOMKilled, how: `exit ${info.State.ExitCode}${info.State.OOMKilled ? ', out of memory' : ''}` };
  } catch (e) {
    return { kind: 'unseen', how: `the engine could not show it: ${(e as Error).message}` };
  }
}

const ENGINE_WENT_AWAY = 'the Docker engine stopped the sandbox and went away during the step (dockerd restarted or stopped); the job did not cause this';

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
