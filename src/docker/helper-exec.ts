import type Docker from 'dockerode';
import { PassThrough, Readable } from 'node:stream';
import { demux } from './demux';
import { JOB_USER } from './job-sandbox';

/** Deadline of Kiln's own short helpers in the sandbox (post-step reader, signals). */
const HELPER_TIMEOUT_MS = 30_000;
export class HelperTimeout extends Error {}
/** A helper exec: its stdin, its user (the job's by default), the most stdout kept (the rest is read and dropped). */
export interface RunOptions {
  stdin?: Readable;
  user?: string;
  maxStdout?: number;
}
export interface RunResult {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
  truncated: boolean;
}

/** Runs a short command as the job user to completion, with optional stdin. */
/**
 * Kiln's helpers run as the job user, so the job can signal them (SIGSTOP every new shell): each has a
 * deadline, and a helper that misses it means the sandbox is the job's to lose, never the worker's slot.
 */
export async function runHelper(c: Docker.Container, cmd: string[], opts: RunOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HelperTimeout(
            `Kiln's helper in the sandbox did not finish within ${(opts.timeoutMs ?? HELPER_TIMEOUT_MS) / 1000} s (the job stopped or starved it)`,
          ),
        ),
      opts.timeoutMs ?? HELPER_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([runUnbounded(c, cmd, opts), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function runUnbounded(c: Docker.Container, cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const exec = await c.exec({ Cmd: cmd, AttachStdin: Boolean(opts.stdin), AttachStdout: true, AttachStderr: true, User: opts.user ?? JOB_USER, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: Boolean(opts.stdin) })) as unknown as NodeJS.ReadWriteStream;
  const out: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  let stderr = '';
  const o = new PassThrough();
  const e = new PassThrough();
  o.on('data', (d: Buffer) => {
    if (truncated || (kept += d.length) > (opts.maxStdout ?? Infinity))
      truncated = true; // read on, keep no more
    else out.push(d);
  });
  e.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  demux(stream as unknown as Readable, o, e);
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  if (opts.stdin) {
    opts.stdin.on('error', (err) => (stream as unknown as { destroy: (e: Error) => void }).destroy(err));
    opts.stdin.pipe(stream as unknown as NodeJS.WritableStream);
  }
  await ended;
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(out), stderr, truncated };
}
