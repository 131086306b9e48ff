import * as fs from 'node:fs';
import { newId } from '../common/ids';
import type { KilnConfig } from '../config/config';
import { ArchiveError } from '../sources/tar-safety';
import type { FileStore } from '../storage/file-store';
import { blobKeys, BlobStore } from '../storage/blob-store';
import { interpolate } from '../workflow/expressions';
import type { BuiltinAction } from '../workflow/model';
import { artifactPaths } from './artifact-paths';
import type { ExecutionBackend } from './backend';
import { WORKSPACE } from './github-context';
import type { StepReason } from './job';
import { resolveWorkdir } from './script-step';
import { stepFailed, StepResult, StepScope, stepSucceeded } from './step-scope';

type BuiltinStep = (s: StepScope) => Promise<StepResult>;
/** Built-in actions that are a script run in the sandbox like a `run:` step (its log, limits, env files). */
export type ScriptedAction = Extract<BuiltinAction, 'setup-python'>;

/**
 * The actions Kiln builds in (`uses:`), one handler each; the table's type makes it list every
 * BuiltinAction the parser accepts.
 */
export class BuiltinActions {
  constructor(
    private readonly config: KilnConfig,
    private readonly backend: ExecutionBackend,
    private readonly files: FileStore,
    private readonly blobs: BlobStore,
  ) {}

  readonly handlers: Record<Exclude<BuiltinAction, ScriptedAction>, BuiltinStep> = {
    checkout: async ({ step, out }) => {
      out.notice(step.index, `the source is already in ${WORKSPACE} (actions/checkout is built in)`);
      return stepSucceeded();
    },
    'upload-artifact': (s) => this.uploadArtifact(s),
    'download-artifact': (s) => this.downloadArtifact(s),
  };

  /** The bash script each scripted action runs instead of a `run:`. */
  readonly scripted: Record<ScriptedAction, (s: StepScope) => string> = {
    'setup-python': ({ job }) => setupPythonScript(`${job.spec.environment.name}@${job.spec.environment.version}`),
  };

  /** The script a step's action runs as a `run:` step, or null when its handler runs it (or it is a `run:` itself). */
  scriptFor(s: StepScope): string | null {
    const uses = s.step.uses;
    return uses && Object.hasOwn(this.scripted, uses) ? this.scripted[uses as ScriptedAction](s) : null;
  }

  private async uploadArtifact({ job, handle, step, ctx, status, out, reporter, quota }: StepScope): Promise<StepResult> {
    const i = step.index;
    const name = (await interpolate(step.with.name ?? 'artifact', ctx, status)).trim();
    const fail = (message: string, reason: StepReason = 'artifact-error') => {
      out.notice(i, `error: ${message}`);
      return stepFailed(reason);
    };
    if (out.holdsSecret(name))
      return fail(
        'the artifact name holds a secret (or its base64, hex or URL-encoded form): names are stored and shown in download URLs, so it was refused; choose a name without it',
      );
    // `.` and `..` would name the folder itself or its parent where download-artifact unpacks by name.
    if (!/^[^"\\:<>|*?\r\n/]{1,128}$/.test(name) || name === '.' || name === '..')
      return fail(`artifact name '${name}' is not valid: 1 to 128 characters, none of " : < > | * ? \\ / or newlines, and not . or ..`);
    const input = async (key: string) => (step.with[key] === undefined ? undefined : (await interpolate(step.with[key], ctx, status)).trim());
    const flag = async (key: string) => {
      const v = await input(key);
      return v === undefined || v === '' ? false : v === 'true' ? true : v === 'false' ? false : null;
    };
    const includeHidden = await flag('include-hidden-files');
    const overwrite = await flag('overwrite');
    if (includeHidden === null || overwrite === null) return fail(`'${includeHidden === null ? 'include-hidden-files' : 'overwrite'}' must be true or false`);
    // Kiln stores artifacts as tar, not zip: the level is checked as GitHub checks it, then not needed.
    const level = await input('compression-level');
    if (level !== undefined && level !== '' && !/^\d$/.test(level)) return fail(`'compression-level' must be a whole number from 0 to 9, not '${level}'`);
    const paths = artifactPaths((await interpolate(step.with.path ?? '', ctx, status)).split('\n'), includeHidden);
    if (!paths.include.length) return fail('upload-artifact needs `with: path:` (one or more paths or globs)');
    const ifNone = (step.with['if-no-files-found'] ?? 'warn').trim();
    const retention = Math.min(
      Number(step.with['retention-days'] ?? this.config.artifactRetentionDays) || this.config.artifactRetentionDays,
      this.config.artifactRetentionDays,
    );
    const conflict = () =>
      fail(
        `Failed to CreateArtifact: Received non-retryable error: Failed request: (409) Conflict: an artifact with this name already exists on the workflow run (set overwrite: true to replace '${name}')`,
      );
    const existing = (await reporter.artifacts()).find((a) => a.name === name);
    if (existing && !overwrite) return conflict();
    const id = newId();
    const key = blobKeys.artifact(job.runId, id);
    // Collected into this worker's scratch (swept if the worker dies), put in the store once complete.
    const tmp = this.files.upload('.artifact.tar');
    const collected = await this.backend.collect(handle, paths, WORKSPACE, tmp, {
      maxEntries: 100_000,
      maxDepth: 64,
      maxPathLength: 4096,
      maxFileBytes: this.config.artifactMaxBytes,
      maxTotalBytes: this.config.artifactMaxBytes,
      maxCompressedBytes: this.config.artifactMaxBytes + 64 * 1024 * 1024,
    });
    if (collected.hidden)
      out.notice(i, `${collected.hidden} hidden file(s) (a name starting with '.') were left out; set include-hidden-files: true to upload them`);
    const sanitized = collected.tar;
    if (!sanitized) {
      const e = collected.error;
      if (e instanceof ArchiveError && e.code === 'empty') {
        const msg = `no files were found with the provided path: ${paths.include.join(', ')}${collected.stderr ? ` (${collected.stderr.trim().slice(0, 300)})` : ''}`;
        if (ifNone === 'error') return fail(msg, 'no-files');
        if (ifNone !== 'ignore') out.notice(i, `warning: ${msg}; no artifact will be uploaded`);
        return stepSucceeded();
      }
      return fail(`artifact '${name}' was refused: ${e?.message ?? 'the collector gave nothing'}`);
    }
    if (collected.exitCode !== 0 && collected.stderr) out.notice(i, `warning: ${collected.stderr.trim().slice(0, 500)}`);
    const dropped = sanitized.droppedLinks;
    if (dropped) out.notice(i, `warning: ${dropped} symbolic link(s) were left out of the artifact`);
    // The artifact this one replaces gives its bytes back.
    const freed = existing?.sizeBytes ?? 0;
    if (sanitized.totalBytes > quota.artifactBytesLeft + freed) {
      await fs.promises.rm(tmp, { force: true });
      return fail(
        `artifact '${name}' (${sanitized.totalBytes} bytes) would exceed your artifact storage quota (${Math.max(0, quota.artifactBytesLeft + freed)} bytes left)`,
      );
    }
    if (existing) {
      await reporter.artifactRemoved(existing.id);
      await this.blobs.remove(blobKeys.artifact(job.runId, existing.id));
      quota.artifactBytesLeft += freed;
      out.notice(i, `artifact '${name}' (${existing.files} file(s), ${existing.sizeBytes} bytes) was deleted to be replaced (overwrite: true)`);
    }
    quota.artifactBytesLeft -= sanitized.totalBytes;
    await this.blobs.put(key, tmp);
    const createdAt = new Date();
    try {
      await reporter.artifactRecorded({
        id,
        name,
        sizeBytes: sanitized.totalBytes,
        files: sanitized.files,
        createdAt: createdAt.toISOString(),
        expiresAt: new Date(createdAt.getTime() + retention * 86_400_000).toISOString(),
      });
    } catch {
      // Another job of the run recorded the name first.
      await this.blobs.remove(key);
      return conflict();
    }
    out.notice(i, `artifact '${name}' uploaded: ${sanitized.files} file(s), ${sanitized.totalBytes} bytes, kept ${retention} day(s)`);
    return stepSucceeded();
  }

  /** download-artifact: one artifact of this run into `path`, or (without name) each into path/<name>. */
  private async downloadArtifact({ job, handle, step, ctx, status, out, reporter }: StepScope): Promise<StepResult> {
    const i = step.index;
    const name = step.with.name ? (await interpolate(step.with.name, ctx, status)).trim() : null;
    const target = resolveWorkdir(step.with.path ? await interpolate(step.with.path, ctx, status) : '.');
    const all = await reporter.artifacts();
    const chosen = name ? all.filter((a) => a.name === name) : all;
    if (name && !chosen.length) {
      out.notice(
        i,
        `error: no artifact named '${name}' in this run${all.length ? ` (there are: ${all.map((a) => a.name).join(', ')})` : ''}; the job that uploads it must be listed in needs`,
      );
      return stepFailed('artifact-error');
    }
    for (const a of chosen) {
      const dir = name ? target : `${target}/${a.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
      const blob = await this.blobs.open(blobKeys.artifact(job.runId, a.id));
      if (!blob) {
        out.notice(i, `error: artifact '${a.name}' has expired`);
        return stepFailed('artifact-error');
      }
      await this.backend.putWorkspace(handle, blob.stream, dir);
      out.notice(i, `artifact '${a.name}' (${a.files} file(s), ${a.sizeBytes} bytes) downloaded to ${dir}`);
    }
    if (!chosen.length) out.notice(i, 'warning: this run has no artifacts (yet)');
    return stepSucceeded();
  }
}

/**
 * actions/setup-python: the environment's Python (the one the run was planned for) as GitHub's action
 * leaves it: a Python first on PATH whose pip installs, here a virtual environment over the
 * environment's interpreter that sees its Debian packages (so the system Python stays as Debian
 * keeps it, PEP 668), with `pip`, `pip3` and `pipX.Y` run by the venv's Python; GitHub's variables
 * (pythonLocation, Python_ROOT_DIR, Python3_ROOT_DIR, PKG_CONFIG_PATH) and outputs (python-version,
 * python-path, cache-hit). A second setup-python in the job finds the venv there.
 * In a PyPy environment (one with `pypy3`: the planner sends it PyPy requests only) the venv is PyPy's,
 * with its own pip, under hostedtoolcache/PyPy/<python version>, and python-version is `pypy<PyPy version>`
 * (setup-python's find-pypy.ts says so).
 */
export function setupPythonScript(environment: string): string {
  return [
    'set -eu',
    'if command -v pypy3 >/dev/null 2>&1; then',
    `  py=pypy3 tool=PyPy pypy=$(pypy3 -c 'import sys; print("%d.%d.%d" % sys.pypy_version_info[:3])')`,
    'else',
    '  py=python3 tool=Python pypy=',
    'fi',
    `ver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')`,
    'dir="$HOME/hostedtoolcache/$tool/$ver/x64"',
    'if [ -n "$pypy" ]; then',
    '  said="PyPy $pypy (Python $ver)" out="pypy$pypy"',
    // Debian has no pip for PyPy: the venv gets its own, from the wheels Debian ships for ensurepip (no network).
    '  [ -x "$dir/bin/python" ] || "$py" -m venv --system-site-packages "$dir" >/dev/null',
    'else',
    '  said="Python $ver" out=$ver',
    '  if [ ! -x "$dir/bin/python" ]; then',
    '    python3 -m venv --system-site-packages --without-pip "$dir"',
    '    for p in pip pip3 "pip${ver%.*}"; do',
    `      printf '#!/bin/sh\\nexec "%s" -m pip "$@"\\n' "$dir/bin/python" > "$dir/bin/$p"`,
    '      chmod 755 "$dir/bin/$p"',
    '    done',
    '  fi',
    'fi',
    'echo "$dir/bin" >> "$GITHUB_PATH"',
    '{ echo "pythonLocation=$dir"; echo "Python_ROOT_DIR=$dir"; echo "Python3_ROOT_DIR=$dir"; echo "PKG_CONFIG_PATH=$dir/lib/pkgconfig"; } >> "$GITHUB_ENV"',
    '{ echo "python-version=$out"; echo "python-path=$dir/bin/python"; echo "cache-hit=false"; } >> "$GITHUB_OUTPUT"',
    `echo "$said of ${environment}, in a virtual environment at $dir that sees the environment's Debian packages: python and pip are first on PATH, and pip installs into it"`,
    '',
  ].join('\n');
}
