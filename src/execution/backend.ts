import type { Readable } from 'node:stream';
import type { EgressGrant, EgressReport, EgressRequest } from '../common/egress-rules';
import type { SanitizedTar, TarLimits } from '../sources/tar-safety';
import type { ArtifactPaths } from './artifact-paths';

/**
 * The one small interface between the runner and whatever runs containers (woodpecker's backend).
 * State is plain data. destroyJob is safe to call twice. Only src/docker implements it for real;
 * unit tests use a scripted fake.
 */
export interface ExecutionBackend {
  /** Resolves true when the engine answers. */
  isAvailable(): Promise<boolean>;
  /** Creates and starts the job's sandbox (or takes a warm one made alike): hardened, network-less, named for the job. */
  startJob(spec: JobSandboxSpec): Promise<JobHandle>;
  /** Keeps sandboxes for these image/runtime/limits ready ahead of jobs (a backend without a pool omits it). */
  warm?(targets: { image: string; runtime: ContainerRuntime; limits: JobSandboxLimits }[]): void;
  /** Streams a (sanitized) tar into dir (default /workspace; created if missing), as the job user. */
  putWorkspace(job: JobHandle, tar: Readable, dir?: string): Promise<void>;
  /** Runs one step to its end, its timeout, or the abort signal. Never throws for user failures. */
  execStep(job: JobHandle, step: ExecSpec, sink: OutputSink, signal: AbortSignal): Promise<StepState>;
  /**
   * The files an upload-artifact's paths choose (listed in the sandbox as the job user, chosen and
   * rooted by selectArtifactFiles) as a clean tar in outFile, named relative to the artifact's root:
   * sanitizeTar's rules within `limits`, symlinks left out. `error` when there is none (an ArchiveError:
   * refused, or "empty" when nothing matched); exitCode and stderr are what the collector said (a path
   * not found).
   */
  collect(job: JobHandle, paths: ArtifactPaths, workdir: string, outFile: string, limits: TarLimits): Promise<Collected>;
  /** The job's egress requests finished since the last call (none when it has no gateway). */
  egressActivity?(job: JobHandle): Promise<EgressRequest[]>;
  /** The job's egress report so far (null when it has no gateway); called before destroyJob. */
  egressReport?(job: JobHandle): Promise<EgressReport | null>;
  /** Removes the sandbox and everything in it (its gateway and network too). Idempotent. */
  destroyJob(job: JobHandle): Promise<void>;
}

export interface Collected {
  tar: SanitizedTar | null;
  error: Error | null;
  exitCode: number;
  stderr: string;
  /** files left out for being hidden (include-hidden-files: false) */
  hidden?: number;
}

export interface JobSandboxSpec {
  runId: string;
  jobId: string;
  image: string;
  limits: JobSandboxLimits;
  /** The container runtime: runc (the engine's default) or runsc (gVisor), chosen by the operator only. */
  runtime: ContainerRuntime;
  /** Egress through a gateway of the job's own (absent or no rules: no network at all). */
  egress?: { grant: EgressGrant; maxBytes: number };
}

export type ContainerRuntime = 'runc' | 'runsc';

export interface JobSandboxLimits {
  memoryBytes: number;
  nanoCpus: number;
  pids: number;
  workspaceBytes: number;
  tmpBytes: number;
  fileSizeBytes: number;
  openFiles: number;
}

export interface JobHandle {
  id: string; // backend's id (container id)
  jobId: string;
  runtime?: ContainerRuntime;
  /** Variables every step gets from the sandbox (the egress gateway's proxy variables). */
  env?: Record<string, string>;
}

export interface ExecSpec {
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  /** Written to `path` inside the sandbox before argv runs (argv names it), where the job cannot write. */
  script?: { path: string; content: string };
  /** Files the step may write (GITHUB_ENV...): made empty and writable by the job before it runs; the earlier steps' are removed. */
  writable?: string[];
  timeoutMs: number;
  /** Files read back after the step (GITHUB_ENV, GITHUB_OUTPUT, ...), each capped at maxFileBytes. */
  readBack?: string[];
  maxFileBytes?: number;
}

export type OutputSink = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

/** How a step ended, as plain data (woodpecker's State). */
export interface StepState {
  exitCode: number | null;
  oomKilled: boolean;
  pidsLimited: boolean;
  timedOut: boolean;
  cancelled: boolean;
  /** An infrastructure error (engine gone): not the user's fault. */
  error: string | null;
  /**
   * The whole sandbox stopped during the step (under gVisor, exhausting memory or processes takes the
   * sandbox down with it): what Docker said, e.g. "exit 2". Later steps cannot run.
   */
  sandboxLost?: string | null;
  files: Record<string, string>;
}

export const EXECUTION_BACKEND = Symbol('EXECUTION_BACKEND');

/** Where Kiln writes a step's script in the sandbox: a place the job cannot write. */
export const STEP_SCRIPTS_DIR = '/tmp/kiln';
/** Where a step's own files (GITHUB_ENV...) are: a small place of their own, so filling it cannot keep a script from being written. */
export const STEP_FILES_DIR = '/tmp/kiln/files';
