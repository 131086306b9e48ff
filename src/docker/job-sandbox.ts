import type Docker from 'dockerode';
import { STEP_FILES_DIR, STEP_SCRIPTS_DIR } from '../execution/backend';
import type { ContainerRuntime, JobSandboxLimits } from '../execution/backend';
import { hardenedHostConfig } from './hardening';

/** Steps run as the image's `runner` user; the container's own keeper process runs as nobody, so a step can signal every process of its own but never the keeper. */
export const JOB_USER = '1001:1001';
export const JOB_UID = 1001;
export const KEEPER_UID = 65534;
export const KEEPER_USER = `${KEEPER_UID}:${KEEPER_UID}`;

/** On every container Kiln makes for jobs (its own or a warm one): how the reaper finds them. */
export const MANAGED_LABEL = 'kiln.managed';
export const JOB_LABEL = 'kiln.job';
export const RUN_LABEL = 'kiln.run';
export const RUNTIME_LABEL = 'kiln.runtime';
/** Which Kiln (deployments sharing a Redis share a queue prefix) a container belongs to. */
export const DEPLOYMENT_LABEL = 'kiln.deployment';
/** On a warm pool's idle sandbox: its owner process, `pool~<host>~<pid>~<hex>` (see scratch.ts). */
export const POOL_LABEL = 'kiln.pool';

/** A job's container is named for it: one made for the job, or a warm sandbox it took (renamed). */
export function jobContainerName(jobId: string): string {
  return `kiln-job-${jobId}`;
}

/** The job id in a job container's name as the engine lists it (with a leading slash), if it is one. */
export function jobIdOfName(name: string): string | undefined {
  return /^\/?kiln-job-(.+)$/.exec(name)?.[1];
}

/** Size of the tmpfs of Kiln's step scripts (STEP_SCRIPTS_DIR): written only by Kiln (as the keeper, nobody). */
const KILN_SCRIPTS_BYTES = 64 * 1024 * 1024;
/**
 * Size of STEP_FILES_DIR, where a step's own files live (GITHUB_ENV, GITHUB_OUTPUT, GITHUB_PATH,
 * GITHUB_STEP_SUMMARY, GITHUB_STATE): a tmpfs of its own, so that filling it cannot keep a script from being written; Kiln empties it and
 * makes the step's files afresh before every step. Each file is read back up to 1 MiB.
 */
export const STEP_FILES_BYTES = 8 * 1024 * 1024;

/** The HostConfig of every job sandbox (warm or made for the job): the hardening, its limits, its tmpfs mounts. */
export function jobHostConfig(l: JobSandboxLimits, runtime: ContainerRuntime): Docker.HostConfig {
  return hardenedHostConfig(
    { memoryBytes: l.memoryBytes, nanoCpus: l.nanoCpus, pids: l.pids, tmpfsBytes: l.tmpBytes, fileSizeBytes: l.fileSizeBytes, openFiles: l.openFiles },
    [
      { path: '/workspace', bytes: l.workspaceBytes, uid: JOB_UID },
      { path: '/tmp', bytes: l.tmpBytes },
      // Kiln's step scripts: the keeper's (nobody), mode 0755, so the job can neither write nor fill it,
      // and a job that fills every place it can write still runs its cleanup steps. The step's own files
      // (GITHUB_ENV...) have a small tmpfs of their own inside it, also the keeper's: Kiln makes each file
      // there (mode 0666) before the step; the job can write those files, not add others. Docker mounts
      // them after /tmp, deepest last (mounts are sorted by depth).
      { path: STEP_SCRIPTS_DIR, bytes: KILN_SCRIPTS_BYTES, uid: KEEPER_UID },
      { path: STEP_FILES_DIR, bytes: STEP_FILES_BYTES, uid: KEEPER_UID },
      { path: '/home/runner', bytes: l.tmpBytes, uid: JOB_UID },
    ],
    runtime,
  );
}
