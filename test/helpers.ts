import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppModule, configureHttp } from '../src/app';
import { KilnConfig, loadConfig, projectRoot, Role } from '../src/config/config';
import { DockerEngine } from '../src/docker/docker-engine';
export { freePort } from './fixtures/ports';
import { freePort } from './fixtures/ports';

export const ROOT = projectRoot();
/** The admin token every test server is started with (KILN_ADMIN_TOKEN). */
export const TEST_ADMIN_TOKEN = 'kiln_test_admin_token_0123456789abcdef';
export const KILN_BIN = path.join(ROOT, 'src', 'bin', 'kiln.js');

/**
 * Each test server is a deployment of its own (queue keys, container labels), so it never shares a
 * queue with, or reaps the containers of, another test or a developer's running Kiln.
 */
export function uniquePrefix(): string {
  return `test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

export function tmpDir(prefix = 'kiln-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A configuration of its own for one test file: its own data folder (SQLite, files). */
export function testConfig(env: Record<string, string> = {}): KilnConfig {
  return loadConfig({ KILN_DATA_DIR: tmpDir(), KILN_LOG_LEVEL: 'error', KILN_ADMIN_TOKEN: TEST_ADMIN_TOKEN, KILN_QUEUE_PREFIX: uniquePrefix(), ...env });
}

/** The Nest app as `kiln serve` builds it, optionally with the engine replaced. */
export async function createTestApp(config: KilnConfig, opts: { engine?: unknown; role?: Role } = {}): Promise<INestApplication> {
  let builder = Test.createTestingModule({ imports: [AppModule.forRole(config, opts.role ?? 'serve')] });
  if (opts.engine) builder = builder.overrideProvider(DockerEngine).useValue(opts.engine);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication({ logger: ['error'], rawBody: true });
  configureHttp(app);
  await app.init();
  return app;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `kiln` CLI as a user would, to completion. */
export function runKiln(args: string[], env: Record<string, string>, timeoutMs = 600_000, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [KILN_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`kiln ${args.join(' ')} timed out\n${stderr}`));
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `kiln serve` (or another role) as a process and waits until it answers. */
export async function startServer(
  env: Record<string, string>,
  role: Role = 'serve',
): Promise<{ url: string; proc: ChildProcess; stop: () => Promise<void>; output: () => string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [KILN_BIN, role], {
    // No warm pool unless a test asks for one (KILN_WARM_POOL): tests count the engine's containers.
    env: {
      ...process.env,
      KILN_PORT: String(port),
      KILN_HOST: '127.0.0.1',
      KILN_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      KILN_QUEUE_PREFIX: uniquePrefix(),
      KILN_SHUTDOWN_GRACE_SECONDS: '5',
      KILN_WARM_POOL: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d;
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d;
  });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`kiln ${role} exited with ${proc.exitCode}:\n${out}`);
    try {
      const res = await fetch(`${url}/api/v1/health`);
      if (res.status === 200 || res.status === 503) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`kiln ${role} did not answer within 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
