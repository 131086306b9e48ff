import { summaryToHtml } from '../http/markdown-html';
import { RunsRepository } from './runs.repository';
import type { Run } from './runs.types';

/** A run as the API answers it: its jobs with their steps, summaries, annotations, artifacts and links. */
export async function runView(repo: RunsRepository, run: Run) {
  const runId = run.id;
  const [jobs, steps, artifacts, annotations, summaries, egress] = await Promise.all([
    repo.jobs(runId),
    repo.steps(runId),
    repo.artifacts(runId),
    repo.annotations(runId),
    repo.jobSummaries(runId),
    repo.jobEgress(runId),
  ]);
  const base = `/api/v1/runs/${run.id}`;
  return {
    id: run.id,
    status: run.status,
    conclusion: run.conclusion,
    error: run.error,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    source: run.source,
    workflow: { name: run.workflowName, file: run.workflowFile },
    context: { ...run.context, eventPayload: undefined }, // the payload can be 256 KiB: the view gives the inputs, not it
    jobs: await Promise.all(
      jobs.map(async (j) => ({
        id: j.id,
        key: j.key,
        jobId: j.workflowJobId, // the API's name for the job's id in the workflow file
        name: j.name,
        environment: j.environment,
        matrix: j.spec.matrix,
        needs: j.spec.needs,
        status: j.status,
        conclusion: j.conclusion,
        error: j.error,
        /** Decided at submission: `not-runnable` (this server cannot run it) or `skipped` (its if: was already false); the reason is in error. */
        verdict: j.spec.verdict?.kind ?? null,
        /** True while the job waits for its needs to be planned (its matrix or runs-on reads needs). */
        plannedLate: Boolean(j.spec.deferred),
        attempts: j.attempts,
        worker: j.worker,
        startedAt: j.startedAt,
        finishedAt: j.finishedAt,
        steps: steps
          .filter((s) => s.jobId === j.id)
          .map((s) => ({
            index: s.index,
            name: s.name,
            status: s.status,
            outcome: s.outcome,
            conclusion: s.conclusion,
            exitCode: s.exitCode,
            reason: s.reason,
            startedAt: s.startedAt,
            finishedAt: s.finishedAt,
          })),
        outputs: j.outputs,
        summary: summaries[j.id] ?? null,
        summaryHtml: summaries[j.id] ? await summaryToHtml(summaries[j.id]) : null,
        // What the job reached through its egress gateway; null when it had none (no network at all).
        egress: egress[j.id] ?? null,
        logs: `${base}/logs?job=${j.id}`,
      })),
    ),
    annotations: annotations.map((a) => ({ ...a, job: jobs.find((j) => j.id === a.jobId)?.key ?? a.jobId })),
    artifacts: artifacts.map((a) => ({
      name: a.name,
      sizeBytes: a.sizeBytes,
      files: a.files,
      createdAt: a.createdAt,
      expiresAt: a.expiresAt,
      url: `${base}/artifacts/${encodeURIComponent(a.name)}`,
    })),
    urls: { self: base, logs: `${base}/logs`, artifacts: `${base}/artifacts`, cancel: `${base}/cancel` },
  };
}

/** A run in a list: its state, workflow and source, and where to read more. */
export function runListItem(r: Run) {
  return {
    id: r.id,
    status: r.status,
    conclusion: r.conclusion,
    workflow: r.workflowName,
    source: r.source,
    createdAt: r.createdAt,
    finishedAt: r.finishedAt,
    url: `/api/v1/runs/${r.id}`,
  };
}
