import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { scratchName } from '../storage/scratch';
import { PoolTarget, WarmPool } from './warm-pool';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import type Docker from 'dockerode';
import { PassThrough, Readable } from 'node:stream';
import { STEP_FILES_DIR, STEP_SCRIPTS_DIR } from '../execution/backend';
import type { Collected, ContainerRuntime, ExecSpec, ExecutionBackend, JobHandle, JobSandboxLimits, JobSandboxSpec, OutputSink, StepState } from '../execution/backend';
import { DockerEngine, EngineUnavailableError } from './docker-engine';
import { demux } from './demux';
import { hardenedHostConfig } from './hardening';
import { Counters, SandboxHostView } from './host-view';
import { Metrics } from '../metrics/metrics';
import type { SanitizedTar, TarLimits } from '../sources/tar-safety';
import { sanitizeTar } from '../sources/tar-sanitize';
import { packTree, TreeNotPackable } from '../sources/tree-pack';

/** Steps run as the image's `runner` user; the container's own keeper process runs as nobody, so a step can signal every process of its own but never the keeper. */
export const JOB_USER = '1001:1001';
export const JOB_UID = 1001;
const KEEPER_UID = 65534;
const KEEPER_USER = `${KEEPER_UID}:${KEEPER_UID}`;
export const JOB_LABEL = 'kiln.job';
/** Which Kiln (deployments sharing a Redis share a queue prefix) a container belongs to. */
export const DEPLOYMENT_LABEL = 'kiln.deployment';
/** On a warm pool's idle sandbox: its owner process, `pool~<host>~<pid>~<hex>` (see scratch.ts). */
export const POOL_LABEL = 'kiln.pool';
/** Size of the tmpfs of Kiln's step scripts (STEP_SCRIPTS_DIR): written only by Kiln (as the keeper, nobody). */
const KILN_SCRIPTS_BYTES = 64 * 1024 * 1024;
/**
 * Size of STEP_FILES_DIR, where a step's own files live (GITHUB_ENV, GITHUB_OUTPUT, GITHUB_PATH,
 * GITHUB_STEP_SUMMARY, GITHUB_STATE): a tmpfs of its own, so that filling it cannot keep a script from being written; Kiln empties it and
 * makes the step's files afresh before every step. Each file is read back up to 1 MiB.
 */
export const STEP_FILES_BYTES = 8 * 1024 * 1024;
/** Deadline of Kiln's own short helpers in the sandbox (post-step reader, signals). */
const HELPER_TIMEOUT_MS = 30_000;
class HelperTimeout extends Error {}
/** A helper exec: its stdin, its user (the job's by default), the most stdout kept (the rest is read and dropped). */
interface RunOptions { stdin?: Readable; user?: string; maxStdout?: number }
interface RunResult { exitCode: number; stdout: Buffer; stderr: string; truncated: boolean }
/** Grace between SIGTERM and SIGKILL when a step is stopped. */
const KILL_GRACE_MS = 5000;

/**
 * Reads the cgroup counters (v1 or v2 paths; only under runc: gVisor has no cgroupfs inside, and this
 * release's sandbox can crash when it is read) and the requested files, length-prefixed so any content
 * survives. Symlinks are not followed, as SandboxHostView does not follow them: both readers agree.
 * Used where the sandbox cannot be seen from the host (see SandboxHostView).
 */
const POST_STEP_SCRIPT = `
if [ "$1" = cgroup ]; then
for f in /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events; do [ -r "$f" ] && sed -n 's/^max /pids_max /p' "$f"; done
for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do [ -r "$f" ] && sed -n 's/^oom_kill /oom_kill /p' "$f"; done
fi
shift
max=$1; shift
for f in "$@"; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then n=$(head -c "$max" "$f" | wc -c); printf 'file %s %s\\n' "$n" "$f"; head -c "$max" "$f"; fi
done
echo end
`;

/**
 * Expands the glob patterns inside the sandbox (as the job user) and writes a tar of the matches to
 * stdout ($1 = tar), or only their names, NUL-separated ($1 = list; Kiln then reads them from the host).
 */
const COLLECT_SCRIPT = `
set -o pipefail; shopt -s globstar nullglob dotglob
mode=$1; cd -- "$2" || exit 3; shift 2
IFS=$'\\n'
matches() { for p in "$@"; do for f in $p; do printf '%s\\0' "$f"; done; done; }
[ "$mode" = list ] && { matches "$@"; exit 0; }
matches "$@" | tar -c -f - --null -T - 2>/tmp/.kiln-collect.err
rc=$?; cat /tmp/.kiln-collect.err >&2; exit $rc
`;
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

/** Most bytes of matched names Kiln takes from the listing (far more than 100 000 entries' worth); more goes to tar. */
const LIST_MAX_BYTES = 16 * 1024 * 1024;

/** The HostConfig of every job sandbox (warm or made for the job): the hardening, its limits, its tmpfs mounts. */
export function jobHostConfig(l: JobSandboxLimits, runtime: ContainerRuntime): Docker.HostConfig {
  return hardenedHostConfig(
    { memoryBytes: l.memoryBytes, nanoCpus: l.nanoCpus, pids: l.pids, tmpfsBytes: l.tmpBytes, fileSizeBytes: l.fileSizeBytes, openFiles: l.openFiles },
    [
      { path: '/workspace', bytes: l.workspaceBytes, uid: JOB_UID },
      { path: '/tmp', bytes: l.tmpBytes },
      // Kiln's step scripts: the keeper's (nobody), mode 0755, so the job can neither write nor fill it,
      // and a job that fills every place it can write still runs its cleanup steps. The step's own files
      // (GITHUB_ENV...) have a small tmpfs of their own inside it, also the keeper's: Kiln makes each file
      // there (mode 0666) before the step; the job can write those files, not add others. Docker mounts
      // them after /tmp, deepest last (mounts are sorted by depth).
      { path: STEP_SCRIPTS_DIR, bytes: KILN_SCRIPTS_BYTES, uid: KEEPER_UID },
      { path: STEP_FILES_DIR, bytes: STEP_FILES_BYTES, uid: KEEPER_UID },
      { path: '/home/runner', bytes: l.tmpBytes, uid: JOB_UID },
    ],
    runtime,
  );
}

/** The Docker implementation of ExecutionBackend: one hardened container per job, one exec per step. */
@Injectable()
export class DockerBackend implements ExecutionBackend, OnApplicationShutdown {
  private readonly log = new Logger('DockerBackend');
  private readonly counters = new Map<string, Counters>();
  /** A job's own sandbox whose counters' starting values are still being read (see createSandbox). */
  private readonly startCounters = new Map<string, Promise<void>>();
  /** runc sandboxes seen from the host (their counters and files read without an exec); see SandboxHostView. */
  private readonly views = new Map<string, SandboxHostView>();

  readonly pool: WarmPool;

  constructor(private readonly engine: DockerEngine, @Inject(KILN_CONFIG) private readonly config: KilnConfig, private readonly metrics: Metrics) {
    this.pool = new WarmPool(config.warmPool, {
      create: (t) => this.createSandbox(t, `kiln-pool-${randomBytes(6).toString('hex')}`, { [POOL_LABEL]: scratchName('pool') }),
      destroy: (id) => this.destroyJob({ id, jobId: '' }),
    }, this.log);
    metrics.gauge('kiln_warm_pool_idle_sandboxes', 'Warm sandboxes started and ready for a job, by runtime', ['runtime'], async () => this.pool.idleByRuntime());
  }

  private get docker(): Docker {
    return this.engine.docker;
  }

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

  async isAvailable(): Promise<boolean> {
    try {
      await this.engine.ping(3000);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A job's sandbox: one from the warm pool when there is one made for exactly this image, runtime and
   * limits (renamed for the job, used once), else created and started now.
   */
  async startJob(spec: JobSandboxSpec): Promise<JobHandle> {
    const target: PoolTarget = { image: spec.image, runtime: spec.runtime, limits: spec.limits };
    for (let pooled = await this.pool.takeOrWait(target, REFILL_AFTER_MS); pooled; pooled = this.pool.take(target, REFILL_AFTER_MS)) {
      const handle = await this.adopt(pooled, spec);
      if (!handle) this.pool.started(pooled);
      this.metrics.warmPoolTakes.inc({ result: handle ? 'hit' : 'stale' });
      if (handle) return handle;
    }
    this.metrics.warmPoolTakes.inc({ result: 'miss' });
    const name = `kiln-job-${spec.jobId}`;
    const labels = { [JOB_LABEL]: spec.jobId, 'kiln.run': spec.runId };
    try {
      return { id: await this.createSandbox(target, name, labels, false), jobId: spec.jobId, runtime: spec.runtime };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw infra(e);
      // A container of this job from an attempt that died: remove it and start afresh.
      await this.docker.getContainer(name).remove({ force: true }).catch(() => undefined);
      return { id: await this.createSandbox(target, name, labels, false).catch((err) => { throw infra(err); }), jobId: spec.jobId, runtime: spec.runtime };
    }
  }

  /**
   * The pool's sandboxes are made here too: the same options as a job's own, labelled with their owner.
   * The cgroup counters' starting values are read once it runs: before it is pooled, or for a job's
   * own sandbox alongside the workspace's unpacking (execStep waits for them before any job code runs).
   */
  private async createSandbox(t: PoolTarget, name: string, labels: Record<string, string>, waitForCounters = true): Promise<string> {
    const options: Docker.ContainerCreateOptions = {
      name,
      Image: t.image,
      Cmd: ['sleep', 'infinity'],
      User: KEEPER_USER,
      WorkingDir: '/workspace',
      Labels: { 'kiln.managed': 'true', [DEPLOYMENT_LABEL]: this.config.queuePrefix, 'kiln.runtime': t.runtime, ...labels },
      NetworkDisabled: true,
      StopTimeout: 1,
      HostConfig: jobHostConfig(t.limits, t.runtime),
    };
    const t0 = process.hrtime.bigint();
    const container = await this.docker.createContainer(options);
    try {
      await container.start();
      this.metrics.containerStartSeconds.observe({ runtime: t.runtime }, Number(process.hrtime.bigint() - t0) / 1e9);
      const counters = this.startingCounters(container, { id: container.id, jobId: name, runtime: t.runtime })
        .then((c) => { this.counters.set(container.id, c ?? { pidsMax: 0, oomKill: 0 }); });
      if (waitForCounters) await counters;
      else this.startCounters.set(container.id, counters.catch(() => undefined));
    } catch (e) {
      await this.destroyJob({ id: container.id, jobId: name });
      throw infra(e);
    }
    return container.id;
  }

  /** A new sandbox's counters (their starting values); seen from the host when it can be, else read inside. */
  private async startingCounters(c: Docker.Container, job: JobHandle): Promise<Counters | null> {
    if (job.runtime !== 'runsc') {
      const view = await SandboxHostView.open(c.id, (await c.inspect()).State.Pid);
      const counters = await view?.counters();
      if (view && counters) {
        this.views.set(c.id, view);
        return counters;
      }
    }
    return (await this.postStep(c, job, [], 0)).counters;
  }

  /**
   * A pooled sandbox becomes the job's: renamed kiln-job-<id> (so the job's container is found by name,
   * as one created for it is) if it is still running. Null (and removed) when it is not usable.
   */
  private async adopt(id: string, spec: JobSandboxSpec): Promise<JobHandle | null> {
    const c = this.docker.getContainer(id);
    const name = `kiln-job-${spec.jobId}`;
    try {
      if (!(await c.inspect()).State.Running) throw new Error('not running');
      await c.rename({ name }).catch(async (e: { statusCode?: number }) => {
        if (e.statusCode !== 409) throw e;
        await this.docker.getContainer(name).remove({ force: true }).catch(() => undefined);
        await c.rename({ name });
      });
      return { id, jobId: spec.jobId, runtime: spec.runtime };
    } catch (e) {
      this.log.warn(`warm pool: sandbox ${id.slice(0, 12)} could not be used (${(e as Error).message}); removing it`);
      await this.destroyJob({ id, jobId: spec.jobId }).catch(() => undefined);
      return null;
    }
  }

  /** Keeps sandboxes of these targets warm (KILN_WARM_POOL each); see WarmPoolFeeder. */
  warm(targets: PoolTarget[]): void {
    this.pool.setTargets(targets);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.drain();
  }

  async putWorkspace(job: JobHandle, tar: Readable, dir = '/workspace'): Promise<void> {
    const c = this.docker.getContainer(job.id);
    const res = await this.run(c, ['sh', '-c', 'mkdir -p -- "$1" && exec tar -x -f - -C "$1" --no-same-owner --delay-directory-restore', 'put', dir], { stdin: tar, timeoutMs: 15 * 60_000 });
    if (res.exitCode !== 0) throw new Error(`unpacking the workspace failed (tar exit ${res.exitCode}): ${res.stderr.slice(-500)}`);
  }

  async execStep(job: JobHandle, step: ExecSpec, sink: OutputSink, signal: AbortSignal): Promise<StepState> {
    try {
      return await this.execStepIn(job, step, sink, signal);
    } finally {
      // A warm sandbox's job is past its first step: the pool refills now (see REFILL_AFTER_MS).
      this.pool.started(job.id);
    }
  }

  private async execStepIn(job: JobHandle, step: ExecSpec, sink: OutputSink, signal: AbortSignal): Promise<StepState> {
    const startCounters = this.startCounters.get(job.id);
    if (startCounters) {
      this.startCounters.delete(job.id);
      await startCounters;
    }
    const c = this.docker.getContainer(job.id);
    const state: StepState = { exitCode: null, oomKilled: false, pidsLimited: false, timedOut: false, cancelled: false, error: null, sandboxLost: null, files: {} };
    const argv = step.argv;
    let exec: Docker.Exec;
    let stream: NodeJS.ReadWriteStream;
    try {
      if (step.script || step.writable?.length) await this.prepareStep(c, step);
      exec = await c.exec({ Cmd: argv, AttachStdin: false, AttachStdout: true, AttachStderr: true, User: JOB_USER, Env: envList(step.env), WorkingDir: step.workdir, Tty: false });
      stream = (await exec.start({ hijack: true, stdin: false })) as unknown as NodeJS.ReadWriteStream;
    } catch (e) {
      if (e instanceof HelperTimeout) await c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      return this.failedToStart(c, job, state, e);
    }
    // If the whole sandbox stops (gVisor dies with its memory or thread limit), the exec's stream may
    // never end: the container's own exit ends the step too.
    const waitAbort = new AbortController();
    const sandboxStopped = new Promise<void>((resolve) => {
      c.wait({ condition: 'not-running', abortSignal: waitAbort.signal }).then(() => resolve(), () => undefined);
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
      const post = await this.afterStep(c, job, step.readBack ?? [], step.maxFileBytes ?? 1024 * 1024);
      if (!post.execFailed) {
        // A dockerd shutting down kills the step and may still answer on open connections for a moment:
        // a failed step asks the engine once more, over a new connection.
        if (state.exitCode !== 0 && (await this.engineWentAway(1))) {
          state.error = ENGINE_WENT_AWAY;
          return state;
        }
        const before = this.counters.get(job.id) ?? { pidsMax: 0, oomKill: 0 };
        if (post.counters) {
          state.oomKilled = post.counters.oomKill > before.oomKill;
          state.pidsLimited = post.counters.pidsMax > before.pidsMax;
          this.counters.set(job.id, post.counters);
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
        state.sandboxLost = 'the sandbox was stopped: Kiln\'s helpers in it did not answer (the job stopped or starved them)';
        return state;
      }
    }
    if (seen.kind === 'engine') {
      state.error = ENGINE_WENT_AWAY;
      return state;
    }
    if (seen.kind === 'stopped') state.oomKilled = seen.oomKilled;
    state.sandboxLost = `the sandbox stopped (${seen.how})`;
    state.exitCode ??= await exec.inspect().then((i) => i.ExitCode ?? null, () => null);
    return state;
  }

  /**
   * Before a step, as the keeper (nobody: the job can neither write these places nor signal this exec):
   * the earlier steps' scripts and files removed, the step's script written (0644), and the files the
   * step may write made empty and writable by it (0666) in STEP_FILES_DIR, where only Kiln can add one.
   */
  private async prepareStep(c: Docker.Container, step: ExecSpec): Promise<void> {
    const script = step.script ?? null;
    const res = await this.run(c, ['sh', '-c', PREPARE_STEP_SCRIPT, 'prepare', script?.path ?? '', ...(step.writable ?? [])], {
      user: KEEPER_USER, stdin: Readable.from([Buffer.from(script?.content ?? '')]),
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

  /**
   * An artifact's files: read from the host when the sandbox can be seen from here and nothing of the
   * job runs in it (see collectFromHost), else by tar in the sandbox; both give the same tar.
   */
  async collect(job: JobHandle, patterns: string[], workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    const c = this.docker.getContainer(job.id);
    const fromHost = await this.collectFromHost(c, job, patterns, workdir, outFile, limits);
    this.metrics.artifactCollections.inc({ how: fromHost ? 'host' : 'exec' });
    return fromHost ?? this.collectByTar(c, patterns, workdir, outFile, limits);
  }

  /**
   * The globs are expanded in the sandbox (a short exec as the job user, as tar would see them); the
   * matches are then read through /proc/<keeper>/root by packTree, which never follows a symlink. That
   * is safe only while nothing can change the files: no task of the job user may be in the sandbox
   * before the listing, after it, or after the reading (only Kiln starts processes there, one step at a
   * time). Null, and tar in the sandbox, whenever this does not hold or the tree is not packTree's
   * (a path through a symlink, an absolute path, an entry the job user could not read).
   */
  private async collectFromHost(c: Docker.Container, job: JobHandle, patterns: string[], workdir: string, outFile: string, limits: TarLimits): Promise<Collected | null> {
    const view = this.views.get(job.id);
    if (!view || !(await view.quiet(JOB_UID))) return null;
    let listed: RunResult;
    try {
      listed = await this.run(c, ['bash', '-c', COLLECT_SCRIPT, 'collect', 'list', workdir, ...patterns], { maxStdout: LIST_MAX_BYTES });
    } catch {
      return null;
    }
    if (listed.exitCode !== 0 || listed.truncated) return null;
    const names = listed.stdout.toString('utf8');
    if (!Buffer.from(names, 'utf8').equals(listed.stdout)) return null; // not UTF-8: tar keeps such names' bytes
    const paths = names.split('\0').slice(0, -1);
    if (!(await view.quiet(JOB_UID))) return null;
    const warnings: string[] = [];
    // What tar in the sandbox would have said of the same paths: exit 2 and its complaints.
    const said = () => ({ exitCode: warnings.length ? 2 : 0, stderr: warnings.join('\n') });
    try {
      const tar = await packTree(view.pathOf(workdir), paths, outFile, limits, { uid: JOB_UID }, { dropLinks: true, onWarning: (w) => warnings.push(w) });
      if (!(await view.quiet(JOB_UID))) {
        await fs.rm(outFile, { force: true });
        return { tar: null, error: new Error('the sandbox changed while its files were read; run the step again'), exitCode: -1, stderr: '' };
      }
      return { tar, error: null, ...said() };
    } catch (e) {
      if (e instanceof TreeNotPackable) {
        this.log.debug(`job ${job.jobId}: artifact collected by tar in the sandbox: ${e.message}`);
        return null;
      }
      return { tar: null, error: e as Error, ...said() };
    }
  }

  /** tar in the sandbox, its stream checked and re-packed by sanitizeTar. */
  private async collectByTar(c: Docker.Container, patterns: string[], workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    const exec = await c.exec({ Cmd: ['bash', '-c', COLLECT_SCRIPT, 'collect', 'tar', workdir, ...patterns], AttachStdout: true, AttachStderr: true, User: JOB_USER, Tty: false });
    const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as NodeJS.ReadableStream;
    const tar = new PassThrough();
    const errOut = new PassThrough();
    let stderr = '';
    errOut.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    demux(stream as unknown as Readable, tar, errOut);
    const done = new Promise<{ exitCode: number; stderr: string }>((resolve) => {
      const finish = async () => {
        tar.end();
        const info = await exec.inspect().catch(() => ({ ExitCode: -1 }));
        resolve({ exitCode: info.ExitCode ?? -1, stderr });
      };
      stream.on('end', finish);
      stream.on('error', finish);
    });
    let sanitized: SanitizedTar | null = null;
    let error: Error | null = null;
    try {
      sanitized = await sanitizeTar(tar, outFile, limits, { dropLinks: true });
    } catch (e) {
      tar.resume();
      error = e as Error;
    }
    return { tar: sanitized, error, ...(await done) };
  }

  async destroyJob(job: JobHandle): Promise<void> {
    this.counters.delete(job.id);
    this.views.delete(job.id);
    this.startCounters.delete(job.id);
    this.pool.started(job.id);
    try {
      await this.docker.getContainer(job.id).remove({ force: true, v: true });
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 404 || status === 409) return; // gone already, or its removal is under way
      throw infra(e);
    }
  }

  /** Runs a short command as the job user to completion, with optional stdin. */
  /**
   * Kiln's helpers run as the job user, so the job can signal them (SIGSTOP every new shell): each has a
   * deadline, and a helper that misses it means the sandbox is the job's to lose, never the worker's slot.
   */
  private async run(c: Docker.Container, cmd: string[], opts: RunOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HelperTimeout(`Kiln's helper in the sandbox did not finish within ${(opts.timeoutMs ?? HELPER_TIMEOUT_MS) / 1000} s (the job stopped or starved it)`)), opts.timeoutMs ?? HELPER_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.runUnbounded(c, cmd, opts), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async runUnbounded(c: Docker.Container, cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
    const exec = await c.exec({ Cmd: cmd, AttachStdin: Boolean(opts.stdin), AttachStdout: true, AttachStderr: true, User: opts.user ?? JOB_USER, Tty: false });
    const stream = (await exec.start({ hijack: true, stdin: Boolean(opts.stdin) })) as unknown as NodeJS.ReadWriteStream;
    const out: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    let stderr = '';
    const o = new PassThrough();
    const e = new PassThrough();
    o.on('data', (d: Buffer) => {
      if (truncated || (kept += d.length) > (opts.maxStdout ?? Infinity)) truncated = true; // read on, keep no more
      else out.push(d);
    });
    e.on('data', (d: Buffer) => { if (stderr.length < 8192) stderr += d.toString(); });
    demux(stream as unknown as Readable, o, e);
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    if (opts.stdin) {
      opts.stdin.on('error', (err) => (stream as unknown as { destroy: (e: Error) => void }).destroy(err));
      opts.stdin.pipe(stream as unknown as NodeJS.WritableStream);
    }
    await ended;
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(out), stderr, truncated };
  }

  /**
   * The counters and files after a step: from the host when the sandbox can be seen from here and the
   * step left nothing running in it, else by the reader exec (whose failing to start tells of a process
   * table the step's leftovers filled).
   */
  private async afterStep(c: Docker.Container, job: JobHandle, files: string[], maxBytes: number): Promise<{ counters: Counters | null; files: Record<string, string>; execFailed: boolean }> {
    const view = this.views.get(job.id);
    if (view) {
      const seen = await view.afterStep(JOB_UID, files, maxBytes);
      if (seen?.jobTasks === 0) {
        this.metrics.stepReadbacks.inc({ how: 'host' });
        return { counters: seen.counters, files: seen.files, execFailed: false };
      }
      if (!seen) this.views.delete(job.id);
    }
    this.metrics.stepReadbacks.inc({ how: 'exec' });
    return this.postStep(c, job, files, maxBytes);
  }

  private async postStep(c: Docker.Container, job: JobHandle, files: string[], maxBytes: number): Promise<{ counters: Counters | null; files: Record<string, string>; execFailed: boolean }> {
    let res: { exitCode: number; stdout: Buffer; stderr: string };
    const cgroup = job.runtime === 'runsc' ? 'nocgroup' : 'cgroup';
    try {
      res = await this.run(c, ['sh', '-c', POST_STEP_SCRIPT, 'post', cgroup, String(maxBytes), ...files]);
    } catch (e) {
      if (e instanceof HelperTimeout) {
        this.log.warn(`job ${job.jobId}: ${e.message}; stopping its sandbox`);
        await c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      }
      return { counters: null, files: {}, execFailed: true };
    }
    if (res.exitCode !== 0 && !res.stdout.includes('end\n')) return { counters: null, files: {}, execFailed: true };
    return { ...parsePostStep(res.stdout), execFailed: false };
  }

  /** SIGTERM to every process of the job user, then SIGKILL after a grace; the keeper (nobody) survives. */
  private async killJobProcesses(c: Docker.Container, exec: Docker.Exec): Promise<void> {
    // `kill` is the shell's builtin: minimal images have no procps. -1 = every process we may signal.
    const signalAll = async (sig: string) => {
      const r = await this.run(c, ['sh', '-c', `kill -${sig} -1 2>/dev/null; exit 0`], { timeoutMs: 10_000 });
      if (r.exitCode !== 0) throw new Error(`kill -${sig} -1 exited ${r.exitCode}: ${r.stderr || r.stdout.toString()}`.trim());
    };
    // `kill -0 -1` succeeds while any process of the job user other than the asker is left.
    const survivors = async () => (await this.run(c, ['sh', '-c', 'kill -0 -1 2>/dev/null'], { timeoutMs: 10_000 })).exitCode === 0;
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
    void ended.then(() => { done = true; });
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
    const post = await this.postStep(c, job, [], 0);
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

export function parsePostStep(out: Buffer): { counters: Counters | null; files: Record<string, string> } {
  const files: Record<string, string> = {};
  let pidsMax: number | null = null;
  let oomKill: number | null = null;
  let i = 0;
  while (i < out.length) {
    const nl = out.indexOf(10, i);
    if (nl < 0) break;
    const line = out.subarray(i, nl).toString();
    i = nl + 1;
    if (line.startsWith('pids_max ')) pidsMax = Number(line.slice(9));
    else if (line.startsWith('oom_kill ')) oomKill = Number(line.slice(9));
    else if (line.startsWith('file ')) {
      const m = /^file (\d+) (.+)$/.exec(line);
      if (!m) break;
      const n = Number(m[1]);
      files[m[2]] = out.subarray(i, i + n).toString('utf8');
      i += n;
    } else if (line === 'end') break;
  }
  return { counters: pidsMax === null && oomKill === null ? null : { pidsMax: pidsMax ?? 0, oomKill: oomKill ?? 0 }, files };
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

/** A warm sandbox's refill waits for its job's first step to end (or this long): see WarmPool.take. */
const REFILL_AFTER_MS = 2000;

const ENGINE_WENT_AWAY = 'the Docker engine stopped the sandbox and went away during the step (dockerd restarted or stopped); the job did not cause this';

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

function infra(e: unknown): Error {
  const err = e as { code?: string; statusCode?: number; message?: string };
  if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' || err.code === 'EPIPE' || err.code === 'ECONNRESET' || (err.statusCode ?? 0) >= 500) {
    return new EngineUnavailableError(`Docker engine: ${err.message ?? String(e)}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
