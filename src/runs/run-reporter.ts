import type { EgressReport } from '../common/egress-rules';
import type { JobReporter, RecordedArtifact, StepEnd } from '../execution/reporter';
import type { StepReason } from '../execution/job';
import type { Annotation } from '../execution/workflow-commands';
import type { RunsRepository } from './runs.repository';

/** The runner's reports on one job, written as the run's records (steps, annotations, summary, artifacts). */
export class RunReporter implements JobReporter {
  /** `repo`: the worker's, patient through a brief database outage (see patient.ts). */
  constructor(
    private readonly repo: RunsRepository,
    private readonly runId: string,
    private readonly jobId: string,
  ) {}

  stepSkipped(index: number, name?: string): Promise<void> {
    return this.repo.updateStep(this.jobId, index, {
      status: 'completed',
      outcome: 'skipped',
      conclusion: 'skipped',
      started: true,
      finished: true,
      ...(name !== undefined && { name }),
    });
  }

  stepNotRun(index: number, reason: StepReason): Promise<void> {
    return this.repo.updateStep(this.jobId, index, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', reason, finished: true });
  }

  stepStarted(index: number, name?: string): Promise<void> {
    return this.repo.updateStep(this.jobId, index, { status: 'in_progress', started: true, ...(name !== undefined && { name }) });
  }

  stepFinished(index: number, end: StepEnd): Promise<void> {
    return this.repo.updateStep(this.jobId, index, {
      status: 'completed',
      outcome: end.outcome,
      conclusion: end.conclusion,
      exitCode: end.exitCode,
      reason: end.reason,
      finished: true,
    });
  }

  cancelled(): Promise<void> {
    return this.repo.closeOpenSteps(this.jobId, 'cancelled', 'cancelled');
  }

  annotation(step: number, seq: number, annotation: Annotation): Promise<void> {
    return this.repo.insertAnnotation(this.runId, this.jobId, step, seq, annotation);
  }

  summary(markdown: string): Promise<void> {
    return this.repo.setJobSummary(this.jobId, markdown);
  }

  artifactRecorded(a: RecordedArtifact): Promise<void> {
    return this.repo.insertArtifact({ ...a, runId: this.runId, jobId: this.jobId });
  }

  artifactRemoved(id: string): Promise<void> {
    return this.repo.deleteArtifact(id);
  }

  egress(report: EgressReport): Promise<void> {
    return this.repo.setJobEgress(this.jobId, report);
  }

  artifacts(): Promise<RecordedArtifact[]> {
    return this.repo.artifacts(this.runId);
  }
}
