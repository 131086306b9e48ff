/**
 * The raw baseline: the `docker` CLI with the hardening Kiln gives every job container, and the
 * housekeeping of the containers the bench starts (each labelled, removed at the end; ones left by a
 * bench that crashed are removed at the next start).
 */
import type { HostConfig } from 'dockerode';
import * as os from 'node:os';
import { JOB_UID, jobHostConfig } from '../../src/docker/job-sandbox';
import { sandboxLimits } from '../../src/execution/sandbox-limits';
import type { KilnConfig } from '../../src/config/config';
import { must, pidAlive, run } from './proc';
import { say } from './util';

/** Every raw container carries these: which bench run started it, from which process on which host. */
export const BENCH_LABEL = 'kiln-bench';
const PID_LABEL = 'kiln-bench.pid';
const HOST_LABEL = 'kiln-bench.host';
/** Queue prefixes (= Kiln's kiln.deployment label) of the Kiln processes the bench starts: kbench-<pid>-<random>-<role>. */
export const PREFIX_RE = /^kbench-(\d+)-[a-z0-9]+-[a-z0-9-]+$/;

/** The HostConfig of a Kiln job container with the server's default limits: Kiln's own jobHostConfig() and sandboxLimits(). */
export function kilnJobHostConfig(config: KilnConfig): HostConfig {
  return jobHostConfig(sandboxLimits(config), config.runtime);
}

/** HostConfig keys the CLI flags below reproduce (any other key with a value is reported, not silently dropped). */
const MIRRORED = new Set([
  'Runtime',
  'NetworkMode',
  'CapDrop',
  'SecurityOpt',
  'ReadonlyRootfs',
  'Tmpfs',
  'PidsLimit',
  'Memory',
  'MemorySwap',
  'NanoCpus',
  'Ulimits',
  'Init',
  'LogConfig',
  'Privileged',
  'AutoRemove',
]);

/** `docker run`/`docker create` flags for a HostConfig. */
export function dockerFlags(hc: HostConfig): string[] {
  for (const [k, v] of Object.entries(hc)) {
    if (!MIRRORED.has(k) && v !== undefined && v !== null && v !== false)
      say(`warning: HostConfig.${k} is not mirrored by the raw baseline (${JSON.stringify(v)})`);
  }
  const f: string[] = [];
  if (hc.Runtime) f.push('--runtime', hc.Runtime);
  if (hc.NetworkMode) f.push('--network', hc.NetworkMode);
  for (const c of hc.CapDrop ?? []) f.push('--cap-drop', c);
  for (const s of hc.SecurityOpt ?? []) f.push('--security-opt', s);
  if (hc.ReadonlyRootfs) f.push('--read-only');
  for (const [p, o] of Object.entries(hc.Tmpfs ?? {})) f.push('--tmpfs', `${p}:${o}`);
  if (hc.PidsLimit) f.push('--pids-limit', String(hc.PidsLimit));
  if (hc.Memory) f.push('--memory', String(hc.Memory));
  if (hc.MemorySwap) f.push('--memory-swap', String(hc.MemorySwap));
  if (hc.NanoCpus) f.push('--cpus', String(hc.NanoCpus / 1e9));
  for (const u of hc.Ulimits ?? []) f.push('--ulimit', `${u.Name}=${u.Soft}:${u.Hard}`);
  if (hc.Init) f.push('--init');
  if (hc.Privileged) f.push('--privileged');
  if (hc.LogConfig?.Type) {
    f.push('--log-driver', hc.LogConfig.Type);
    for (const [k, v] of Object.entries(hc.LogConfig.Config ?? {})) f.push('--log-opt', `${k}=${v}`);
  }
  return f;
}

/**
 * The raw baseline's containers. `hardened` is exactly a Kiln job container's HostConfig; `copyable`
 * drops what makes `docker cp` impossible on this engine (a read-only root is refused by the engine's
 * archive API, and a tmpfs /workspace is invisible to it), so the files live in the container's layer.
 */
export class RawDocker {
  readonly hardened: string[];
  readonly copyable: string[];

  constructor(
    readonly benchId: string,
    readonly image: string,
    hostConfig: HostConfig,
  ) {
    this.hardened = dockerFlags(hostConfig);
    const { ReadonlyRootfs: _ro, Tmpfs, ...rest } = hostConfig;
    const tmpfs = { ...(Tmpfs ?? {}) };
    delete tmpfs['/workspace'];
    this.copyable = dockerFlags({ ...rest, Tmpfs: tmpfs });
  }

  private labels(): string[] {
    return ['--label', `${BENCH_LABEL}=${this.benchId}`, '--label', `${PID_LABEL}=${process.pid}`, '--label', `${HOST_LABEL}=${os.hostname()}`];
  }

  /** `docker run --rm` args for a command as the job user in /workspace, with the full hardening. */
  runArgs(cmd: string[], opts: { rm?: boolean; name?: string; copyable?: boolean } = {}): string[] {
    return [
      'run',
      ...(opts.rm === false ? [] : ['--rm']),
      ...(opts.name ? ['--name', opts.name] : []),
      ...this.labels(),
      ...(opts.copyable ? this.copyable : this.hardened),
      '--user',
      `${JOB_UID}:${JOB_UID}`,
      '-w',
      '/workspace',
      this.image,
      ...cmd,
    ];
  }

  createArgs(cmd: string[], opts: { copyable?: boolean } = {}): string[] {
    return [
      'create',
      ...this.labels(),
      ...(opts.copyable ? this.copyable : this.hardened),
      '--user',
      `${JOB_UID}:${JOB_UID}`,
      '-w',
      '/workspace',
      this.image,
      ...cmd,
    ];
  }

  /** Removes every container of this bench run. */
  async cleanup(): Promise<number> {
    return removeWhere([`label=${BENCH_LABEL}=${this.benchId}`]);
  }
}

async function removeWhere(filters: string[], keep: (labels: Record<string, string>) => boolean = () => false): Promise<number> {
  const ids = (await must('docker', ['ps', '-a', '-q', '--no-trunc', ...filters.flatMap((f) => ['--filter', f])])).split('\n').filter(Boolean);
  let removed = 0;
  for (const id of ids) {
    const labels = JSON.parse(await must('docker', ['inspect', '--format', '{{json .Config.Labels}}', id]).catch(() => '{}')) as Record<string, string>;
    if (keep(labels)) continue;
    const r = await run('docker', ['rm', '-f', '-v', id]);
    if (r.code === 0) removed++;
  }
  return removed;
}

/** Containers of the Kiln processes the bench started, by their queue prefix (their kiln.deployment label). */
export function removeKilnContainers(prefix: string): Promise<number> {
  return removeWhere([`label=kiln.deployment=${prefix}`]);
}

/**
 * Containers a crashed bench left: raw ones whose bench process on this host is gone, and Kiln ones of
 * a bench deployment (kbench-<pid>-...) whose process is gone. Nothing else is touched.
 */
export async function sweepOrphans(): Promise<number> {
  const host = os.hostname();
  const raw = await removeWhere([`label=${BENCH_LABEL}`], (l) => l[HOST_LABEL] !== host || pidAlive(Number(l[PID_LABEL])));
  const kiln = await removeWhere(['label=kiln.deployment'], (l) => {
    const m = PREFIX_RE.exec(l['kiln.deployment'] ?? '');
    return !m || pidAlive(Number(m[1]));
  });
  return raw + kiln;
}

/** The fields of two containers' HostConfigs that the hardening sets, and where they differ. */
export async function compareHostConfig(kilnContainer: string, raw: RawDocker): Promise<{ same: boolean; differences: string[] }> {
  const probe = (await must('docker', raw.createArgs(['true']))).split('\n').pop()!;
  try {
    const [a, b] = await Promise.all(
      [kilnContainer, probe].map(
        async (id) => JSON.parse(await must('docker', ['inspect', '--format', '{{json .HostConfig}}', id])) as Record<string, unknown>,
      ),
    );
    const differences: string[] = [];
    for (const key of [...MIRRORED].filter((k) => k !== 'AutoRemove')) {
      const ka = JSON.stringify(a[key] ?? null);
      const kb = JSON.stringify(b[key] ?? null);
      if (ka !== kb) differences.push(`${key}: Kiln ${ka} vs raw ${kb}`);
    }
    return { same: differences.length === 0, differences };
  } finally {
    await run('docker', ['rm', '-f', probe]);
  }
}

/** Ids of the containers of one Kiln deployment (its queue prefix), running or not. */
export async function kilnContainers(prefix: string, runningOnly = false): Promise<string[]> {
  return (await must('docker', ['ps', ...(runningOnly ? [] : ['-a']), '-q', '--no-trunc', '--filter', `label=kiln.deployment=${prefix}`]))
    .split('\n')
    .filter(Boolean);
}
