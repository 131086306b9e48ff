/**
 * Kiln processes of the bench's own (own data folder, port, queue prefix; never the Kiln a user runs)
 * and a small client of its API.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { loadConfig, projectRoot, KilnConfig } from '../../src/config/config';
import { removeKilnContainers } from './docker';
import { must } from './proc';
import { say, sleep } from './util';
import { freePort } from '../../test/fixtures/ports';

export const ROOT = projectRoot();
export const KILN_BIN = path.join(ROOT, 'src', 'bin', 'kiln.js');
export const ENVIRONMENT = 'python-3.11';

/** The caller's environment without any Kiln setting (a developer's KILN_DATA_DIR or KILN_PORT must not leak in). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KILN_') && k !== 'DATABASE_URL') env[k] = v;
  return env;
}

export interface RunView {
  id: string;
  status: string;
  conclusion: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  jobs: {
    id: string;
    key: string;
    status: string;
    conclusion: string | null;
    error: string | null;
    startedAt: string | null;
    finishedAt: string | null;
    /** what the job reached through its egress gateway; null without one */
    egress?: unknown;
    steps: {
      index: number;
      name: string;
      status: string;
      conclusion: string | null;
      exitCode: number | null;
      startedAt: string | null;
      finishedAt: string | null;
    }[];
  }[];
  artifacts: { name: string; sizeBytes: number; files: number }[];
}

/** Settings every bench Kiln gets: quotas out of the way (the bench submits thousands of runs as one user). */
const BENCH_DEFAULTS: Record<string, string> = {
  KILN_LOG_LEVEL: 'warn',
  KILN_SHUTDOWN_GRACE_SECONDS: '5',
  KILN_QUOTA_QUEUED_RUNS: '100000',
  KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '100000',
  KILN_QUOTA_CONCURRENT_JOBS: '1000',
  KILN_QUOTA_ARTIFACT_BYTES: '100g',
};

/** One `kiln serve` (or `kiln api`) process of the bench. */
export class KilnServer {
  readonly url: string;
  readonly token: string;
  readonly prefix: string;
  readonly dataDir: string;
  readonly env: Record<string, string>;
  readonly config: KilnConfig;
  proc: ChildProcess | null = null;
  private output = '';
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  private constructor(
    readonly name: string,
    readonly role: 'serve' | 'api',
    port: number,
    extra: Record<string, string>,
  ) {
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${name}-`));
    this.prefix = `kbench-${process.pid}-${randomBytes(3).toString('hex')}-${name}`;
    this.token = `kiln_bench_${randomBytes(16).toString('hex')}`;
    this.url = `http://127.0.0.1:${port}`;
    this.env = {
      ...BENCH_DEFAULTS,
      ...extra,
      KILN_DATA_DIR: this.dataDir,
      KILN_HOST: '127.0.0.1',
      KILN_PORT: String(port),
      KILN_QUEUE_PREFIX: this.prefix,
      KILN_ADMIN_TOKEN: this.token,
    };
    this.config = loadConfig(this.env);
  }

  get pid(): number {
    return this.proc!.pid!;
  }

  /** Publishes the environment (and any other `images`, e.g. egress-gateway) into the server's own database (images are cached: seconds), then starts it. */
  static async start(name: string, extra: Record<string, string> = {}, role: 'serve' | 'api' = 'serve', images = [ENVIRONMENT]): Promise<KilnServer> {
    const s = new KilnServer(name, role, await freePort(), extra);
    say(
      `starting kiln ${role} '${name}' (${
        Object.entries(extra)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || 'defaults'
      }; data ${s.dataDir}, prefix ${s.prefix})`,
    );
    await must(process.execPath, [KILN_BIN, 'images', ...images], { env: { ...cleanEnv(), ...s.env }, cwd: ROOT, timeoutMs: 20 * 60_000 });
    await s.spawn();
    return s;
  }

  private async spawn(): Promise<void> {
    this.output = '';
    const proc = spawn(process.execPath, [...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_PROF] : []), KILN_BIN, this.role], {
      env: { ...cleanEnv(), ...this.env },
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-20_000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`kiln ${this.role} '${this.name}' exited with ${proc.exitCode}:\n${this.output}`);
      try {
        const res = await fetch(`${this.url}/api/v1/health`);
        if (res.status === 200) break;
        if (res.status === 503 && Date.now() > deadline - 60_000) throw new Error(`kiln '${this.name}' is unhealthy: ${await res.text()}`);
      } catch (e) {
        if ((e as Error).message.startsWith('kiln ')) throw e;
      }
      if (Date.now() > deadline) throw new Error(`kiln '${this.name}' did not answer within 90 s:\n${this.output}`);
      await sleep(100);
    }
  }

  logTail(): string {
    return this.output.slice(-4000);
  }

  /** Stops the process (SIGTERM, SIGKILL after 20 s), removes its containers, Redis keys and data folder. */
  async stop(keepData = false): Promise<{ leftContainers: number }> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      const killed = setTimeout(() => p.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(killed);
    }
    this.agent.destroy();
    const leftContainers = await removeKilnContainers(this.prefix);
    await deleteRedisKeys(this.config.redisUrl, this.prefix);
    if (!keepData) fs.rmSync(this.dataDir, { recursive: true, force: true });
    return { leftContainers };
  }

  // ---- the API ----

  async request(method: string, p: string, body?: unknown): Promise<{ status: number; body: unknown; ms: number }> {
    const t0 = performance.now();
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, ms: performance.now() - t0 };
  }

  async json<T>(method: string, p: string, body?: unknown): Promise<T> {
    const r = await this.request(method, p, body);
    if (r.status >= 300) throw new Error(`${method} ${p} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 500)}`);
    return r.body as T;
  }

  /** The quick form: one command in the bench environment. */
  submitCommand(command: string): Promise<RunView> {
    return this.json<RunView>('POST', '/api/v1/runs', { command, environment: ENVIRONMENT });
  }

  getRun(id: string): Promise<RunView> {
    return this.json<RunView>('GET', `/api/v1/runs/${id}`);
  }

  async waitCompleted(id: string, timeoutMs = 600_000, everyMs = 250): Promise<RunView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.getRun(id);
      if (r.status === 'completed') return r;
      if (Date.now() > deadline) throw new Error(`run ${id} not completed after ${timeoutMs / 1000} s: ${JSON.stringify(r).slice(0, 800)}`);
      await sleep(everyMs);
    }
  }

  /** The image id the catalogue measured for the bench environment (what `runs-on` resolves to), and its tag. */
  async image(): Promise<{ id: string; ref: string }> {
    const report = await this.json<{ image?: { id?: string; ref?: string } }>('GET', `/api/v1/environments/${ENVIRONMENT}/latest`);
    if (!report.image?.id) throw new Error(`the catalogue's report of ${ENVIRONMENT} names no image: ${JSON.stringify(report).slice(0, 300)}`);
    return { id: report.image.id, ref: report.image.ref ?? report.image.id };
  }

  /**
   * POSTs a multipart submission with `source` streamed from a file; resolves with the answer.
   * `fields` go first (the workflow as a text field).
   */
  submitTarball(file: string, fields: Record<string, string>): Promise<{ status: number; body: RunView }> {
    const boundary = `kiln-bench-${randomBytes(8).toString('hex')}`;
    const head = Buffer.concat([
      ...Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="source.tar"\r\nContent-Type: application/x-tar\r\n\r\n`),
    ]);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const size = fs.statSync(file).size;
    return new Promise((resolve, reject) => {
      const req = http.request(
        `${this.url}/api/v1/runs`,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.token}`,
            'content-type': `multipart/form-data; boundary=${boundary}`,
            'content-length': String(head.length + size + tail.length),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => {
            text += d;
          });
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as RunView });
            } catch {
              reject(new Error(`upload answered ${res.statusCode}: ${text.slice(0, 300)}`));
            }
          });
        },
      );
      req.on('error', reject);
      req.write(head);
      const rs = fs.createReadStream(file, { highWaterMark: 1 << 20 });
      rs.on('error', reject);
      rs.on('end', () => req.end(tail));
      rs.pipe(req, { end: false });
    });
  }

  /** A keep-alive GET for the load generator: resolves with the status when the whole answer arrived. */
  getRaw(p: string): Promise<number> {
    return new Promise((resolve) => {
      const req = http.request(`${this.url}${p}`, { agent: this.agent, headers: { authorization: `Bearer ${this.token}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  }

  /**
   * Follows a run's live log (server-sent events) until `event: end`. Calls onRecord for the first
   * `parseFirst` events only (JSON parsing 2 million events would load the bench's own CPU); the rest
   * are counted by their separators.
   */
  async follow(
    id: string,
    onRecord: (r: { s: string; i: number; l: string }, atMs: number) => void,
    parseFirst = Infinity,
  ): Promise<{ events: number; bytes: number }> {
    const res = await fetch(`${this.url}/api/v1/runs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${this.token}` } });
    if (res.status !== 200) throw new Error(`following ${id}: ${res.status} ${await res.text()}`);
    let events = 0;
    let bytes = 0;
    let tail = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      const text = tail + Buffer.from(chunk).toString('latin1');
      let from = 0;
      let i: number;
      while ((i = text.indexOf('\n\n', from)) >= 0) {
        const event = text.slice(from, i);
        from = i + 2;
        if (event.startsWith('event: end')) return { events, bytes };
        if (!event.startsWith('data: ')) continue;
        events++;
        if (events <= parseFirst)
          onRecord(JSON.parse(Buffer.from(event.slice(6), 'latin1').toString('utf8')) as { s: string; i: number; l: string }, performance.now());
      }
      tail = text.slice(from);
    }
    return { events, bytes };
  }
}

/** Deletes the Redis keys of one bench deployment (its queue prefix): nothing else. */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  let n = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return n;
}

/** Timestamps of a run's records, in ms since the epoch (NaN when not set). */
export function ms(iso: string | null | undefined): number {
  return iso ? Date.parse(iso) : NaN;
}
