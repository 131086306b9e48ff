import type { KilnConfig } from '../config/config';
import type { JobLimits } from '../workflow/model';
import type { ContainerRuntime, JobSandboxLimits } from './backend';

/** Sandbox limits from a job's `limits:` over the configured defaults (no `limits`: the defaults, as the warm pool makes them). */
export function sandboxLimits(config: KilnConfig, l: JobLimits = {}): JobSandboxLimits {
  const j = config.jobs;
  return {
    memoryBytes: l.memoryBytes ?? j.memoryBytes,
    nanoCpus: Math.round((l.cpus ?? j.cpus) * 1e9),
    pids: l.pids ?? j.pids,
    workspaceBytes: l.workspaceBytes ?? j.workspaceBytes,
    tmpBytes: j.tmpBytes,
    fileSizeBytes: Math.max(l.workspaceBytes ?? j.workspaceBytes, j.tmpBytes) * 2,
    openFiles: 4096,
  };
}

/** The operator's choice only: KILN_RUNSC_ENVIRONMENTS names environments that always run under gVisor; the rest get KILN_RUNTIME. */
export function runtimeFor(config: KilnConfig, environment: string): ContainerRuntime {
  return config.runscEnvironments.includes(environment) ? 'runsc' : config.runtime;
}

export function mib(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${Math.round(bytes / 1024 / 1024)} MiB`;
}
