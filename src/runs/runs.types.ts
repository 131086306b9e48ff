import type { Conclusion, RunContext, StepReason } from '../execution/job';
import type { RecordedArtifact } from '../execution/reporter';
import type { PlannedJob, RunPlan } from '../workflow/model';

export type RunStatus = 'queued' | 'in_progress' | 'completed';
export type JobStatus = 'pending' | 'queued' | 'in_progress' | 'completed';

export type RunSource =
  | { kind: 'tarball'; filename: string; bytes: number; files: number }
  | { kind: 'repo'; repo: string; ref: string; sha: string }
  | { kind: 'command'; files: number };

export interface Run {
  id: string;
  /** The user who submitted it (webhook runs: the repository's owner). */
  ownerId: string | null;
  /** Set for runs started by a registered repository's push. */
  repositoryId?: string | null;
  /** `concurrency` group (webhook runs): a newer run of the group may cancel this one. */
  concurrencyGroup?: string | null;
  status: RunStatus;
  conclusion: Conclusion | null;
  source: RunSource;
  workflowName: string;
  workflowFile: string | null;
  plan: RunPlan;
  context: RunContext;
  cancelRequested: boolean;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Job {
  id: string;
  runId: string;
  position: number;
  key: string;
  /** The job's id in the workflow file (`jobs.<job_id>`, `github.job`); matrix jobs share it, `key` is unique in the run. */
  workflowJobId: string;
  name: string;
  environment: string;
  status: JobStatus;
  conclusion: Conclusion | null;
  error: string | null;
  spec: PlannedJob;
  outputs: Record<string, string>;
  attempts: number;
  /** The worker (KILN_WORKER_NAME) that last took the job. */
  worker: string | null;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Step {
  jobId: string;
  index: number;
  name: string;
  status: 'pending' | 'in_progress' | 'completed';
  outcome: Conclusion | null;
  conclusion: Conclusion | null;
  exitCode: number | null;
  reason: StepReason | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Artifact extends RecordedArtifact {
  runId: string;
  jobId: string;
}
