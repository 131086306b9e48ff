import { randomBytes } from 'node:crypto';
import * as os from 'node:os';

/**
 * Scratch entries (partial uploads, clones, git homes) carry their owner in their name:
 * `<kind>~<host>~<pid>~<random>`. A sweeper on the same host can then remove the leftovers of a
 * process that is gone (killed mid-upload, crashed mid-clone) at once, instead of waiting for an age limit.
 */
export function scratchName(kind: string): string {
  return `${kind}~${os.hostname()}~${process.pid}~${randomBytes(6).toString('hex')}`;
}

export interface ScratchOwner {
  kind: string;
  host: string;
  pid: number;
}

export function scratchOwner(name: string): ScratchOwner | null {
  const m = /^([a-z-]+)~([^~]+)~(\d+)~[0-9a-f]+/.exec(name);
  return m ? { kind: m[1], host: m[2], pid: Number(m[3]) } : null;
}

/** True when the entry was made on this host by a process that no longer exists. */
export function ownerGone(owner: ScratchOwner | null, host = os.hostname()): boolean {
  if (!owner || owner.host !== host) return false;
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
