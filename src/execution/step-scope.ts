import type { LogWriter } from '../storage/log-store';
import type { ExprContext, StatusFunctions } from '../workflow/expressions';
import type { StepSpec } from '../workflow/model';
import type { JobHandle, StepState } from './backend';
import type { Conclusion, JobInput, StepReason } from './job';
import type { JobReporter } from './reporter';
import type { CommandEffects } from './workflow-commands';

/** What running one step is given: the job, its sandbox, log and reporter, and the step with its expression context. */
export interface StepScope {
  job: JobInput;
  handle: JobHandle;
  out: LogWriter;
  reporter: JobReporter;
  step: StepSpec;
  ctx: ExprContext;
  status: StatusFunctions;
  signal: AbortSignal;
  /** What the job may still upload: the owner's quota less this job's artifacts so far. */
  quota: { artifactBytesLeft: number };
}

/** How a step ended, before continue-on-error. */
export interface StepResult {
  outcome: Conclusion;
  reason: StepReason | null;
  exitCode: number | null;
  outputs: Record<string, string>;
  /** What the sandbox said (script steps only). */
  state?: StepState;
  /** What the step's set-env and add-path commands added (script steps only). */
  commands?: Pick<CommandEffects, 'env' | 'path'>;
}

export function stepSucceeded(): StepResult {
  return { outcome: 'success', reason: null, exitCode: null, outputs: {} };
}

export function stepFailed(reason: StepReason | null = null): StepResult {
  return { outcome: 'failure', reason, exitCode: null, outputs: {} };
}
