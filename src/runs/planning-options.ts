import { Inject, Injectable } from '@nestjs/common';
import { CatalogueService } from '../catalogue/catalogue.service';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import type { RunContext } from '../execution/job';
import type { PlanOptions } from '../workflow/model';

/** What is known of a run when its jobs are planned: the `github` context's facts, and its inputs. */
export function planContext(context: RunContext): NonNullable<PlanOptions['context']> {
  return {
    github: {
      event_name: context.event,
      ref: context.ref,
      ref_name: context.ref.replace(/^refs\/(heads|tags)\//, ''),
      sha: context.sha,
      repository: context.repository,
      repository_owner: context.repository.split('/')[0] ?? '',
      event: context.eventPayload ?? {},
    },
    inputs: context.inputs ?? {},
  };
}

/** What a plan may differ in per submission: its label map, its source's files, strictness, what is known of the run. */
export type PlanSpecifics = Pick<PlanOptions, 'readFile' | 'strict' | 'context'> & { labelMap?: Record<string, string> };

/**
 * The server's side of planning (published environments, limits, egress rules, label map), in one
 * place for the submission (RunsService) and for jobs planned when their needs are done (RunScheduler).
 */
@Injectable()
export class PlanningOptions {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly catalogue: CatalogueService,
  ) {}

  async options(specifics: PlanSpecifics = {}): Promise<PlanOptions> {
    const { labelMap, ...rest } = specifics;
    return {
      ...(await this.catalogue.planning()),
      labelMap: { ...this.config.labelMap, ...(labelMap ?? {}) },
      defaultTimeoutMinutes: this.config.jobs.timeoutMinutes,
      maxTimeoutMinutes: this.config.jobs.timeoutMaxMinutes,
      maxJobs: 256,
      maxStepsPerJob: 100,
      maxLimits: {
        memoryBytes: this.config.jobs.memoryMaxBytes,
        cpus: this.config.jobs.cpusMax,
        pids: this.config.jobs.pidsMax,
        workspaceBytes: this.config.jobs.workspaceMaxBytes,
      },
      egress: { allow: this.config.egress.allow, internal: this.config.egress.internal },
      ...rest,
    };
  }
}
