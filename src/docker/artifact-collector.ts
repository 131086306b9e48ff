import type { Logger } from '@nestjs/common';
import type Docker from 'dockerode';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Metrics } from '../common/metrics';
import { selectArtifactFiles, type ArtifactPaths, type ArtifactSelection } from '../execution/artifact-paths';
import type { Collected, JobHandle } from '../execution/backend';
import { ArchiveError, type SanitizedTar, type TarLimits } from '../sources/tar-safety';
import { sanitizeTar } from '../sources/tar-sanitize';
import { packTree, TreeNotPackable } from '../sources/tree-pack';
import { demux } from './demux';
import { runHelper, type RunResult } from './helper-exec';
import { JOB_UID, JOB_USER } from './job-sandbox';
import type { SandboxState } from './sandbox-state';

/**
 * Lists what an upload's patterns match in the sandbox (as the job user): $1 the workspace, $2 how many
 * of the patterns that follow are to upload (the rest are exclusions). For each pattern, NUL-separated,
 * the files (not folders: a folder gives every file under it, its symlinks included) or, for an
 * exclusion, the paths it matches; each pattern's list ends in an empty name.
 */
export const LIST_SCRIPT = `
shopt -s globstar nullglob dotglob
cd -- "$1" || exit 3; n=$2; shift 2
IFS=$'\\n'
i=0
for p in "$@"; do
  for f in $p; do
    case $f in -*) f=./$f ;; esac
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
      [ "$i" -lt "$n" ] && printf '%s: Cannot stat: No such file or directory\\n' "$f" >&2
    elif [ "$i" -lt "$n" ] && [ -d "$f" ] && [ ! -L "$f" ]; then find "$f" ! -type d -print0
    else printf '%s\\0' "$f"; fi
  done
  printf '\\0'; i=$((i+1))
done
exit 0
`;

/** LIST_SCRIPT's output (split at NULs) as one list of names per pattern. */
export function listingGroups(names: string[], patterns: number): string[][] {
  const groups: string[][] = [];
  for (let at = 0, k = 0; k < patterns; k++) {
    const end = names.indexOf('', at);
    groups.push(names.slice(at, end < 0 ? names.length : end));
    at = end < 0 ? names.length : end + 1;
  }
  return groups;
}

/** tar of the files named on stdin (NUL-separated, relative to $1), nothing else. */
const TAR_SCRIPT = 'cd -- "$1" && exec tar -c -f - --null --no-recursion --verbatim-files-from -T -';

/** Most bytes of matched names Kiln takes from the listing (far more than 100 000 entries' worth). */
const LIST_MAX_BYTES = 16 * 1024 * 1024;

/** Artifact collection from a job's sandbox (ExecutionBackend.collect). */
export class ArtifactCollector {
  constructor(
    private readonly state: SandboxState,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * An artifact's files: listed in the sandbox, chosen and rooted as upload-artifact does
   * (selectArtifactFiles), then read from the host when the sandbox can be seen from here and nothing
   * of the job runs in it (see collectFromHost), else by tar in the sandbox; both give the same tar.
   */
  async collect(c: Docker.Container, job: JobHandle, spec: ArtifactPaths, workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    const failed = (error: Error, stderr = '') => ({ tar: null, error, exitCode: -1, stderr });
    let listed: RunResult;
    try {
      listed = await runHelper(c, ['bash', '-c', LIST_SCRIPT, 'list', workdir, String(spec.include.length), ...spec.include, ...spec.exclude], {
        maxStdout: LIST_MAX_BYTES,
      });
    } catch (e) {
      return failed(e as Error);
    }
    if (listed.exitCode !== 0) return failed(new Error(`the files could not be listed (exit ${listed.exitCode})`), listed.stderr);
    if (listed.truncated) return failed(new Error(`the paths match more than ${LIST_MAX_BYTES} bytes of file names`));
    // Names that are not UTF-8 are kept byte for byte (latin1) and left to tar, which keeps them so.
    const text = listed.stdout.toString('utf8');
    const utf8 = Buffer.from(text, 'utf8').equals(listed.stdout);
    const names = (utf8 ? text : listed.stdout.toString('latin1')).split('\0');
    const groups = listingGroups(names, spec.include.length + spec.exclude.length);
    let chosen: ArtifactSelection;
    try {
      chosen = selectArtifactFiles(spec, { matched: groups.slice(0, spec.include.length), excluded: groups.slice(spec.include.length).flat() }, workdir);
    } catch (e) {
      return failed(e as Error, listed.stderr);
    }
    const said = { exitCode: listed.stderr ? 2 : 0, stderr: listed.stderr };
    if (!chosen.files.length) return { tar: null, error: new ArchiveError('empty', 'no files matched'), ...said, hidden: chosen.hidden };
    const fromHost = utf8 ? await this.collectFromHost(job, chosen, workdir, outFile, limits) : null;
    this.metrics.artifactCollections.inc({ how: fromHost ? 'host' : 'exec' });
    const got = fromHost ?? (await this.collectByTar(c, chosen, utf8 ? 'utf8' : 'latin1', outFile, limits));
    const stderr = [listed.stderr.trim(), got.stderr.trim()].filter(Boolean).join('\n');
    return { ...got, exitCode: got.exitCode || said.exitCode, stderr, hidden: chosen.hidden };
  }

  /**
   * The chosen files are read through /proc/<keeper>/root by packTree, which never follows a symlink
   * (nor through one on the way to the root). That is safe only while nothing can change the files: no
   * task of the job user may be in the sandbox before the reading or after it (only Kiln starts
   * processes there, one step at a time). Null, and tar in the sandbox, whenever this does not hold or
   * the tree is not packTree's (a root outside the workspace, a path through a symlink, an entry the job
   * user could not read).
   */
  private async collectFromHost(job: JobHandle, chosen: ArtifactSelection, workdir: string, outFile: string, limits: TarLimits): Promise<Collected | null> {
    const base = path.posix.relative(workdir, chosen.root);
    if (base.startsWith('..') || path.posix.isAbsolute(base)) return null;
    const view = this.state.views.get(job.id);
    if (!view || !(await view.quiet(JOB_UID))) return null;
    const warnings: string[] = [];
    // What tar in the sandbox would have said of the same paths: exit 2 and its complaints.
    const said = () => ({ exitCode: warnings.length ? 2 : 0, stderr: warnings.join('\n') });
    try {
      const tar = await packTree(
        view.pathOf(workdir),
        chosen.files,
        outFile,
        limits,
        { uid: JOB_UID },
        { dropLinks: true, onWarning: (w) => warnings.push(w), base },
      );
      if (!(await view.quiet(JOB_UID))) {
        await fs.rm(outFile, { force: true });
        return { tar: null, error: new Error('the sandbox changed while its files were read; run the step again'), exitCode: -1, stderr: '' };
      }
      return { tar, error: null, ...said() };
    } catch (e) {
      if (e instanceof TreeNotPackable) {
        this.log.debug(`job ${job.jobId}: artifact collected by tar in the sandbox: ${e.message}`);
        return null;
      }
      return { tar: null, error: e as Error, ...said() };
    }
  }

  /** tar in the sandbox over the chosen files (named on its stdin), its stream checked and re-packed by sanitizeTar. */
  private async collectByTar(c: Docker.Container, chosen: ArtifactSelection, encoding: BufferEncoding, outFile: string, limits: TarLimits): Promise<Collected> {
    const exec = await c.exec({
      Cmd: ['bash', '-c', TAR_SCRIPT, 'collect', chosen.root],
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      User: JOB_USER,
      Tty: false,
    });
    const stream = (await exec.start({ hijack: true, stdin: true })) as unknown as NodeJS.ReadWriteStream;
    Readable.from([Buffer.from(chosen.files.map((f) => `${f}\0`).join(''), encoding)]).pipe(stream as unknown as NodeJS.WritableStream);
    const tar = new PassThrough();
    const errOut = new PassThrough();
    let stderr = '';
    errOut.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    demux(stream as unknown as Readable, tar, errOut);
    const done = new Promise<{ exitCode: number; stderr: string }>((resolve) => {
      const finish = async () => {
        tar.end();
        const info = await exec.inspect().catch(() => ({ ExitCode: -1 }));
        resolve({ exitCode: info.ExitCode ?? -1, stderr });
      };
      stream.on('end', finish);
      stream.on('error', finish);
    });
    let sanitized: SanitizedTar | null = null;
    let error: Error | null = null;
    try {
      sanitized = await sanitizeTar(tar, outFile, limits, { dropLinks: true });
    } catch (e) {
      tar.resume();
      error = e as Error;
    }
    return { tar: sanitized, error, ...(await done) };
  }
}
