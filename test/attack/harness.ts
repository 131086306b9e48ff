import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { runKiln, startServer, tmpDir, uniquePrefix } from '../helpers';
import { Client } from '../e2e/runs-helpers';

/**
 * The attack suite's harness. The suite runs once per container runtime: `.ci/test.sh attack`
 * sets KILN_TEST_RUNTIME to runc, then to runsc, and every server here is started with
 * KILN_RUNTIME set to it.
 */
export const RUNTIME = (process.env.KILN_TEST_RUNTIME ?? 'runc') as 'runc' | 'runsc';

const run = promisify(execFile);

export interface AttackServer {
  kiln: Client;
  url: string;
  data: string;
  prefix: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** `kiln images` (cached) into a fresh data folder, then `kiln serve` on the suite's runtime. */
export async function startAttackServer(env: Record<string, string> = {}): Promise<AttackServer> {
  const data = tmpDir('kiln-attack-');
  const images = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
  assert.equal(images.code, 0, images.stderr);
  const prefix = uniquePrefix();
  const server = await startServer({
    KILN_DATA_DIR: data,
    KILN_QUEUE_PREFIX: prefix,
    KILN_WORKER_CONCURRENCY: '2',
    KILN_LOG_LEVEL: 'warn',
    KILN_RUNTIME: RUNTIME,
    ...env,
  });
  return { kiln: new Client(server.url), url: server.url, data, prefix, output: server.output, stop: server.stop };
}

interface DockerState {
  /** Containers that are not another Kiln deployment's (other test servers may run beside us). */
  containers: string[];
  volumes: string[];
  networks: string[];
  images: string[];
}

/**
 * What an attack must never change on the host: a canary folder holding a secret (world-readable,
 * so a job that could see the host's files could read it), well-known host files, the host's temp
 * folder (nothing named like `pwned` may appear), and the engine's containers, volumes, networks
 * and images.
 */
export class HostWatch {
  readonly canaryDir: string;
  readonly secretPath: string;
  /** Random text in the canary file: it must never appear in any log or answer. */
  readonly secret: string;
  private baseline!: { files: Record<string, string>; docker: DockerState };

  private constructor(private readonly deployment: string) {
    this.canaryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-canary-'));
    fs.chmodSync(this.canaryDir, 0o755);
    this.secret = `canary-${randomBytes(12).toString('hex')}`;
    this.secretPath = path.join(this.canaryDir, 'secret.txt');
    fs.writeFileSync(this.secretPath, `${this.secret}\n`, { mode: 0o644 });
  }

  /** Takes the baseline after the server is up (its own containers are then none). */
  static async create(server: AttackServer): Promise<HostWatch> {
    const w = new HostWatch(server.prefix);
    w.baseline = { files: w.files(), docker: await w.docker() };
    return w;
  }

  /** Host files watched: the canary folder (every entry), a few system files. Value: sha256 + mode + mtime. */
  private files(): Record<string, string> {
    const out: Record<string, string> = {};
    const watch = ['/etc/passwd', '/etc/hosts', '/etc/shadow', '/etc/docker/daemon.json', '/root/.bashrc'];
    for (const name of fs.readdirSync(this.canaryDir)) watch.push(path.join(this.canaryDir, name));
    watch.push(this.canaryDir);
    for (const f of watch) {
      const st = fs.lstatSync(f, { throwIfNoEntry: false });
      if (!st) {
        out[f] = 'absent';
        continue;
      }
      const digest = st.isFile()
        ? createHash('sha256').update(fs.readFileSync(f)).digest('hex')
        : st.isDirectory()
          ? fs.readdirSync(f).sort().join(',')
          : 'other';
      out[f] = `${digest} ${st.mode.toString(8)} ${st.mtimeMs}`;
    }
    return out;
  }

  private async docker(): Promise<DockerState> {
    const lines = async (args: string[]) => (await run('docker', args, { encoding: 'utf8' })).stdout.split('\n').filter(Boolean).sort();
    const containers = (await lines(['ps', '-a', '--format', '{{.ID}} {{.Label "kiln.deployment"}}']))
      .filter((l) => {
        const dep = l.split(' ')[1] ?? '';
        return dep === '' || dep === this.deployment;
      })
      .map((l) => l.split(' ')[0]);
    return {
      containers,
      volumes: await lines(['volume', 'ls', '-q']),
      networks: await lines(['network', 'ls', '-q']),
      images: await lines(['images', '-q', '--no-trunc']),
    };
  }

  /** Files in the host's temp folder whose names say an attack got out (attacks name their markers `*pwned*`). */
  private pwnedMarkers(): string[] {
    const found: string[] = [];
    for (const dir of [os.tmpdir(), '/tmp', '/', '/root', '/etc']) {
      for (const name of fs.readdirSync(dir)) if (/pwned/i.test(name)) found.push(path.join(dir, name));
    }
    return [...new Set(found)];
  }

  /**
   * Asserts that nothing outside the job changed: watched files identical, no `pwned` marker,
   * no container of this deployment left, no new container/volume/network/image.
   */
  async assertUnchanged(what: string): Promise<void> {
    assert.deepEqual(this.files(), this.baseline.files, `${what}: a watched host file changed`);
    assert.deepEqual(this.pwnedMarkers(), [], `${what}: an attack left a marker on the host`);
    // A finished job's sandbox is removed while its run is recorded (runsc teardown under load can take
    // many seconds): allow 60 s before calling a container left behind.
    let docker = await this.docker();
    for (let i = 0; i < 120 && docker.containers.length > this.baseline.docker.containers.length; i++) {
      await new Promise((r) => setTimeout(r, 500));
      docker = await this.docker();
    }
    const changes = (Object.keys(docker) as (keyof DockerState)[]).flatMap((k) => [
      ...docker[k].filter((x) => !this.baseline.docker[k].includes(x)).map((x) => `${k} +${x}`),
      ...this.baseline.docker[k].filter((x) => !docker[k].includes(x)).map((x) => `${k} -${x}`),
    ]);
    assert.deepEqual(changes, [], `${what}: the engine's containers, volumes, networks or images changed`);
  }

  /** Asserts the text holds neither the canary secret nor the host's root password hash line. */
  assertNoLeak(text: string, what: string): void {
    assert.ok(!text.includes(this.secret), `${what}: the host's canary secret leaked`);
    assert.doesNotMatch(text, /^root:[^:*!x]{2,}:/m, `${what}: the host's shadow file leaked`);
  }

  cleanup(): void {
    fs.rmSync(this.canaryDir, { recursive: true, force: true });
  }
}

/** The service is healthy: health answers 200 within 5 s, and a trivial job still runs to success. */
export async function assertServing(kiln: Client, what: string): Promise<void> {
  const t0 = Date.now();
  const health = await fetch(`${kiln.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
  assert.equal(health.status, 200, `${what}: health answered ${health.status} after ${Date.now() - t0} ms: ${await health.text()}`);
  const run = await kiln.accepted(kiln.submitJson({ command: 'echo still-serving' }));
  const done = await kiln.waitFor(run.id, 120_000);
  assert.equal(done.conclusion, 'success', `${what}: a trivial job after the attack: ${JSON.stringify(done.jobs)}`);
}

/** The error body Kiln answers with for a refused request. */
export async function refusal(res: Response | Promise<Response>): Promise<{ status: number; message: string; body: Record<string, unknown> }> {
  const r = await res;
  const text = await r.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: r.status, message: String(body.message ?? text), body };
}

/** Ids of runs the server holds (to prove a refusal recorded nothing). */
export async function runCount(kiln: Client): Promise<number> {
  const res = await kiln.fetch('/api/v1/runs?limit=500');
  assert.equal(res.status, 200);
  return ((await res.json()) as unknown[]).length;
}
