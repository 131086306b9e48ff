import { EVENT_PATH } from './event-file';
import type { JobInput } from './job';

/** Where the job's sources are unpacked and where steps start (GITHUB_WORKSPACE). */
export const WORKSPACE = '/workspace';

/** The `github` context of a job's expressions. */
export function githubContext(job: JobInput) {
  const c = job.context;
  return {
    sha: c.sha,
    ref: c.ref,
    ref_name: c.ref.replace(/^refs\/(heads|tags)\//, ''),
    repository: c.repository,
    repository_owner: c.repository.split('/')[0] ?? '',
    event_name: c.event,
    event: c.eventPayload ?? {},
    run_id: job.runId,
    run_number: c.runNumber,
    run_attempt: 1,
    job: job.spec.jobId,
    workspace: WORKSPACE,
    server_url: '',
    api_url: '',
    actor: 'kiln',
    workflow: job.workflowName,
    action: '',
    token: '',
  };
}

/** The variables every step starts with: GitHub's defaults (CI, GITHUB_*, RUNNER_*) and KILN. */
export function defaultEnv(job: JobInput): Record<string, string> {
  const g = githubContext(job);
  return {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    KILN: 'true',
    HOME: '/home/runner',
    GITHUB_WORKSPACE: WORKSPACE,
    GITHUB_SHA: g.sha,
    GITHUB_REF: g.ref,
    GITHUB_REF_NAME: g.ref_name,
    GITHUB_REPOSITORY: g.repository,
    GITHUB_REPOSITORY_OWNER: g.repository_owner,
    GITHUB_RUN_ID: job.runId,
    GITHUB_RUN_NUMBER: String(g.run_number),
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_JOB: job.spec.jobId,
    GITHUB_EVENT_NAME: g.event_name,
    GITHUB_WORKFLOW: job.workflowName,
    GITHUB_ACTOR: 'kiln',
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_NAME: 'kiln',
    RUNNER_TEMP: '/tmp',
    RUNNER_ENVIRONMENT: 'self-hosted',
    ...(job.context.eventPayload ? { GITHUB_EVENT_PATH: EVENT_PATH } : {}),
  };
}
