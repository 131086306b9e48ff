import type { HostConfig } from 'dockerode';

/** Resource limits for one sandboxed container. */
export interface SandboxLimits {
  memoryBytes: number;
  nanoCpus: number;
  pids: number;
  tmpfsBytes: number;
  /** largest file a process may write (RLIMIT_FSIZE), bytes */
  fileSizeBytes: number;
  openFiles: number;
}

export const PROBE_LIMITS: SandboxLimits = {
  memoryBytes: 512 * 1024 * 1024,
  nanoCpus: 1_000_000_000,
  pids: 256,
  tmpfsBytes: 64 * 1024 * 1024,
  fileSizeBytes: 64 * 1024 * 1024,
  openFiles: 1024,
};

/** Host threads gVisor's sentry and gofer need besides the job's tasks (seen: `limits.pids: 64` died without it). */
export const RUNSC_THREAD_HEADROOM = 256;

/** A size-capped, in-memory, writable mount; with uid, owned by that user (mode 0755), else world-writable /tmp-style. */
export interface TmpfsMount {
  path: string;
  bytes: number;
  uid?: number;
}

/**
 * The HostConfig every Kiln container gets. Nothing here is taken from user input; callers pass only
 * numbers from the server's own limits. Network is always none.
 */
export function hardenedHostConfig(
  limits: SandboxLimits,
  mounts: TmpfsMount[] = [{ path: '/tmp', bytes: limits.tmpfsBytes }],
  runtime: 'runc' | 'runsc' = 'runc',
): HostConfig {
  const tmpfs: Record<string, string> = {};
  for (const m of mounts) {
    const owner = m.uid === undefined ? 'mode=1777' : `uid=${m.uid},gid=${m.uid},mode=0755`;
    // Docker's tmpfs default is noexec; jobs must run what they build (./configure, a gcc output),
    // so exec is explicit. nosuid and nodev stay: nothing there can gain privileges.
    tmpfs[m.path] = `rw,exec,nosuid,nodev,size=${m.bytes},${owner}`;
  }
  return {
    // runc is the engine's default; runsc (gVisor) adds a user-space kernel between the job and the host.
    Runtime: runtime,
    NetworkMode: 'none',
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    ReadonlyRootfs: true,
    Tmpfs: tmpfs,
    // Under gVisor the host sees the sandbox's own threads (its Go runtime, ~50-100), not the job's
    // processes: the host limit gets that headroom so that a small job limit does not kill the sandbox.
    PidsLimit: runtime === 'runsc' ? limits.pids + RUNSC_THREAD_HEADROOM : limits.pids,
    Memory: limits.memoryBytes,
    MemorySwap: limits.memoryBytes,
    NanoCpus: limits.nanoCpus,
    Ulimits: [
      { Name: 'fsize', Soft: limits.fileSizeBytes, Hard: limits.fileSizeBytes },
      { Name: 'nofile', Soft: limits.openFiles, Hard: limits.openFiles },
    ],
    Init: true,
    Privileged: false,
    AutoRemove: false,
    LogConfig: { Type: 'json-file', Config: { 'max-size': '16m', 'max-file': '1' } },
  };
}

/** Splits Docker's multiplexed attach/logs stream (8-byte frame headers) into stdout and stderr. */
export function demuxDockerStream(buf: Buffer): { stdout: Buffer; stderr: Buffer } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i];
    const size = buf.readUInt32BE(i + 4);
    const chunk = buf.subarray(i + 8, i + 8 + size);
    if (type === 2) err.push(chunk);
    else out.push(chunk);
    i += 8 + size;
  }
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
