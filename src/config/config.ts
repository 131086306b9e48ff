import * as path from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, validateSync } from 'class-validator';
import { parseSize } from '../common/size';
import { EgressConfig, egressConfig } from './egress';

/** Thrown when an environment variable has a bad value; the message names the variable. */
export class ConfigError extends Error {}

const SIZE = /^\d+(\.\d+)?[kmgt]?i?b?$/i;
const SIZE_MSG = 'must be a size such as 512m, 2g or a number of bytes';

const int = () => Transform(({ value }) => (value === undefined || value === '' ? undefined : /^-?\d+$/.test(String(value)) ? Number(value) : value));

/**
 * The whole configuration, read from environment variables once at start-up.
 * Property names are the variable names, so a validation error names what to fix.
 */
export class EnvSchema {
  @IsOptional() @IsString() KILN_HOST?: string;
  @IsOptional() @int() @IsInt() @Min(0) @Max(65535) KILN_PORT?: number;
  @IsOptional() @IsString() KILN_DATA_DIR?: string;
  @IsOptional() @IsString() KILN_ENVIRONMENTS_DIR?: string;
  @IsOptional() @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'must be a postgres:// or postgresql:// URL' }) DATABASE_URL?: string;
  @IsOptional() @Matches(/^rediss?:\/\/\S+$/, { message: 'must be a redis:// or rediss:// URL' }) REDIS_URL?: string;
  @IsOptional() @Matches(/^[a-z0-9][a-z0-9._-]*$/, { message: 'must be an environment name such as python-3.11' }) KILN_DEFAULT_ENVIRONMENT?: string;
  @IsOptional() @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL of a Debian mirror' }) KILN_DEBIAN_MIRROR?: string;
  @IsOptional() @IsIn(['error', 'warn', 'log', 'debug', 'verbose']) KILN_LOG_LEVEL?: string;
  @IsOptional() @IsIn(['text', 'json'], { message: 'must be text or json (one JSON object per line)' }) KILN_LOG_FORMAT?: string;
  @IsOptional() @int() @IsInt() @Min(1000) @Max(600000) KILN_HEALTH_TIMEOUT_MS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(64) KILN_WORKER_CONCURRENCY?: number;
  @IsOptional() @int() @IsInt() @Min(0) @Max(65535) KILN_METRICS_PORT?: number;
  @IsOptional() @Matches(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, { message: 'must be a short name: letters, digits, . _ : -' }) KILN_WORKER_NAME?: string;
  @IsOptional() @int() @IsInt() @Min(0) @Max(86400) KILN_SHUTDOWN_GRACE_SECONDS?: number;
  @IsOptional() @int() @IsInt() @Min(2) @Max(600) KILN_QUEUE_LOCK_SECONDS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(86400) KILN_SWEEP_SECONDS?: number;
  @IsOptional() @int() @IsInt() @Min(0) @Max(64) KILN_WARM_POOL?: number;
  @IsOptional()
  @IsIn(['runc', 'runsc'], { message: 'must be runc (the engine default) or runsc (gVisor, registered in the engine under that name)' })
  KILN_RUNTIME?: string;
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9.-]*(,[a-z0-9][a-z0-9.-]*)*$/, { message: 'must be a comma-separated list of environment names such as python-3.13' })
  KILN_RUNSC_ENVIRONMENTS?: string;
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9_-]{0,31}(,[a-z0-9][a-z0-9_-]{0,31})*$/, {
    message: 'must be a comma-separated list of labels (lower-case letters, digits, _ -) such as runsc,gpu',
  })
  KILN_WORKER_LABELS?: string;
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9.-]*=[a-z0-9][a-z0-9_-]{0,31}(,[a-z0-9][a-z0-9.-]*=[a-z0-9][a-z0-9_-]{0,31})*$/, {
    message: 'must be comma-separated environment=label pairs such as python-3.13=runsc',
  })
  KILN_ENVIRONMENT_LABELS?: string;
  // Egress (config/egress.ts reads them): what jobs may reach through their gateway.
  @IsOptional() KILN_EGRESS_ALLOW?: string;
  @IsOptional() KILN_EGRESS_ALLOW_INTERNAL?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_EGRESS_MAX_BYTES?: string;
  @IsOptional()
  @Matches(/^[A-Za-z0-9][A-Za-z0-9_.-]*(,[A-Za-z0-9][A-Za-z0-9_.-]*)*$/, { message: 'must be a comma-separated list of Docker network names' })
  KILN_EGRESS_NETWORKS?: string;
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9_.-]{0,63}$/, { message: 'must be the name of a runtime registered in the engine' })
  KILN_RUNSC_EGRESS_RUNTIME?: string;
  @IsOptional()
  @Matches(/^https?:\/\/[^\s@]+$/, { message: 'must be an http(s) URL of a package index without credentials, e.g. https://pypi.org/simple/' })
  KILN_PIP_INDEX_URL?: string;

  // Job sandbox limits: a default (what a job gets) and a maximum (what a job may ask for with `limits:`).
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_JOB_MEMORY?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_JOB_MEMORY_MAX?: string;
  @IsOptional() @Matches(/^\d+(\.\d+)?$/, { message: 'must be a number of CPUs such as 1 or 1.5' }) KILN_JOB_CPUS?: string;
  @IsOptional() @Matches(/^\d+(\.\d+)?$/, { message: 'must be a number of CPUs such as 2' }) KILN_JOB_CPUS_MAX?: string;
  @IsOptional() @int() @IsInt() @Min(16) @Max(65536) KILN_JOB_PIDS?: number;
  @IsOptional() @int() @IsInt() @Min(16) @Max(65536) KILN_JOB_PIDS_MAX?: number;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_JOB_WORKSPACE?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_JOB_WORKSPACE_MAX?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_JOB_TMP?: string;
  @IsOptional() @int() @IsInt() @Min(1) @Max(10080) KILN_JOB_TIMEOUT_MINUTES?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(10080) KILN_JOB_TIMEOUT_MAX_MINUTES?: number;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_LOG_CAP?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_UPLOAD_MAX?: string;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_ARTIFACT_MAX?: string;
  @IsOptional() @int() @IsInt() @Min(1) @Max(3650) KILN_ARTIFACT_RETENTION_DAYS?: number;
  @IsOptional()
  @Matches(/^([a-z0-9][a-z0-9._-]*=[a-z0-9][a-z0-9._-]*)(,[a-z0-9][a-z0-9._-]*=[a-z0-9][a-z0-9._-]*)*$/, {
    message: 'must be label=environment pairs separated by commas, e.g. ubuntu-latest=python-3.11',
  })
  KILN_LABEL_MAP?: string;
  @IsOptional() @Matches(/^(https|http)(,(https|http))*$/, { message: 'must be a comma-separated list of https, http' }) KILN_OUTBOUND_SCHEMES?: string;
  @IsOptional() @IsIn(['true', 'false'], { message: 'must be true or false' }) KILN_OUTBOUND_ALLOW_PRIVATE?: string;
  /** The former names of KILN_OUTBOUND_SCHEMES and KILN_OUTBOUND_ALLOW_PRIVATE, still read. */
  @IsOptional()
  @Matches(/^(https|http|git|ssh)(,(https|http|git|ssh))*$/, { message: 'must be a comma-separated list of https, http, git, ssh' })
  KILN_GIT_SCHEMES?: string;
  @IsOptional() @IsIn(['true', 'false'], { message: 'must be true or false' }) KILN_GIT_ALLOW_PRIVATE?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'must be letters, digits, - or _' }) KILN_QUEUE_PREFIX?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9_.~+\/=-]{20,256}$/, { message: 'must be 20 to 256 characters without spaces' }) KILN_ADMIN_TOKEN?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9+\/]{43}=$/, { message: 'must be 32 bytes in base64 (openssl rand -base64 32)' }) KILN_SECRET_KEY?: string;
  @IsOptional() @int() @IsInt() @Min(1) @Max(1000) KILN_QUOTA_CONCURRENT_JOBS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(100000) KILN_QUOTA_QUEUED_RUNS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(100000) KILN_QUOTA_SUBMISSIONS_PER_MINUTE?: number;
  @IsOptional() @Matches(SIZE, { message: SIZE_MSG }) KILN_QUOTA_ARTIFACT_BYTES?: string;
  @IsOptional() @int() @IsInt() @Min(0) @Max(100000) KILN_QUOTA_REPOSITORIES?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(100000) KILN_QUOTA_TOKENS?: number;
  @IsOptional() @int() @IsInt() @Min(0) @Max(100000) KILN_QUOTA_SECRETS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(64) KILN_CLONE_CONCURRENCY?: number;
  @IsOptional() @int() @IsInt() @Min(0) @Max(10000) KILN_CLONE_QUEUE?: number;
  @IsOptional() @Matches(/^https?:\/\/[^\s/]+(\/\S*)?$/, { message: 'must be the http(s) URL users reach Kiln at' }) KILN_PUBLIC_URL?: string;
}

/** '512m' -> bytes (binary units); 0 allowed. */
function sizeSetting(s: string): number {
  const bytes = parseSize(s, { zero: true });
  if (bytes === null) throw new ConfigError(`not a size: ${s}`);
  return bytes;
}

export interface JobLimitsConfig {
  memoryBytes: number;
  memoryMaxBytes: number;
  cpus: number;
  cpusMax: number;
  pids: number;
  pidsMax: number;
  workspaceBytes: number;
  workspaceMaxBytes: number;
  tmpBytes: number;
  timeoutMinutes: number;
  timeoutMaxMinutes: number;
}

export type Role = 'serve' | 'api' | 'worker' | 'images';

export interface KilnConfig {
  host: string;
  port: number;
  dataDir: string;
  environmentsDir: string;
  database: { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
  redisUrl: string;
  defaultEnvironment: string;
  debianMirror: string;
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
  logFormat: 'text' | 'json';
  healthTimeoutMs: number;
  workerConcurrency: number;
  /** Sandboxes a worker keeps started ahead of time per GA environment (0: none). */
  warmPool: number;
  /** `kiln worker` serves /metrics on this port when set (the API roles serve it on KILN_PORT). */
  metricsPort: number | null;
  /** Recorded on each job this worker takes (default host:pid). */
  workerName: string;
  /** On SIGTERM a worker stops taking jobs and lets running ones finish this long, then cancels them. */
  shutdownGraceSeconds: number;
  /** A worker's hold on a queue entry; a worker silent this long is presumed lost and its entry taken over. */
  queueLockSeconds: number;
  /** How often the container reaper and the scratch sweeper pass (they also pass at start-up). */
  sweepSeconds: number;
  /** The container runtime for jobs: runc, or runsc (gVisor) for defence in depth. */
  runtime: 'runc' | 'runsc';
  /** What jobs may reach through their egress gateway (nothing by default: no network). */
  egress: EgressConfig;
  /** Environments that run under runsc whatever `runtime` says. */
  runscEnvironments: string[];
  /** This worker's labels: it takes the jobs of environments carrying one of them, besides unlabelled ones. */
  workerLabels: string[];
  /** Environment name -> the label a worker needs to take its jobs (the same on every node). */
  environmentLabels: Record<string, string>;
  /** Where the runner-images/ scripts live (base image bootstrap). */
  runnerImagesDir: string;
  jobs: JobLimitsConfig;
  logCapBytes: number;
  uploadMaxBytes: number;
  artifactMaxBytes: number;
  artifactRetentionDays: number;
  labelMap: Record<string, string>;
  /**
   * The outbound-address policy for every connection the server opens (git clones, commit
   * statuses): schemes allowed, and whether private/special-purpose addresses may be reached.
   */
  outbound: { allowedSchemes: string[]; allowPrivateHosts: boolean };
  /** The same object as `outbound` (git clones follow the outbound policy). */
  git: { allowedSchemes: string[]; allowPrivateHosts: boolean };
  /** Redis key prefix of the queue: deployments sharing one Redis keep apart by it. */
  queuePrefix: string;
  adminToken: string | null;
  secretKey: string | null;
  /** Per-user limits (a user's own quota overrides them). artifactBytes is their storage: artifacts and the sources of runs not yet concluded. */
  quota: {
    concurrentJobs: number;
    queuedRuns: number;
    submissionsPerMinute: number;
    artifactBytes: number;
    tokens: number;
    secrets: number;
    repositories: number;
  };
  /** `{repo}` submissions clone in the request: this many at once per API process, this many more waiting (503 beyond). */
  clones: { concurrency: number; queue: number };
  /** Base of links Kiln gives out (commit statuses); default http://KILN_HOST:KILN_PORT. */
  publicUrl: string;
}

export const KILN_CONFIG = Symbol('KILN_CONFIG');

/** The repository root: dist/src/config -> ../../.. ; src/config -> ../.. */
export function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (require('node:fs').existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** Validates the environment once; a bad value throws ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): KilnConfig {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(env)) {
    if (key.startsWith('KILN_') || key === 'DATABASE_URL' || key === 'REDIS_URL') {
      raw[key] = env[key] === '' ? undefined : env[key];
    }
  }
  const schema = plainToInstance(EnvSchema, raw);
  const errors = validateSync(schema, { forbidUnknownValues: false });
  if (errors.length) {
    const lines = errors.map((e) => {
      const why = Object.values(e.constraints ?? {}).map((m) => m.replace(new RegExp(`^${e.property} `), ''));
      return `${e.property}=${JSON.stringify(raw[e.property])}: ${why.join('; ')}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const root = projectRoot();
  const dataDir = path.resolve(cwd, schema.KILN_DATA_DIR ?? 'data');
  return {
    host: schema.KILN_HOST ?? '127.0.0.1',
    port: schema.KILN_PORT ?? 3000,
    dataDir,
    environmentsDir: path.resolve(cwd, schema.KILN_ENVIRONMENTS_DIR ?? path.join(root, 'environments')),
    database: schema.DATABASE_URL ? { kind: 'postgres', url: schema.DATABASE_URL } : { kind: 'sqlite', file: path.join(dataDir, 'kiln.sqlite') },
    redisUrl: schema.REDIS_URL ?? 'redis://127.0.0.1:6379',
    defaultEnvironment: schema.KILN_DEFAULT_ENVIRONMENT ?? 'python-3.11',
    debianMirror: schema.KILN_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
    logLevel: (schema.KILN_LOG_LEVEL as KilnConfig['logLevel']) ?? 'log',
    logFormat: (schema.KILN_LOG_FORMAT as 'text' | 'json' | undefined) ?? 'text',
    healthTimeoutMs: schema.KILN_HEALTH_TIMEOUT_MS ?? 2000,
    workerConcurrency: schema.KILN_WORKER_CONCURRENCY ?? 2,
    warmPool: schema.KILN_WARM_POOL ?? schema.KILN_WORKER_CONCURRENCY ?? 2,
    metricsPort: schema.KILN_METRICS_PORT ?? null,
    workerName: schema.KILN_WORKER_NAME ?? `${require('node:os').hostname()}:${process.pid}`,
    shutdownGraceSeconds: schema.KILN_SHUTDOWN_GRACE_SECONDS ?? 60,
    queueLockSeconds: schema.KILN_QUEUE_LOCK_SECONDS ?? 30,
    sweepSeconds: schema.KILN_SWEEP_SECONDS ?? 300,
    runtime: (schema.KILN_RUNTIME as 'runc' | 'runsc' | undefined) ?? 'runc',
    runscEnvironments: schema.KILN_RUNSC_ENVIRONMENTS ? schema.KILN_RUNSC_ENVIRONMENTS.split(',') : [],
    workerLabels: schema.KILN_WORKER_LABELS ? [...new Set(schema.KILN_WORKER_LABELS.split(','))] : [],
    environmentLabels: environmentLabels(schema.KILN_ENVIRONMENT_LABELS),
    runnerImagesDir: path.join(root, 'runner-images'),
    jobs: jobLimits(schema),
    queuePrefix: schema.KILN_QUEUE_PREFIX ?? 'kiln',
    adminToken: schema.KILN_ADMIN_TOKEN ?? null,
    publicUrl: (schema.KILN_PUBLIC_URL ?? `http://${schema.KILN_HOST ?? '127.0.0.1'}:${schema.KILN_PORT ?? 3000}`).replace(/\/+$/, ''),
    secretKey: schema.KILN_SECRET_KEY ?? null,
    quota: {
      // Unset, a user may hold every slot of this machine's worker but one, so another user's job always
      // finds one free (a cluster's api nodes do not know the workers' slots: set it there).
      concurrentJobs: schema.KILN_QUOTA_CONCURRENT_JOBS ?? defaultConcurrentJobs(schema.KILN_WORKER_CONCURRENCY ?? 2),
      queuedRuns: schema.KILN_QUOTA_QUEUED_RUNS ?? 20,
      submissionsPerMinute: schema.KILN_QUOTA_SUBMISSIONS_PER_MINUTE ?? 30,
      artifactBytes: sizeSetting(schema.KILN_QUOTA_ARTIFACT_BYTES ?? '1g'),
      repositories: schema.KILN_QUOTA_REPOSITORIES ?? 100,
      tokens: schema.KILN_QUOTA_TOKENS ?? 100,
      secrets: schema.KILN_QUOTA_SECRETS ?? 100,
    },
    clones: { concurrency: schema.KILN_CLONE_CONCURRENCY ?? 2, queue: schema.KILN_CLONE_QUEUE ?? 20 },
    logCapBytes: sizeSetting(schema.KILN_LOG_CAP ?? '64m'),
    uploadMaxBytes: sizeSetting(schema.KILN_UPLOAD_MAX ?? '256m'),
    artifactMaxBytes: sizeSetting(schema.KILN_ARTIFACT_MAX ?? '256m'),
    artifactRetentionDays: schema.KILN_ARTIFACT_RETENTION_DAYS ?? 30,
    labelMap: labelMap(schema.KILN_LABEL_MAP, schema.KILN_DEFAULT_ENVIRONMENT ?? 'python-3.11'),
    ...outboundPolicy(schema),
    egress: egressConfig(schema, (m) => new ConfigError(m)),
  };
}

/** KILN_OUTBOUND_* (or their former names KILN_GIT_*; both set and different is refused). */
function outboundPolicy(schema: EnvSchema): Pick<KilnConfig, 'outbound' | 'git'> {
  const pick = (now: string, nowValue: string | undefined, old: string, oldValue: string | undefined) => {
    if (nowValue !== undefined && oldValue !== undefined && nowValue !== oldValue) {
      throw new ConfigError(
        `invalid configuration:\n  ${now}=${JSON.stringify(nowValue)} and its former name ${old}=${JSON.stringify(oldValue)} disagree; set only ${now}`,
      );
    }
    return nowValue ?? oldValue;
  };
  const outbound = {
    allowedSchemes: (pick('KILN_OUTBOUND_SCHEMES', schema.KILN_OUTBOUND_SCHEMES, 'KILN_GIT_SCHEMES', schema.KILN_GIT_SCHEMES) ?? 'https').split(','),
    allowPrivateHosts:
      pick('KILN_OUTBOUND_ALLOW_PRIVATE', schema.KILN_OUTBOUND_ALLOW_PRIVATE, 'KILN_GIT_ALLOW_PRIVATE', schema.KILN_GIT_ALLOW_PRIVATE) === 'true',
  };
  return { outbound, git: outbound };
}

/** The per-user concurrent jobs when KILN_QUOTA_CONCURRENT_JOBS is not set: the worker's slots but one (at least 1). */
export function defaultConcurrentJobs(workerSlots: number): number {
  return Math.max(1, workerSlots - 1);
}

/** `python-3.13=runsc,python-3.9=old` -> { 'python-3.13': 'runsc', ... }; an environment named twice is refused. */
function environmentLabels(raw: string | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of raw ? raw.split(',') : []) {
    const [env, label] = pair.split('=');
    if (map[env] && map[env] !== label)
      throw new ConfigError(
        `invalid configuration:\n  KILN_ENVIRONMENT_LABELS: ${env} is given two labels (${map[env]}, ${label}); a job's environment needs exactly one`,
      );
    map[env] = label;
  }
  return map;
}

/** GitHub's hosted-runner labels point at the default environment unless KILN_LABEL_MAP says otherwise. */
function labelMap(raw: string | undefined, defaultEnvironment: string): Record<string, string> {
  const map: Record<string, string> = { 'ubuntu-latest': defaultEnvironment, 'ubuntu-24.04': defaultEnvironment, 'ubuntu-22.04': defaultEnvironment };
  for (const pair of raw ? raw.split(',') : []) {
    const [label, env] = pair.split('=');
    map[label] = env;
  }
  return map;
}

function jobLimits(schema: EnvSchema): JobLimitsConfig {
  const j: JobLimitsConfig = {
    memoryBytes: sizeSetting(schema.KILN_JOB_MEMORY ?? '2g'),
    memoryMaxBytes: sizeSetting(schema.KILN_JOB_MEMORY_MAX ?? '8g'),
    cpus: Number(schema.KILN_JOB_CPUS ?? '1'),
    cpusMax: Number(schema.KILN_JOB_CPUS_MAX ?? '2'),
    pids: schema.KILN_JOB_PIDS ?? 256,
    pidsMax: schema.KILN_JOB_PIDS_MAX ?? 1024,
    workspaceBytes: sizeSetting(schema.KILN_JOB_WORKSPACE ?? '512m'),
    workspaceMaxBytes: sizeSetting(schema.KILN_JOB_WORKSPACE_MAX ?? '4g'),
    tmpBytes: sizeSetting(schema.KILN_JOB_TMP ?? '256m'),
    timeoutMinutes: schema.KILN_JOB_TIMEOUT_MINUTES ?? 60,
    timeoutMaxMinutes: schema.KILN_JOB_TIMEOUT_MAX_MINUTES ?? 360,
  };
  const pairs: [string, number, string, number][] = [
    ['KILN_JOB_MEMORY', j.memoryBytes, 'KILN_JOB_MEMORY_MAX', j.memoryMaxBytes],
    ['KILN_JOB_CPUS', j.cpus, 'KILN_JOB_CPUS_MAX', j.cpusMax],
    ['KILN_JOB_PIDS', j.pids, 'KILN_JOB_PIDS_MAX', j.pidsMax],
    ['KILN_JOB_WORKSPACE', j.workspaceBytes, 'KILN_JOB_WORKSPACE_MAX', j.workspaceMaxBytes],
    ['KILN_JOB_TIMEOUT_MINUTES', j.timeoutMinutes, 'KILN_JOB_TIMEOUT_MAX_MINUTES', j.timeoutMaxMinutes],
  ];
  const bad = pairs.filter(([, d, , max]) => d > max).map(([name, , maxName]) => `${name}: the default is above ${maxName}`);
  if (j.memoryBytes < 64 * 1024 * 1024) bad.push('KILN_JOB_MEMORY: must be at least 64m');
  if (bad.length) throw new ConfigError(`invalid configuration:\n  ${bad.join('\n  ')}`);
  return j;
}
