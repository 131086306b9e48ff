import * as path from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, validateSync } from 'class-validator';

/** Thrown when an environment variable has a bad value; the message names the variable. */
export class ConfigError extends Error {}

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
  @IsOptional() @int() @IsInt() @Min(1000) @Max(600000) KILN_HEALTH_TIMEOUT_MS?: number;
  @IsOptional() @int() @IsInt() @Min(1) @Max(64) KILN_WORKER_CONCURRENCY?: number;
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
  healthTimeoutMs: number;
  workerConcurrency: number;
  /** Where the runner-images/ scripts live (base image bootstrap). */
  runnerImagesDir: string;
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
    database: schema.DATABASE_URL
      ? { kind: 'postgres', url: schema.DATABASE_URL }
      : { kind: 'sqlite', file: path.join(dataDir, 'kiln.sqlite') },
    redisUrl: schema.REDIS_URL ?? 'redis://127.0.0.1:6379',
    defaultEnvironment: schema.KILN_DEFAULT_ENVIRONMENT ?? 'python-3.11',
    debianMirror: schema.KILN_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
    logLevel: (schema.KILN_LOG_LEVEL as KilnConfig['logLevel']) ?? 'log',
    healthTimeoutMs: schema.KILN_HEALTH_TIMEOUT_MS ?? 2000,
    workerConcurrency: schema.KILN_WORKER_CONCURRENCY ?? 2,
    runnerImagesDir: path.join(root, 'runner-images'),
  };
}
