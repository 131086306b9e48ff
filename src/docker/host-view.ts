import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** The two cgroup counters a step is judged by: fork refusals and OOM kills since the sandbox started. */
export interface Counters {
  pidsMax: number;
  oomKill: number;
}

/**
 * A runc sandbox seen from the host, when Kiln runs beside its engine (same pid namespace and cgroupfs):
 * its cgroup counters read from /sys/fs/cgroup, and Kiln's per-step files read through /proc/<pid>/root.
 * Both answer in well under a millisecond where an exec in the sandbox costs ~100 ms. Anything that does
 * not look exactly as expected (an engine elsewhere, Kiln in a container, gVisor) gives null, and the
 * caller uses its exec reader instead.
 *
 * The files are the job's: it may replace one with a symlink (to a host path, as seen from here), a FIFO
 * or something huge. So the last component is opened with O_NOFOLLOW and O_NONBLOCK, only a regular file
 * is read, at most maxBytes of it. The directories above it (/tmp/kiln) are mount points the job cannot
 * replace. The keeper's pid is checked to be the sandbox's before and after every read, so a recycled pid
 * never points the reads at another process's files.
 */
export class SandboxHostView {
  private constructor(
    private readonly containerId: string,
    private readonly pid: number,
    private readonly pidsDir: string,
    private readonly memoryDir: string,
    private readonly v2: boolean,
    private readonly procRoot: string,
  ) {}

  /** The view of the container whose keeper (its init) is `pid` on this host, or null when it cannot be had. */
  static async open(containerId: string, pid: number | undefined, cgroupRoot = '/sys/fs/cgroup', procRoot = '/proc'): Promise<SandboxHostView | null> {
    if (!pid || pid <= 0 || !/^[0-9a-f]{64}$/.test(containerId)) return null;
    const lines = await readCgroupFile(procRoot, pid);
    if (!lines || !lines.some((l) => l.includes(containerId))) return null;
    let view: SandboxHostView;
    const unified = lines.find((l) => l.startsWith('0::'));
    if (lines.length === 1 && unified) {
      const dir = path.join(cgroupRoot, unified.slice(3));
      view = new SandboxHostView(containerId, pid, dir, dir, true, procRoot);
    } else {
      const pids = cgroupV1(lines, 'pids');
      const memory = cgroupV1(lines, 'memory');
      if (pids === null || memory === null) return null;
      view = new SandboxHostView(containerId, pid, path.join(cgroupRoot, 'pids', pids), path.join(cgroupRoot, 'memory', memory), false, procRoot);
    }
    return (await view.counters()) ? view : null;
  }

  /** The counters now, or null when they cannot be read (the sandbox gone, the files not there). */
  async counters(): Promise<Counters | null> {
    const counters = await this.readCounters();
    return counters && (await this.stillOurs()) ? counters : null;
  }

  /**
   * After a step: the counters, the files (absolute paths inside the sandbox) that exist as regular
   * files (at most maxBytes of each), and how many tasks of user `uid` (the job's) are left in the
   * sandbox; null when the sandbox cannot be seen (the caller then asks inside it). More than no task
   * left means the step left processes running (a daemon, a fork bomb still growing): the caller asks
   * inside the sandbox then too, where not being able to start is itself the answer. (The keeper, init
   * and `sleep`, runs as another user.)
   */
  async afterStep(uid: number, files: string[], maxBytes: number): Promise<{ counters: Counters; files: Record<string, string>; jobTasks: number } | null> {
    if (!(await this.stillOurs())) return null;
    try {
      const [counters, jobTasks, read] = await Promise.all([this.readCounters(), this.tasksOf(uid), this.readFiles(files, maxBytes)]);
      return counters && (await this.stillOurs()) ? { counters, files: read, jobTasks } : null;
    } catch {
      return null;
    }
  }

  /**
   * True while the keeper is still the sandbox's and no task of user `uid` (the job's) is in it: then
   * nothing but Kiln can change the sandbox's files. Checked before and after reading them in place.
   */
  async quiet(uid: number): Promise<boolean> {
    try {
      return (await this.stillOurs()) && (await this.tasksOf(uid)) === 0 && (await this.stillOurs());
    } catch {
      return false;
    }
  }

  /** Where an absolute path of the sandbox is seen from here (through the keeper's root). */
  pathOf(inside: string): string {
    return path.join(this.procRoot, String(this.pid), 'root', inside);
  }

  private async readCounters(): Promise<Counters | null> {
    try {
      const [pids, memory] = await Promise.all([
        fsp.readFile(path.join(this.pidsDir, 'pids.events'), 'utf8'),
        fsp.readFile(path.join(this.memoryDir, this.v2 ? 'memory.events' : 'memory.oom_control'), 'utf8'),
      ]);
      const pidsMax = field(pids, 'max');
      const oomKill = field(memory, 'oom_kill');
      return pidsMax === null || oomKill === null ? null : { pidsMax, oomKill };
    } catch {
      return null;
    }
  }

  /** Tasks (processes and threads) of user `uid` in the sandbox's cgroup; one that exits while looked at is not counted. */
  private async tasksOf(uid: number): Promise<number> {
    const ids = (await fsp.readFile(path.join(this.pidsDir, this.v2 ? 'cgroup.threads' : 'tasks'), 'utf8')).split('\n').filter(Boolean);
    let n = 0;
    for (const id of ids) {
      const status = await fsp.readFile(path.join(this.procRoot, id, 'status'), 'utf8').catch(() => '');
      if (/^Uid:\s+(\d+)/m.exec(status)?.[1] === String(uid)) n++;
    }
    return n;
  }

  private async readFiles(files: string[], maxBytes: number): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const f of files) {
      const text = await readRegular(this.pathOf(f), maxBytes);
      if (text !== null) out[f] = text;
    }
    return out;
  }

  private async stillOurs(): Promise<boolean> {
    const lines = await readCgroupFile(this.procRoot, this.pid);
    return Boolean(lines?.some((l) => l.includes(this.containerId)));
  }
}

async function readCgroupFile(procRoot: string, pid: number): Promise<string[] | null> {
  try {
    return (await fsp.readFile(path.join(procRoot, String(pid), 'cgroup'), 'utf8')).split('\n').filter(Boolean);
  } catch {
    return null;
  }
}

/** The path of a cgroup v1 controller in /proc/<pid>/cgroup lines (`4:memory:/docker/<id>`). */
function cgroupV1(lines: string[], controller: string): string | null {
  for (const l of lines) {
    const [, controllers, p] = /^\d+:([^:]*):(.*)$/.exec(l) ?? [];
    if (controllers?.split(',').includes(controller)) return p;
  }
  return null;
}

/** `name N` from a cgroup events file; null when absent. */
function field(text: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** A regular file's first maxBytes as UTF-8; null when it is absent or not a regular file (never follows a symlink). */
async function readRegular(file: string, maxBytes: number): Promise<string | null> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO') return null;
    throw e;
  }
  try {
    const stat = await fh.stat();
    if (!stat.isFile()) return null;
    // As much as the file holds now (as `head -c` would read), at most maxBytes.
    const buf = Buffer.allocUnsafe(Math.min(stat.size, maxBytes));
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    await fh.close();
  }
}
