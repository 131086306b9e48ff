import type { Conclusion, StepReason } from '../execution/job';
import type { Artifact, Job, JobStatus, Run, Step } from './runs.types';

/** The database's rows of runs, jobs, steps and artifacts, and the records they are read into. */

export interface RunRow {
  id: string;
  owner_id: string | null;
  repository_id?: string | null;
  concurrency_group?: string | null;
  status: string;
  conclusion: string | null;
  source_kind: string;
  source: string;
  workflow_name: string;
  workflow_file: string | null;
  plan: string;
  context: string;
  cancel_requested: number;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  run_number?: number | null;
}
export interface JobRow {
  id: string;
  run_id: string;
  position: number;
  job_key: string;
  job_id: string;
  name: string;
  environment: string;
  status: string;
  conclusion: string | null;
  error: string | null;
  spec: string;
  outputs: string | null;
  attempts: number;
  worker: string | null;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}
export interface StepRow {
  job_id: string;
  idx: number;
  name: string;
  status: string;
  outcome: string | null;
  conclusion: string | null;
  exit_code: number | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
}
export interface ArtifactRow {
  id: string;
  run_id: string;
  job_id: string;
  name: string;
  size_bytes: number;
  files: number;
  created_at: string;
  expires_at: string;
}

/** The row's run number is the one that counts (runs recorded before it was stored were numbered by the migration). */
function withRunNumber(context: Run['context'], runNumber: number | null | undefined): Run['context'] {
  return runNumber === null || runNumber === undefined ? context : { ...context, runNumber: Number(runNumber) };
}

export function toRun(r: RunRow): Run {
  return {
    id: r.id,
    ownerId: r.owner_id ?? null,
    repositoryId: r.repository_id ?? null,
    concurrencyGroup: r.concurrency_group ?? null,
    status: r.status as Run['status'],
    conclusion: r.conclusion as Conclusion | null,
    source: JSON.parse(r.source),
    workflowName: r.workflow_name,
    workflowFile: r.workflow_file,
    plan: JSON.parse(r.plan),
    context: withRunNumber(JSON.parse(r.context), r.run_number),
    cancelRequested: Boolean(r.cancel_requested),
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export function toJob(r: JobRow): Job {
  return {
    id: r.id,
    runId: r.run_id,
    position: Number(r.position),
    key: r.job_key,
    workflowJobId: r.job_id,
    name: r.name,
    environment: r.environment,
    status: r.status as JobStatus,
    conclusion: r.conclusion as Conclusion | null,
    error: r.error,
    spec: JSON.parse(r.spec),
    outputs: r.outputs ? JSON.parse(r.outputs) : {},
    attempts: Number(r.attempts),
    worker: r.worker ?? null,
    queuedAt: r.queued_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export function toStep(r: StepRow): Step {
  return {
    jobId: r.job_id,
    index: Number(r.idx),
    name: r.name,
    status: r.status as Step['status'],
    outcome: r.outcome as Conclusion | null,
    conclusion: r.conclusion as Conclusion | null,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    reason: r.reason as StepReason | null,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export function toArtifact(r: ArtifactRow): Artifact {
  return {
    id: r.id,
    runId: r.run_id,
    jobId: r.job_id,
    name: r.name,
    sizeBytes: Number(r.size_bytes),
    files: Number(r.files),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}
