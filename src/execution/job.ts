import type { PlannedJob } from '../workflow/model';

/** How a job or a step ended, in GitHub's words. */
export type Conclusion = 'success' | 'failure' | 'cancelled' | 'skipped';
/** Why a step ended the way it did, beyond its exit code. */
export type StepReason =
  'timeout' | 'oom-killed' | 'pids-limit' | 'sandbox-lost' | 'cancelled' | 'infrastructure' | 'no-files' | 'artifact-error' | 'job-timeout';

/** What the `github` context and GITHUB_* variables say about this run. */
export interface RunContext {
  sha: string;
  ref: string;
  repository: string;
  event: string;
  runNumber: number;
  /** The `inputs` context: workflow_dispatch inputs with their declared defaults, typed (absent in runs recorded before inputs). */
  inputs?: Record<string, string | number | boolean>;
  /** `github.event`: the webhook's payload (capped), or `{inputs, ref, workflow}` of a dispatch; absent = `{}`. */
  eventPayload?: Record<string, unknown>;
}

/** A needed job's result, as the `needs` context shows it. */
export interface NeedResult {
  result: Conclusion;
  outputs: Record<string, string>;
}

/** Everything the runner needs to run one job: plain data, taken from the run's and the job's records by the caller. */
export interface JobInput {
  runId: string;
  /** The job's record id: names its sandbox and its log (its key under `jobs:` is spec.jobId). */
  jobId: string;
  spec: PlannedJob;
  workflowName: string;
  context: RunContext;
  /** False when the run has nothing to unpack into the workspace (a command submitted without files). */
  hasSources: boolean;
  needs: Record<string, NeedResult>;
  /** The run owner's secrets, for ${{ secrets.NAME }}; masked in the log. */
  secrets: Record<string, string>;
  /** What the owner's artifact storage quota has left (Infinity: no quota). */
  artifactBytesLeft: number;
}

export interface JobOutcome {
  conclusion: Conclusion;
  error: string | null;
  outputs?: Record<string, string>;
  /** True when the job failed before any step started (safe to retry). */
  beforeSteps: boolean;
}

/** Thrown when the infrastructure failed before any step ran: the queue retries these. */
export class RetryableJobError extends Error {}
