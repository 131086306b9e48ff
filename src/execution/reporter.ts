import type { EgressReport } from '../common/egress-rules';
import type { Conclusion, StepReason } from './job';
import type { Annotation } from './workflow-commands';

/** An artifact a step uploaded, as the run keeps it. */
export interface RecordedArtifact {
  id: string;
  name: string;
  sizeBytes: number;
  files: number;
  createdAt: string;
  expiresAt: string;
}

/** How a step that ran ended. */
export interface StepEnd {
  outcome: Conclusion;
  /** The outcome after continue-on-error. */
  conclusion: Conclusion;
  exitCode: number | null;
  reason: StepReason | null;
}

/**
 * What the runner tells about one job while it runs it (woodpecker's tracer): the port through which
 * execution/ reports to whoever keeps the records (runs/ implements it on the database). One reporter
 * per job; calls come in the order things happen. The job's outcome is the runner's return value.
 */
export interface JobReporter {
  /**
   * The step's `if:` was false: it is skipped (its start and end are recorded). `name`: the step's name
   * evaluated, when it holds `${{ }}` (as for stepStarted).
   */
  stepSkipped(index: number, name?: string): Promise<void>;
  /** An earlier step stopped the job (`reason`): this step is skipped without starting. */
  stepNotRun(index: number, reason: StepReason): Promise<void>;
  /** The step starts; `name`: its name evaluated, when it held `${{ }}` (the record's name becomes this one). */
  stepStarted(index: number, name?: string): Promise<void>;
  stepFinished(index: number, end: StepEnd): Promise<void>;
  /** The job was cancelled: every step not yet completed is completed as cancelled. */
  cancelled(): Promise<void>;
  /** A workflow command's annotation (`seq`: its order in the job), already masked. */
  annotation(step: number, seq: number, annotation: Annotation): Promise<void>;
  /** The job summary (the steps' GITHUB_STEP_SUMMARY, masked and capped). */
  summary(markdown: string): Promise<void>;
  /** An uploaded artifact (its blob is already in the store); rejects when the run has one of that name. */
  artifactRecorded(artifact: RecordedArtifact): Promise<void>;
  /** An artifact of this run replaced by a new upload of its name (overwrite: true); its blob is the caller's to remove. */
  artifactRemoved(id: string): Promise<void>;
  /** The job's egress report (when it had a gateway), once its steps are over. */
  egress(report: EgressReport): Promise<void>;
  /** The artifacts of this job's run so far (for download-artifact). */
  artifacts(): Promise<RecordedArtifact[]>;
}
