/** Child processes with timing, and the memory of a running process (/proc/<pid>/status). */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Ran {
  code: number | null;
  /** stdout, unless it was counted only */
  stdout: string;
  stderr: string;
  /** wall time from spawn to exit, ms */
  ms: number;
  /** ms from spawn to the first byte on stdout (when any came) */
  firstOutMs: number | null;
  /** bytes seen on stdout */
  outBytes: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** a file to feed on stdin */
  stdinFile?: string;
  /** 'count': stdout is read and counted, not kept (for 200 MiB of output); 'file': written to outFile */
  stdout?: 'keep' | 'count' | 'file';
  outFile?: string;
  timeoutMs?: number;
}

/** Runs a command to completion; never throws for a non-zero exit (the caller checks `code`). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const outFd = opts.stdout === 'file' ? fs.openSync(opts.outFile!, 'w') : null;
    const inFd = opts.stdinFile ? fs.openSync(opts.stdinFile, 'r') : null;
    const p = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: [inFd ?? 'ignore', outFd ?? 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let outBytes = 0;
    let firstOutMs: number | null = null;
    p.stdout?.on('data', (d: Buffer) => {
      if (firstOutMs === null) firstOutMs = performance.now() - t0;
      outBytes += d.length;
      if (opts.stdout !== 'count' && stdout.length < 1 << 20) stdout += d.toString();
    });
    p.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 16) stderr += d.toString();
    });
    const timer = opts.timeoutMs ? setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs) : null;
    p.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code) => {
      if (timer) clearTimeout(timer);
      if (outFd !== null) fs.closeSync(outFd);
      if (inFd !== null) fs.closeSync(inFd);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, firstOutMs, outBytes });
    });
  });
}

/** Runs a command and fails with its stderr unless it exits 0; returns stdout trimmed. */
export async function must(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')}... exited ${r.code}: ${r.stderr.trim().slice(-800)}`);
  return r.stdout.trim();
}

export interface Memory {
  /** resident set now, bytes */
  rss: number;
  /** the process's peak resident set so far (VmHWM), bytes */
  hwm: number;
}

/** VmRSS and VmHWM of a live process; null once it is gone. */
export function memoryOf(pid: number): Memory | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples a process's VmRSS every `everyMs` until stopped; keeps the largest seen. */
export class RssSampler {
  private timer: NodeJS.Timeout;
  private peak = 0;
  private samples = 0;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.timer = setInterval(() => this.take(), everyMs);
    this.take();
  }

  private take(): void {
    const m = memoryOf(this.pid);
    if (!m) return;
    this.samples++;
    if (m.rss > this.peak) this.peak = m.rss;
  }

  stop(): { peakRss: number; hwm: number; samples: number } {
    clearInterval(this.timer);
    this.take();
    return { peakRss: this.peak, hwm: memoryOf(this.pid)?.hwm ?? NaN, samples: this.samples };
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux for every common architecture). */
const USER_HZ = 100;

/** CPU time (user + system) a live process has used, seconds; NaN once it is gone. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: the fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ; // utime, stime (fields 14 and 15)
  } catch {
    return NaN;
  }
}
