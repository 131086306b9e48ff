/** The time and size guard of a clone (git-source.ts): a deadline, a size poll, and killing git when either trips. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GitSourceError, type GitSourceOptions } from './git-policy';

const SIZE_POLL_MS = 150;

type Trip = 'timeout' | 'size';

/** Owns the deadline and the size poll; kills git (and its helpers) when either trips. */
export class CloneGuard {
  private readonly controller = new AbortController();
  private tripped: Trip | undefined;
  private dir: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private poller: NodeJS.Timeout | undefined;
  private readonly expired: Promise<never>;

  constructor(private readonly opts: GitSourceOptions) {
    let expire: (e: Error) => void = () => undefined;
    this.expired = new Promise<never>((_, reject) => {
      expire = reject;
    });
    this.expired.catch(() => undefined);
    this.timer = setTimeout(() => {
      void this.trip('timeout').then(() => expire(this.error()!));
    }, opts.timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Races a step that cannot be aborted (DNS) against the deadline. */
  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.expired]);
  }

  watch(dir: string): void {
    this.dir = dir;
    const poll = async () => {
      await this.checkSize().catch(() => undefined); // the running git step reports the trip
      if (!this.tripped && this.poller) this.poller = setTimeout(poll, SIZE_POLL_MS);
    };
    this.poller = setTimeout(poll, SIZE_POLL_MS);
  }

  /** Measures the dir now; trips (and throws) when over maxBytes. */
  async checkSize(extra = 0): Promise<void> {
    if (!this.dir || this.tripped) return;
    if ((await dirSize(this.dir)) + extra > this.opts.maxBytes) await this.trip('size');
    this.throwIfTripped();
  }

  throwIfTripped(): void {
    const e = this.error();
    if (e) throw e;
  }

  error(): GitSourceError | undefined {
    if (this.tripped === 'timeout') {
      return new GitSourceError('timeout', `the clone took longer than ${this.opts.timeoutMs / 1000} s; try a smaller repository or ref, or try again later`);
    }
    if (this.tripped === 'size') {
      return new GitSourceError('too-large', `the repository is larger than ${formatMiB(this.opts.maxBytes)} MiB; use a smaller repository or ref`);
    }
    return undefined;
  }

  private async trip(reason: Trip): Promise<void> {
    if (this.tripped) return;
    this.tripped = reason;
    // Kill helpers (git-remote-https, index-pack) first: simple-git only signals the git it spawned.
    if (this.dir) await killProcessesIn(this.dir);
    this.controller.abort();
  }

  stop(): void {
    clearTimeout(this.timer);
    if (this.poller) clearTimeout(this.poller);
    this.poller = undefined;
  }
}

function formatMiB(bytes: number): string {
  return String(Math.round((bytes / (1024 * 1024)) * 100) / 100);
}

/** Bytes of regular files and symlinks under dir; tolerant of files vanishing mid-walk. */
async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      total += await dirSize(full);
      continue;
    }
    try {
      total += (await fs.promises.lstat(full)).size;
    } catch {
      // removed while we looked (git renames temp files)
    }
  }
  return total;
}

/** SIGKILLs every process whose cwd is inside dir (our fresh temp dir: only our git and its helpers). */
async function killProcessesIn(dir: string): Promise<void> {
  if (process.platform !== 'linux') return;
  let real: string;
  try {
    real = await fs.promises.realpath(dir);
  } catch {
    return;
  }
  for (const pid of await fs.promises.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cwd = await fs.promises.readlink(`/proc/${pid}/cwd`).catch(() => '');
    if (cwd !== real && !cwd.startsWith(real + path.sep)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
