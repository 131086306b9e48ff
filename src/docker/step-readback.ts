import type { Logger } from '@nestjs/common';
import type Docker from 'dockerode';
import type { JobHandle } from '../execution/backend';
import type { Metrics } from '../common/metrics';
import { HelperTimeout, runHelper } from './helper-exec';
import type { Counters } from './host-view';
import { JOB_UID } from './job-sandbox';
import type { SandboxState } from './sandbox-state';

/**
 * Reads the cgroup counters (v1 or v2 paths; only under runc: gVisor has no cgroupfs inside, and this
 * release's sandbox can crash when it is read) and the requested files, length-prefixed so any content
 * survives. Symlinks are not followed, as SandboxHostView does not follow them: both readers agree.
 * Used where the sandbox cannot be seen from the host (see SandboxHostView).
 */
const POST_STEP_SCRIPT = `
if [ "$1" = cgroup ]; then
for f in /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events; do [ -r "$f" ] && sed -n 's/^max /pids_max /p' "$f"; done
for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do [ -r "$f" ] && sed -n 's/^oom_kill /oom_kill /p' "$f"; done
fi
shift
max=$1; shift
for f in "$@"; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then n=$(head -c "$max" "$f" | wc -c); printf 'file %s %s\\n' "$n" "$f"; head -c "$max" "$f"; fi
done
echo end
`;

/** A sandbox's counters and the step's files after a step; execFailed when Kiln's reader could not run in it. */
export interface ReadBack {
  counters: Counters | null;
  files: Record<string, string>;
  execFailed: boolean;
}

/** The post-step read-back: the cgroup counters and the step's own files (GITHUB_ENV...), from the host or by an exec. */
export class StepReadBack {
  constructor(
    private readonly state: SandboxState,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * The counters and files after a step: from the host when the sandbox can be seen from here and the
   * step left nothing running in it, else by the reader exec (whose failing to start tells of a process
   * table the step's leftovers filled).
   */
  async afterStep(c: Docker.Container, job: JobHandle, files: string[], maxBytes: number): Promise<ReadBack> {
    const view = this.state.views.get(job.id);
    if (view) {
      const seen = await view.afterStep(JOB_UID, files, maxBytes);
      if (seen?.jobTasks === 0) {
        this.metrics.stepReadbacks.inc({ how: 'host' });
        return { counters: seen.counters, files: seen.files, execFailed: false };
      }
      if (!seen) this.state.views.delete(job.id);
    }
    this.metrics.stepReadbacks.inc({ how: 'exec' });
    return this.postStep(c, job, files, maxBytes);
  }

  async postStep(c: Docker.Container, job: JobHandle, files: string[], maxBytes: number): Promise<ReadBack> {
    let res: { exitCode: number; stdout: Buffer; stderr: string };
    const cgroup = job.runtime === 'runsc' ? 'nocgroup' : 'cgroup';
    try {
      res = await runHelper(c, ['sh', '-c', POST_STEP_SCRIPT, 'post', cgroup, String(maxBytes), ...files]);
    } catch (e) {
      if (e instanceof HelperTimeout) {
        this.log.warn(`job ${job.jobId}: ${e.message}; stopping its sandbox`);
        await c.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      }
      return { counters: null, files: {}, execFailed: true };
    }
    if (res.exitCode !== 0 && !res.stdout.includes('end\n')) return { counters: null, files: {}, execFailed: true };
    return { ...parsePostStep(res.stdout), execFailed: false };
  }
}

export function parsePostStep(out: Buffer): { counters: Counters | null; files: Record<string, string> } {
  const files: Record<string, string> = {};
  let pidsMax: number | null = null;
  let oomKill: number | null = null;
  let i = 0;
  while (i < out.length) {
    const nl = out.indexOf(10, i);
    if (nl < 0) break;
    const line = out.subarray(i, nl).toString();
    i = nl + 1;
    if (line.startsWith('pids_max ')) pidsMax = Number(line.slice(9));
    else if (line.startsWith('oom_kill ')) oomKill = Number(line.slice(9));
    else if (line.startsWith('file ')) {
      const m = /^file (\d+) (.+)$/.exec(line);
      if (!m) break;
      const n = Number(m[1]);
      files[m[2]] = out.subarray(i, i + n).toString('utf8');
      i += n;
    } else if (line === 'end') break;
  }
  return { counters: pidsMax === null && oomKill === null ? null : { pidsMax: pidsMax ?? 0, oomKill: oomKill ?? 0 }, files };
}
