import { Inject, Injectable } from '@nestjs/common';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { FileStore } from '../storage/file-store';
import { WORKFLOW_FILE } from '../workflow/model';
import { ClonedSource, cloneRepo } from './git-source';
import { GitSourceOptions, validateRepoUrl } from './git-policy';
import { packFiles } from './tar-pack';
import { DEFAULT_SOURCE_LIMITS, SanitizedTar, TarLimits } from './tar-safety';
import { sanitizeTar } from './tar-sanitize';

/** Files given inline with the quick form ({command, files}): a few small files. */
export const INLINE_FILE_LIMITS: TarLimits = { ...DEFAULT_SOURCE_LIMITS, maxEntries: 1000, maxFileBytes: 1024 * 1024, maxTotalBytes: 4 * 1024 * 1024 };

/** A workflow file found in a checked-out tree: its path from the root and its text. */
export interface FoundWorkflow {
  file: string;
  text: string;
}

/**
 * How a source comes in, whatever the channel: cloned from a repository, read from an upload, packed
 * from a checked-out tree or from files given inline, and always ending as one sanitized tar. The
 * intake's side effects (DNS, git, the `tar` program, the file system) happen here and nowhere else in
 * runs/ and webhooks/, so a spec of a service that takes sources replaces this class and nothing more.
 * Errors are the sources' own typed ones (GitSourceError, ArchiveError); callers map them to HTTP.
 */
@Injectable()
export class SourceIntake {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly files: FileStore,
  ) {}

  /** How Kiln clones, for submissions and pushes alike: the operator's schemes and hosts, 2 min, twice the upload cap. */
  cloneOptions(): GitSourceOptions {
    return { ...this.config.git, timeoutMs: 120_000, maxBytes: this.config.uploadMaxBytes * 2, tmpDir: this.files.tmpDir() };
  }

  /**
   * Unpacked, a source is at most 512 MiB in all (DEFAULT_SOURCE_LIMITS), and never more than the
   * largest workspace a job may have. Checked at each entry's header, before its body is written.
   */
  sourceLimits(): TarLimits {
    const expanded = Math.min(DEFAULT_SOURCE_LIMITS.maxTotalBytes, this.config.jobs.workspaceMaxBytes);
    return {
      ...DEFAULT_SOURCE_LIMITS,
      maxCompressedBytes: this.config.uploadMaxBytes,
      maxTotalBytes: expanded,
      maxFileBytes: Math.min(DEFAULT_SOURCE_LIMITS.maxFileBytes, expanded),
    };
  }

  /** A repository URL checked as a clone would check it (scheme, host, address), without cloning. */
  checkRepoUrl(url: string): Promise<URL> {
    return validateRepoUrl(url, { ...this.config.outbound, timeoutMs: 10_000, maxBytes: 0 });
  }

  /** A shallow clone at `ref` into a scratch directory; the caller calls cleanup(). */
  clone(repo: string, ref: string): Promise<ClonedSource> {
    return cloneRepo(repo, ref, this.cloneOptions());
  }

  /** A tarball (plain or gzip) from `input`, checked entry by entry and written sanitized to `out`. */
  sanitize(input: Readable, out: string): Promise<SanitizedTar> {
    return sanitizeTar(input, out, this.sourceLimits());
  }

  /** An uploaded tarball on disk, as sanitize(). */
  sanitizeFile(file: string, out: string): Promise<SanitizedTar> {
    return this.sanitize(fs.createReadStream(file), out);
  }

  /** A checked-out tree (a clone): packed by tar (links kept as links), then checked like any upload. */
  packDir(dir: string, out: string): Promise<SanitizedTar> {
    const proc = spawn('tar', ['-c', '-f', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
    return this.sanitize(proc.stdout, out);
  }

  /** Files given inline (path -> text), packed under INLINE_FILE_LIMITS. */
  packInline(files: Record<string, string>, out: string): Promise<SanitizedTar> {
    return packFiles(files, out, INLINE_FILE_LIMITS);
  }

  /** The workflows of a checked-out tree: .kiln.yml/.kiln.yaml, then .github/workflows/*.yml in name order; regular files in real folders only, no link followed. */
  workflowFiles(dir: string): FoundWorkflow[] {
    const found: string[] = [];
    for (const f of ['.kiln.yml', '.kiln.yaml']) if (isRegularFile(path.join(dir, f))) found.push(f);
    const wf = path.join(dir, '.github', 'workflows');
    // Each folder on the way must be a folder of the tree, not a link to one elsewhere (on the host).
    if (isDirectory(path.join(dir, '.github')) && isDirectory(wf))
      for (const f of fs.readdirSync(wf).sort())
        if (WORKFLOW_FILE.test(`.github/workflows/${f}`) && isRegularFile(path.join(wf, f))) found.push(`.github/workflows/${f}`);
    return found.map((file) => ({ file, text: fs.readFileSync(path.join(dir, file), 'utf8') }));
  }

  /** The size of an uploaded file on disk. */
  fileBytes(file: string): number {
    return fs.statSync(file).size;
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isRegularFile(p: string): boolean {
  try {
    return fs.lstatSync(p).isFile();
  } catch {
    return false;
  }
}
