import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Kiln's data folder holds other users' logs, sources and artifacts, the database and the admin token:
 * no one but Kiln's own user may read it. Folders Kiln makes there are 0700 and files 0600, set
 * explicitly (chmod), so whatever umask Kiln was started with does not matter.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * `mkdir -p dir`: the folders it makes are 0700, and `dir` itself if it existed (a folder an older Kiln
 * made 0755) unless `leaveExisting` (the data folder itself: the operator's). Folders above are left alone.
 */
export function privateDirSync(dir: string, leaveExisting = false): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (leaveExisting && !first) return;
  for (const d of madeBy(dir, first)) fs.chmodSync(d, PRIVATE_DIR_MODE);
}

export async function privateDir(dir: string): Promise<void> {
  const first = await fs.promises.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await Promise.all(madeBy(dir, first).map((d) => fs.promises.chmod(d, PRIVATE_DIR_MODE)));
}

/** Opens (creating if need be) a file for appending, mode 0600 whatever the umask; returns the fd. */
export function openPrivateAppend(file: string): number {
  const fd = fs.openSync(file, 'a', PRIVATE_FILE_MODE);
  try {
    fs.fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * Makes `file` 0600 if it exists (a file another library created: SQLite's). A file that is not Kiln's
 * user's to chmod (EPERM: an operator's own database file) is left as it is.
 */
export function privateFileSync(file: string): void {
  try {
    fs.chmodSync(file, PRIVATE_FILE_MODE);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EPERM') throw e;
  }
}

/** `dir`, and every folder above it up to `first` (the topmost one mkdir made), when mkdir made any. */
export function madeBy(dir: string, first: string | undefined): string[] {
  const out = [dir];
  if (!first) return out;
  for (let d = path.dirname(dir); d.startsWith(first) && d !== path.dirname(d); d = path.dirname(d)) out.push(d);
  return out;
}
