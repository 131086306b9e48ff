import type { Logger } from '@nestjs/common';
import type Docker from 'dockerode';
import { promises as fs } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import type { Collected, JobHandle } from '../execution/backend';
import type { Metrics } from '../common/metrics';
import type { SanitizedTar, TarLimits } from '../sources/tar-safety';
import { sanitizeTar } from '../sources/tar-sanitize';
import { packTree, TreeNotPackable } from '../sources/tree-pack';
import { demux } from './demux';
import { runHelper, type RunResult } from './helper-exec';
import { JOB_UID, JOB_USER } from './job-sandbox';
import type { SandboxState } from './sandbox-state';

/**
 * Expands the glob patterns inside the sandbox (as the job user) and writes a tar of the matches to
 * stdout ($1 = tar), or only their names, NUL-separated ($1 = list; Kiln then reads them from the host).
 */
const COLLECT_SCRIPT = `
set -o pipefail; shopt -s globstar nullglob dotglob
mode=$1; cd -- "$2" || exit 3; shift 2
IFS=$'\\n'
matches() { for p in "$@"; do for f in $p; do printf '%s\\0' "$f"; done; done; }
[ "$mode" = list ] && { matches "$@"; exit 0; }
matches "$@" | tar -c -f - --null -T - 2>/tmp/.kiln-collect.err
rc=$?; cat /tmp/.kiln-collect.err >&2; exit $rc
`;

/** Most bytes of matched names Kiln takes from the listing (far more than 100 000 entries' worth); more goes to tar. */
const LIST_MAX_BYTES = 16 * 1024 * 1024;

/** Artifact collection from a job's sandbox (ExecutionBackend.collect). */
export class ArtifactCollector {
  constructor(
    private readonly state: SandboxState,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * An artifact's files: read from the host when the sandbox can be seen from here and nothing of the
   * job runs in it (see collectFromHost), else by tar in the sandbox; both give the same tar.
   */
  async collect(c: Docker.Container, job: JobHandle, patterns: string[], workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    const fromHost = await this.collectFromHost(c, job, patterns, workdir, outFile, limits);
    this.metrics.artifactCollections.inc({ how: fromHost ? 'host' : 'exec' });
    return fromHost ?? this.collectByTar(c, patterns, workdir, outFile, limits);
  }

  /**
   * The globs are expanded in the sandbox (a short exec as the job user, as tar would see them); the
   * matches are then read through /proc/<keeper>/root by packTree, which never follows a symlink. That
   * is safe only while nothing can change the files: no task of the job user may be in the sandbox
   * before the listing, after it, or after the reading (only Kiln starts processes there, one step at a
   * time). Null, and tar in the sandbox, whenever this does not hold or the tree is not packTree's
   * (a path through a symlink, an absolute path, an entry the job user could not read).
   */
  private async collectFromHost(
    c: Docker.Container,
    job: JobHandle,
    patterns: string[],
    workdir: string,
    outFile: string,
    limits: TarLimits,
  ): Promise<Collected | null> {
    const view = this.state.views.get(job.id);
    if (!view || !(await view.quiet(JOB_UID))) return null;
    let listed: RunResult;
    try {
      listed = await runHelper(c, ['bash', '-c', COLLECT_SCRIPT, 'collect', 'list', workdir, ...patterns], { maxStdout: LIST_MAX_BYTES });
    } catch {
      return null;
    }
    if (listed.exitCode !== 0 || listed.truncated) return null;
    const names = listed.stdout.toString('utf8');
    if (!Buffer.from(names, 'utf8').equals(listed.stdout)) return null; // not UTF-8: tar keeps such names' bytes
    const paths = names.split('\0').slice(0, -1);
    if (!(await view.quiet(JOB_UID))) return null;
    const warnings: string[] = [];
    // What tar in the sandbox would have said of the same paths: exit 2 and its complaints.
    const said = () => ({ exitCode: warnings.length ? 2 : 0, stderr: warnings.join('\n') });
    try {
      const tar = await packTree(view.pathOf(workdir), paths, outFile, limits, { uid: JOB_UID }, { dropLinks: true, onWarning: (w) => warnings.push(w) });
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

  /** tar in the sandbox, its stream checked and re-packed by sanitizeTar. */
  private async collectByTar(c: Docker.Container, patterns: string[], workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    const exec = await c.exec({
      Cmd: ['bash', '-c', COLLECT_SCRIPT, 'collect', 'tar', workdir, ...patterns],
      AttachStdout: true,
      AttachStderr: true,
      User: JOB_USER,
      Tty: false,
    });
    const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as NodeJS.ReadableStream;
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
