import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { Client as PgClient } from 'pg';
import { KILN_BIN, ROOT } from '../helpers';

const run = promisify(execFile);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value; throws `what` (and the last value) after timeoutMs. */
export async function until<T>(what: string, check: () => Promise<T> | T, timeoutMs: number, everyMs = 200): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await check();
      if (last) return last as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/**
 * One process of the deployment (the API, a worker, redis-server). Its stdout and stderr go to a file
 * of its own in the logs folder (each incarnation a new file) and are kept in memory for assertions.
 */
export class Proc {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private out = '';

  constructor(
    readonly name: string,
    readonly logFile: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    const file = fs.createWriteStream(logFile, { flags: 'a' });
    this.proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [this.proc.stdout!, this.proc.stderr!]) {
      s.on('data', (d: Buffer) => {
        this.out += d.toString();
        file.write(d);
      });
    }
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        file.end(`\n[harness] ${name} (pid ${this.proc.pid}) exited: ${signal ?? code}\n`);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(sig);
  }

  /** Sends `sig` and waits for the exit (SIGKILL after timeoutMs). */
  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<void> {
    if (!this.alive) return;
    this.proc.kill(sig);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }

  async waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return until(
      `${this.name}: output matching ${re}`,
      () => {
        if (!this.alive && !re.test(this.out)) throw new Error(`${this.name} exited`);
        return this.out.match(re);
      },
      timeoutMs,
      100,
    );
  }
}

/** The last `lines` lines of every file in the logs folder: printed with a failure. */
export function tails(dir: string, lines = 40): string {
  const parts: string[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8').split('\n');
    parts.push(`----- ${f} (last ${Math.min(lines, text.length)} lines) -----\n${text.slice(-lines).join('\n')}`);
  }
  return parts.join('\n');
}

/** Starts a Kiln server role as a process on the built CLI. */
export function kilnProcess(name: string, logDir: string, role: 'api' | 'worker', env: Record<string, string>): Proc {
  const n = fs.readdirSync(logDir).filter((f) => f.startsWith(`${name}.`)).length + 1;
  return new Proc(name, path.join(logDir, `${name}.${n}.log`), process.execPath, [KILN_BIN, role], { ...process.env, ...env });
}

/** A throwaway PostgreSQL of this test (.ci/postgres.sh), with its data folder for halt/resume. */
export class Postgres {
  private constructor(
    readonly url: string,
    readonly dir: string,
  ) {}

  static async start(): Promise<Postgres> {
    const { stdout } = await run('bash', [path.join(ROOT, '.ci', 'postgres.sh')], { timeout: 600_000 });
    const [url, dir] = stdout.trim().split(/\s+/);
    if (!url?.startsWith('postgres://') || !dir) throw new Error(`.ci/postgres.sh printed '${stdout.trim()}'`);
    return new Postgres(url, dir);
  }

  halt(): Promise<unknown> {
    return run('bash', [path.join(ROOT, '.ci', 'postgres.sh'), 'halt', this.dir], { timeout: 60_000 });
  }

  resume(): Promise<unknown> {
    return run('bash', [path.join(ROOT, '.ci', 'postgres.sh'), 'resume', this.dir], { timeout: 60_000 });
  }

  stop(): Promise<unknown> {
    return run('bash', [path.join(ROOT, '.ci', 'postgres.sh'), 'stop', this.dir], { timeout: 60_000 });
  }

  /** One query on a connection of its own (the test's view of the records). */
  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new PgClient({ connectionString: this.url, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  }
}

/** The test's own redis-server (its own port and folder, append-only file): never the machine's Redis. */
export class RedisServer {
  proc?: Proc;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly logDir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const n = fs.readdirSync(this.logDir).filter((f) => f.startsWith('redis.')).length + 1;
    // appendfsync always: every write is on disk before Redis answers, so a SIGKILL loses nothing acknowledged.
    this.proc = new Proc(
      'redis',
      path.join(this.logDir, `redis.${n}.log`),
      'redis-server',
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--dir',
        this.dir,
        '--daemonize',
        'no',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      process.env,
    );
    await until('redis-server answers PING', () => this.ping(), 15_000, 100);
  }

  async ping(): Promise<boolean> {
    try {
      const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), 'ping'], { timeout: 3000 });
      return stdout.trim() === 'PONG';
    } catch {
      return false;
    }
  }

  async kill(): Promise<void> {
    await this.proc?.stop('SIGKILL');
  }
}

// --- the machine's Docker engine ------------------------------------------------------------------

const DOCKER_SOCKET = '/var/run/docker.sock';

export function dockerPing(timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: DOCKER_SOCKET, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.on('error', () => resolve(false));
  });
}

async function dockerdPids(): Promise<number[]> {
  try {
    const { stdout } = await run('pidof', ['dockerd']);
    return stdout.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** True while the process exists and is not a zombie (a dead dockerd whose parent has not reaped it is gone). */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Where a running dockerd writes its output, when that is a file (so a restart keeps logging there). */
function dockerdLog(pid: number): string | null {
  try {
    const target = fs.readlinkSync(`/proc/${pid}/fd/1`);
    return target.startsWith('/') && !target.endsWith(' (deleted)') && fs.statSync(target).isFile() ? target : null;
  } catch {
    return null;
  }
}

/**
 * Starts dockerd exactly as .ci/prereqs.sh does (detached, output to a log file) and waits for /_ping.
 * The log is the one the previous dockerd wrote to, else prereqs.sh's (data/logs/dockerd.log); appended to.
 */
export async function startDockerd(log: string | null = null): Promise<void> {
  if (!log) {
    fs.mkdirSync(path.join(ROOT, 'data', 'logs'), { recursive: true });
    log = path.join(ROOT, 'data', 'logs', 'dockerd.log');
  }
  await run('bash', ['-c', 'setsid nohup dockerd >>"$1" 2>&1 </dev/null &', 'start-dockerd', log]);
  await until(`dockerd answers /_ping (log: ${log})`, () => dockerPing(), 60_000, 250);
}

/** SIGTERM to the machine's dockerd, wait until it is gone, start it again. Live-restore is off: containers die. */
export async function restartDockerd(): Promise<{ stoppedMs: number }> {
  const pids = await dockerdPids();
  if (pids.length !== 1) throw new Error(`expected one dockerd, found pids [${pids.join(', ')}]`);
  const log = dockerdLog(pids[0]);
  const t0 = Date.now();
  process.kill(pids[0], 'SIGTERM');
  await until(`dockerd (pid ${pids[0]}) exits after SIGTERM`, () => !pidAlive(pids[0]), 90_000, 200);
  const stoppedMs = Date.now() - t0;
  await startDockerd(log);
  return { stoppedMs };
}

/** Makes sure the machine's engine answers again (a failed test must not leave it down). */
export async function ensureDockerd(): Promise<void> {
  if (await dockerPing()) return;
  if ((await dockerdPids()).length === 0) await startDockerd();
  await until('dockerd answers /_ping', () => dockerPing(), 60_000, 250);
}

/** Containers (running or not) of one deployment, by Kiln's labels (src/docker/job-sandbox.ts). */
export async function containersOfDeployment(prefix: string): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-a', '-q', '--filter', 'label=kiln.managed=true', '--filter', `label=kiln.deployment=${prefix}`]);
  return stdout.split('\n').filter(Boolean);
}

/** The deployment's containers by kind: job sandboxes (kiln-job-<id>) and idle warm ones with their owner's pid. */
export async function sandboxesOfDeployment(prefix: string): Promise<{ jobs: string[]; idle: { name: string; pid: number }[] }> {
  const { stdout } = await run('docker', [
    'ps',
    '-a',
    '--filter',
    'label=kiln.managed=true',
    '--filter',
    `label=kiln.deployment=${prefix}`,
    '--format',
    '{{.Names}}\t{{.Label "kiln.pool"}}',
  ]);
  const out = { jobs: [] as string[], idle: [] as { name: string; pid: number }[] };
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [name, pool] = line.split('\t');
    if (!name.startsWith('kiln-job-') && pool) out.idle.push({ name, pid: Number(pool.split('~')[2]) });
    else out.jobs.push(name);
  }
  return out;
}

export async function containerOfJob(jobId: string): Promise<{ id: string; state: string } | null> {
  // Named kiln-job-<id> whether created for the job or a warm sandbox it took (renamed).
  const { stdout } = await run('docker', ['ps', '-a', '--filter', `name=kiln-job-${jobId}`, '--format', '{{.ID}} {{.State}}']);
  const line = stdout.trim().split('\n').filter(Boolean)[0];
  if (!line) return null;
  const [id, state] = line.split(' ');
  return { id, state };
}

/** Removes what a failed test may have left of this deployment (never another's). */
export async function removeContainersOf(prefix: string): Promise<void> {
  const ids = await containersOfDeployment(prefix).catch(() => []);
  if (ids.length) await run('docker', ['rm', '-f', ...ids]).catch(() => undefined);
}

/** A Prometheus sample's value from a /metrics text, e.g. metric('kiln_queue_jobs', {state: 'waiting'}). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      (m[2] ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => {
          const i = kv.indexOf('=');
          return [kv.slice(0, i), kv.slice(i + 1).replace(/^"|"$/g, '')];
        }),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return null;
}

/**
 * Checks of a documented outcome that are recorded instead of thrown at once, so that one outcome
 * that differs from docs/scaling.md does not hide whether the rest of the fault's outcomes hold.
 * `done()` fails the case with every difference found.
 */
export class Outcomes {
  readonly problems: string[] = [];

  private record(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.problems.push((e as Error).message.split('\n')[0]);
    }
  }

  ok(value: unknown, message: string): void {
    this.record(() => assert.ok(value, message));
  }

  equal<T>(actual: T, expected: T, message: string): void {
    this.record(() => assert.equal(actual, expected, `${message} (expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)})`));
  }

  match(actual: string, re: RegExp, message: string): void {
    this.record(() => assert.match(actual, re, `${message} (expected ${re}, got ${JSON.stringify(actual)})`));
  }

  done(what: string): void {
    if (this.problems.length) assert.fail(`${what}: ${this.problems.length} outcome(s) differ from docs/scaling.md:\n  - ${this.problems.join('\n  - ')}`);
  }
}
