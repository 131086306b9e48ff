// Safety gate for tarballs that come from strangers (uploaded sources, artifacts out of job
// containers). Archives are parsed as a stream and never extracted on the host: every entry is
// checked and a clean tar (normalized names, tame modes, fixed owner) is re-packed to a file.
//
// The gate's files: tar-safety.ts (this file: limits, results, the refusal error and its wording),
// tar-entries.ts (the per-entry rules), tar-streams.ts (decoding and writing streams),
// tar-sanitize.ts (sanitizeTar, readFilesFromTar), tar-pack.ts (packFiles) and tree-pack.ts (packTree).

export interface TarLimits {
  maxEntries: number;
  maxDepth: number;
  maxPathLength: number;
  maxFileBytes: number;
  maxTotalBytes: number;
  maxCompressedBytes: number;
}

export const MiB = 1024 * 1024;

export const DEFAULT_SOURCE_LIMITS: TarLimits = Object.freeze({
  maxEntries: 20000,
  maxDepth: 32,
  maxPathLength: 1024,
  maxFileBytes: 256 * MiB,
  maxTotalBytes: 512 * MiB,
  maxCompressedBytes: 256 * MiB,
});

/**
 * What kind of refusal an ArchiveError is, for callers to act on (the HTTP status of a submission is
 * chosen from it in runs/source-status.ts); the message is for people and may be reworded.
 */
export type ArchiveErrorCode =
  /** not a valid tar or tar.gz; an entry that is malformed (data on a directory, no name, content not a string) */
  | 'invalid'
  /** nothing to pack: no entries, or no files given */
  | 'empty'
  /** a name or symlink target that is absolute, leaves the workspace, holds control characters or goes through a link */
  | 'unsafe-path'
  /** a name given twice, or a file where a directory is (or the other way round) */
  | 'path-conflict'
  /** hard links, devices, FIFOs and entry types tar-stream does not know */
  | 'unsupported-type'
  /** more entries than maxEntries */
  | 'too-many-entries'
  /** a path more than maxDepth levels deep */
  | 'too-deep'
  /** a path or symlink target over maxPathLength bytes */
  | 'name-too-long'
  /** bytes over a cap: one file, all files together, the upload, or what it expands to */
  | 'too-large';

/** A refused archive. `entry` is the offending entry name when there is one. */
export class ArchiveError extends Error {
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    readonly entry?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface SanitizedTar {
  file: string;
  entries: number;
  files: number;
  totalBytes: number;
  paths: string[];
  /** Symlinks skipped because of `dropLinks` (always 0 otherwise). */
  droppedLinks: number;
}

export const FIX_TAR = 'create it with e.g. `tar -czf source.tar.gz -C project .`';

// ---------------------------------------------------------------------------------------------
// Messages

/** Names go into logs and UIs: escape control characters so they cannot forge lines. */
export function shownName(raw: string): string {
  return raw.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export type Noun = 'entry' | 'file';

export function refuse(code: ArchiveErrorCode, noun: Noun, shown: string, problem: string): ArchiveError {
  return new ArchiveError(code, `${noun} '${clip(shown)}': ${problem}`, shown);
}

export function invalidArchive(cause: unknown, entry: string | undefined): ArchiveError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const where = entry === undefined ? '' : ` (while reading entry '${clip(entry)}')`;
  return new ArchiveError('invalid', `the archive is not a valid tar or tar.gz${where}; it may be truncated or corrupt [${detail}]. Re-${FIX_TAR}`, entry);
}
