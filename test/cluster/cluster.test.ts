import { after, before, describe, test, TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, runKiln, TEST_ADMIN_TOKEN, tmpDir, uniquePrefix } from '../helpers';
import {
  containerOfJob,
  ensureDockerd,
  sandboxesOfDeployment,
  kilnProcess,
  metric,
  Outcomes,
  Postgres,
  Proc,
  RedisServer,
  removeContainersOf,
  restartDockerd,
  sleep,
  tails,
  until,
} from './harness';

/**
 * The cluster tier (issue 10): one API and two workers as processes against one PostgreSQL and one
 * Redis, sharing one data folder, on the machine's Docker engine. Normal work first, then each fault of
 * docs/scaling.md injected in turn and its documented outcome asserted; at the end no accepted run is
 * missing or unfinished and no job container of this deployment is left.
 */

interface Step {
  index: number;
  name: string;
  status: string;
  outcome: string | null;
  conclusion: string | null;
  exitCode: number | null;
  reason: string | null;
}
interface Job {
  id: string;
  key: string;
  status: string;
  conclusion: string | null;
  error: string | null;
  worker: string | null;
  attempts: number;
  steps: Step[];
}
interface View {
  id: string;
  status: string;
  conclusion: string | null;
  jobs: Job[];
}

const LOCK_SECONDS = 4;
const SWEEP_SECONDS = 3;
const WORKERS = ['w1', 'w2'] as const;
type WorkerName = (typeof WORKERS)[number];

class Cluster {
  readonly prefix = uniquePrefix();
  readonly data = tmpDir('kiln-cluster-data-');
  readonly logDir = tmpDir('kiln-cluster-logs-');
  readonly secretKey = randomBytes(32).toString('base64');
  pg!: Postgres;
  redis!: RedisServer;
  apiPort!: number;
  api?: Proc;
  readonly workers = new Map<WorkerName, Proc>();
  /** Every run the API answered 201 for: none may go missing or stay unfinished. */
  readonly accepted = new Set<string>();

  get url(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  env(): Record<string, string> {
    return {
      KILN_DATA_DIR: this.data,
      DATABASE_URL: this.pg.url,
      REDIS_URL: this.redis.url,
      KILN_QUEUE_PREFIX: this.prefix,
      KILN_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      KILN_SECRET_KEY: this.secretKey,
      KILN_LOG_LEVEL: 'log',
      KILN_HOST: '127.0.0.1',
      KILN_QUEUE_LOCK_SECONDS: String(LOCK_SECONDS),
      KILN_SWEEP_SECONDS: String(SWEEP_SECONDS),
      KILN_SHUTDOWN_GRACE_SECONDS: '2',
      KILN_WORKER_CONCURRENCY: '2',
      KILN_QUOTA_CONCURRENT_JOBS: '8',
      KILN_QUOTA_QUEUED_RUNS: '500',
      KILN_QUOTA_SUBMISSIONS_PER_MINUTE: '1000',
    };
  }

  async startApi(): Promise<Proc> {
    const api = kilnProcess('api', this.logDir, 'api', { ...this.env(), KILN_PORT: String(this.apiPort) });
    this.api = api;
    await until(
      'the API answers /api/v1/health',
      async () => {
        if (!api.alive) throw new Error(`the API exited:\n${api.output().slice(-3000)}`);
        const res = await fetch(`${this.url}/api/v1/health`, { signal: AbortSignal.timeout(3000) });
        return res.status === 200;
      },
      60_000,
    );
    return api;
  }

  async startWorker(name: WorkerName): Promise<Proc> {
    const w = kilnProcess(name, this.logDir, 'worker', { ...this.env(), KILN_WORKER_NAME: name });
    this.workers.set(name, w);
    await w.waitForOutput(/worker taking jobs/, 60_000);
    return w;
  }

  worker(name: string): Proc {
    const w = this.workers.get(name as WorkerName);
    assert.ok(w, `a worker named ${name}`);
    return w;
  }

  /** Before each case: every process of the deployment up (a failed case must not fail the next ones). */
  async ensureUp(): Promise<void> {
    await ensureDockerd();
    if (!(await this.redis.ping())) await this.redis.start();
    if (
      !(await this.pg.query('SELECT 1').then(
        () => true,
        () => false,
      ))
    )
      await this.pg.resume();
    if (!this.api?.alive) await this.startApi();
    for (const name of WORKERS) if (!this.workers.get(name)?.alive) await this.startWorker(name);
  }

  fetch(p: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.url}${p}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(init.headers as Record<string, string> | undefined) },
      signal: AbortSignal.timeout(15_000),
    });
  }

  /** POST /api/v1/runs in the quick form; a 201 is remembered as accepted. */
  async submit(body: {
    command: string;
    environment?: string;
    files?: Record<string, string>;
  }): Promise<{ status: number; headers: Headers; body: { id?: string; message?: string } & Partial<View> }> {
    const res = await this.fetch('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as { id?: string; message?: string } & Partial<View>;
    if (res.status === 201 && json.id) this.accepted.add(json.id);
    return { status: res.status, headers: res.headers, body: json };
  }

  async accept(body: { command: string; files?: Record<string, string> }): Promise<View> {
    const r = await this.submit(body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as View;
  }

  async run(id: string): Promise<View> {
    const res = await this.fetch(`/api/v1/runs/${id}`);
    assert.equal(res.status, 200, `GET run ${id}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as View;
  }

  async waitFor(id: string, timeoutMs: number, what = 'completed', ok: (r: View) => boolean = (r) => r.status === 'completed'): Promise<View> {
    let last: View | undefined;
    try {
      return await until(
        `run ${id} ${what}`,
        async () => {
          last = await this.run(id);
          return ok(last) ? last : null;
        },
        timeoutMs,
        250,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\nlast view: ${JSON.stringify(last)}`);
    }
  }

  async logs(id: string, jobId?: string): Promise<string> {
    const res = await this.fetch(`/api/v1/runs/${id}/logs${jobId ? `?job=${jobId}` : ''}`);
    assert.equal(res.status, 200);
    return res.text();
  }

  async metrics(): Promise<string> {
    const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    return res.text();
  }

  async runCount(): Promise<number> {
    return Number((await this.pg.query<{ n: string }>('SELECT COUNT(*) AS n FROM runs'))[0].n);
  }

  /** The job's row straight from PostgreSQL, with how many of its steps have left 'pending'. */
  async jobRow(runId: string): Promise<{ id: string; status: string; worker: string | null; started: number } | null> {
    const rows = await this.pg.query<{ id: string; status: string; worker: string | null; started: string }>(
      "SELECT j.id, j.status, j.worker, (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id AND s.status <> 'pending') AS started FROM jobs j WHERE j.run_id = $1",
      [runId],
    );
    return rows[0] ? { ...rows[0], started: Number(rows[0].started) } : null;
  }
}

describe('cluster: one API and two workers on one PostgreSQL and one Redis', () => {
  const c = new Cluster();
  let failed = false;

  /** Each case prints the tails of every process's log when it fails. */
  const scenario = (name: string, timeoutMs: number, fn: (t: TestContext) => Promise<void>) =>
    void test(name, { timeout: timeoutMs }, async (t) => {
      try {
        await c.ensureUp();
        await fn(t);
      } catch (e) {
        failed = true;
        const err = e as Error;
        err.message += `\n\nprocess logs (${c.logDir}):\n${tails(c.logDir)}`;
        throw err;
      }
    });

  before(async () => {
    c.apiPort = await freePort();
    c.pg = await Postgres.start();
    c.redis = new RedisServer(await freePort(), tmpDir('kiln-cluster-redis-'), c.logDir);
    await c.redis.start();
    // The catalogue: the default environment's measured report, published into this PostgreSQL (image cached).
    const images = await runKiln(['images', 'python-3.11'], { ...c.env(), KILN_LOG_LEVEL: 'warn' }, 300_000);
    assert.equal(images.code, 0, images.stderr);
    await c.startApi(); // first: it creates the schema and the admin
    await Promise.all(WORKERS.map((w) => c.startWorker(w)));
  });

  after(async () => {
    for (const p of [c.api, ...c.workers.values()]) await p?.stop('SIGKILL');
    await c.redis?.kill();
    await ensureDockerd();
    await removeContainersOf(c.prefix);
    if (c.pg) await c.pg.stop();
    if (failed) process.stderr.write(`cluster: process logs kept in ${c.logDir}\n`);
    else for (const d of [c.logDir, c.data, c.redis?.dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  scenario('40 runs are all completed, each by exactly one worker, and both workers take work', 240_000, async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await c.accept({ command: `echo cluster-run-${i}` })).id);
    const byWorker: Record<string, number> = {};
    for (const [i, id] of ids.entries()) {
      const done = await c.waitFor(id, 180_000);
      assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
      assert.equal(done.jobs.length, 1);
      const [job] = done.jobs;
      assert.ok(job.worker === 'w1' || job.worker === 'w2', `job ${job.id} was taken by w1 or w2, not ${job.worker}`);
      assert.equal(job.attempts, 1, `job ${job.id} was taken once`);
      // Exactly one worker says it took it: the one the record names.
      const takers = WORKERS.filter((w) => c.worker(w).output().includes(`job ${job.id} taken by ${w}`));
      assert.deepEqual(takers, [job.worker], `job ${job.id}: taken by ${takers.join(', ') || 'nobody'} per the workers' logs, ${job.worker} per the record`);
      assert.match(await c.logs(id, job.id), new RegExp(`cluster-run-${i}\\n`));
      byWorker[job.worker] = (byWorker[job.worker] ?? 0) + 1;
    }
    assert.ok((byWorker.w1 ?? 0) > 0 && (byWorker.w2 ?? 0) > 0, `both workers took work: ${JSON.stringify(byWorker)}`);
  });

  scenario(
    `a worker killed (SIGKILL) mid-step: after the lock (${LOCK_SECONDS} s) its job fails as 'worker lost', is not run again, and a surviving worker's reaper removes its container`,
    120_000,
    async () => {
      const run = await c.accept({ command: 'echo started; sleep 120' });
      const running = await c.waitFor(run.id, 60_000, 'with its step running', (r) => r.jobs[0].steps[0].status === 'in_progress');
      const job = running.jobs[0];
      const victimName = job.worker!;
      const victim = c.worker(victimName);
      const survivorName = WORKERS.find((w) => w !== victimName)!;
      const survivor = c.worker(survivorName);
      await until('the step printed "started"', async () => /\| started\n/.test(await c.logs(run.id, job.id)), 30_000);
      const container = await containerOfJob(job.id);
      assert.ok(container && container.state === 'running', `the job's container runs: ${JSON.stringify(container)}`);

      const t0 = Date.now();
      victim.signal('SIGKILL');
      await victim.exited;
      const done = await c.waitFor(run.id, 60_000);
      const tookMs = Date.now() - t0;
      const lost = done.jobs[0];
      assert.equal(done.conclusion, 'failure');
      assert.equal(lost.conclusion, 'failure');
      assert.match(lost.error ?? '', /^worker lost/, `the job's error: ${lost.error}`);
      assert.equal(lost.attempts, 1, 'not run again: its steps may have had effects');
      assert.equal(lost.worker, victimName);
      assert.ok(
        lost.steps.every((s) => s.status === 'completed'),
        `no step left open: ${JSON.stringify(lost.steps)}`,
      );
      assert.equal(lost.steps[0].conclusion, 'failure');
      // Detected when the dead worker's lock ran out: not before it could, well before the default 30 s.
      assert.ok(tookMs >= (LOCK_SECONDS / 2) * 1000 && tookMs < 30_000, `detected after ${tookMs} ms (lock ${LOCK_SECONDS} s)`);
      assert.match(survivor.output(), new RegExp(`job ${job.id}: its worker was lost mid-job; failing it as 'worker lost'`));

      // The dead worker's container (still running its sleep) goes at the survivor's next reaper pass.
      await until(`container ${container.id} of the lost job removed`, async () => (await containerOfJob(job.id)) === null, (SWEEP_SECONDS * 3 + 10) * 1000);
      assert.match(survivor.output(), new RegExp(`removed container ${container.id} .*of finished job ${job.id}`));
      await c.startWorker(victimName as WorkerName); // a new process for the next faults
    },
  );

  scenario('a worker lost before any step started: the other worker runs the job again and it succeeds', 180_000, async (t) => {
    let caught: { runId: string; jobId: string; victimName: WorkerName } | null = null;
    const attempts: string[] = [];
    for (let attempt = 1; attempt <= 5 && !caught; attempt++) {
      const run = await c.accept({ command: 'echo ran-again-fine', files: { 'data.bin': randomBytes(600_000).toString('base64').slice(0, 800_000) } });
      // The window: the job is taken (in_progress) while its sandbox is prepared, before step 1 starts.
      let seen: Awaited<ReturnType<Cluster['jobRow']>> = null;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        seen = await c.jobRow(run.id);
        if (seen && seen.status !== 'queued' && seen.status !== 'pending') break;
        await sleep(15);
      }
      if (!seen || seen.status !== 'in_progress' || seen.started > 0 || !seen.worker) {
        attempts.push(`attempt ${attempt}: missed the window (${JSON.stringify(seen)})`);
        continue;
      }
      const victim = c.worker(seen.worker);
      victim.signal('SIGSTOP');
      let again: Awaited<ReturnType<Cluster['jobRow']>>;
      try {
        await sleep(500); // a write already on its way reaches PostgreSQL
        again = await c.jobRow(run.id);
      } catch (e) {
        victim.signal('SIGCONT');
        throw e;
      }
      if (again?.status === 'in_progress' && again.started === 0) {
        victim.signal('SIGKILL');
        await victim.exited;
        caught = { runId: run.id, jobId: again.id, victimName: seen.worker as WorkerName };
      } else {
        victim.signal('SIGCONT');
        attempts.push(`attempt ${attempt}: a step started before the worker stopped (${JSON.stringify(again)})`);
      }
    }
    assert.ok(caught, `a worker was stopped with its job taken and no step started:\n${attempts.join('\n')}`);
    if (attempts.length) t.diagnostic(attempts.join('; '));
    const survivorName = WORKERS.find((w) => w !== caught!.victimName)!;
    const done = await c.waitFor(caught.runId, 90_000);
    const [job] = done.jobs;
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    assert.equal(job.worker, survivorName, 'run again by the other worker');
    assert.equal(job.attempts, 2, 'taken twice: by the lost worker, then by the survivor');
    assert.match(c.worker(survivorName).output(), new RegExp(`job ${caught.jobId}: its worker was lost before any step started; running it again`));
    assert.match(await c.logs(caught.runId, job.id), /\| ran-again-fine\n/);
    await c.startWorker(caught.victimName);
  });

  scenario(
    'a worker stopped (SIGTERM) mid-job: it takes nothing new, lets a short job finish within the grace (2 s), then cancels the rest with a clear error',
    180_000,
    async () => {
      // Only w1 works: w2 is stopped first (nothing running, it exits at once).
      await c.worker('w2').stop('SIGTERM');
      const short = await c.accept({ command: 'sleep 1.2; echo short-done' });
      const long = await c.accept({ command: 'echo long-started; sleep 120' });
      for (const r of [short, long]) await c.waitFor(r.id, 60_000, 'with its step running', (v) => v.jobs[0].steps[0].status === 'in_progress');
      const w1 = c.worker('w1');
      const t0 = Date.now();
      w1.signal('SIGTERM');
      await w1.waitForOutput(/taking no new jobs/, 10_000);
      const later = await c.accept({ command: 'echo taken-by-the-next-worker' });
      await w1.exited;
      const stoppedMs = Date.now() - t0;
      const shortDone = await c.waitFor(short.id, 30_000);
      assert.equal(shortDone.conclusion, 'success', `the short job finished within the grace: ${JSON.stringify(shortDone.jobs)}`);
      assert.match(await c.logs(short.id), /\| short-done\n/);
      const longDone = await c.waitFor(long.id, 30_000);
      assert.equal(longDone.jobs[0].conclusion, 'cancelled', JSON.stringify(longDone.jobs));
      assert.match(longDone.jobs[0].error ?? '', /the worker shut down before the job finished \(it waited 2 s/);
      assert.ok(
        longDone.jobs[0].steps.every((s) => s.status === 'completed'),
        'no step left open',
      );
      assert.ok(stoppedMs >= 2000 && stoppedMs < 60_000, `the worker waited the grace, then stopped (${stoppedMs} ms)`);
      assert.equal(await containerOfJob(longDone.jobs[0].id), null, "the cancelled job's sandbox is removed");
      const waiting = await c.run(later.id);
      assert.equal(waiting.jobs[0].status, 'queued', 'a stopping worker takes no new job');
      await c.startWorker('w2');
      const laterDone = await c.waitFor(later.id, 60_000);
      assert.equal(laterDone.conclusion, 'success');
      assert.equal(laterDone.jobs[0].worker, 'w2');
      await c.startWorker('w1');
    },
  );

  scenario('the API killed (SIGKILL) mid-upload: no run is recorded or queued, and the partial upload is swept once its process is gone', 120_000, async () => {
    const api = c.api!;
    const runsBefore = await c.runCount();
    const uploads = path.join(c.data, 'uploads');
    const boundary = `----kiln-cluster-${randomBytes(8).toString('hex')}`;
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="project.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`,
    );
    const payload = randomBytes(8 * 1024 * 1024);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const req = http.request({
      host: '127.0.0.1',
      port: c.apiPort,
      method: 'POST',
      path: '/api/v1/runs',
      headers: {
        authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': head.length + payload.length + tail.length,
      },
    });
    let answered: number | undefined;
    req.on('response', (res) => {
      answered = res.statusCode;
      res.resume();
    });
    req.on('error', () => undefined); // the API dies under it: expected
    req.write(head);
    req.write(payload.subarray(0, 1024 * 1024));
    // multer streams the part to uploads/multipart~<host>~<api pid>~<random> as it arrives.
    const mine = new RegExp(`^multipart~${os.hostname().replace(/[.]/g, '\\.')}~${api.pid}~[0-9a-f]+`);
    const partial = await until(
      'the partial upload on disk',
      () => fs.readdirSync(uploads).find((f) => mine.test(f) && fs.statSync(path.join(uploads, f)).size > 0),
      30_000,
      50,
    );
    api.signal('SIGKILL');
    await api.exited;
    req.destroy();
    assert.equal(answered, undefined, 'the upload was never answered');
    assert.ok(fs.existsSync(path.join(uploads, partial)), 'the killed API left its partial upload behind');

    const restarted = await c.startApi();
    await until(`${partial} removed by a sweeper`, () => !fs.existsSync(path.join(uploads, partial)), (SWEEP_SECONDS * 2 + 10) * 1000);
    // Every node on this host sweeps (KILN_SWEEP_SECONDS, and at start-up): the first to pass removes it, and says why.
    const removal = new RegExp(`ScratchSweeper\\] removed partial upload ${partial} \\(its process ${api.pid} is gone\\)`);
    const sweepers = [restarted, ...WORKERS.map((w) => c.worker(w))].filter((p) => removal.test(p.output())).map((p) => p.name);
    assert.equal(sweepers.length, 1, `one sweeper of the deployment logged the removal: ${sweepers.join(', ') || 'none'}`);
    assert.equal(await c.runCount(), runsBefore, 'no run was created from the interrupted upload');
    const open = await c.pg.query<{ n: string }>("SELECT COUNT(*) AS n FROM jobs WHERE status <> 'completed'");
    assert.equal(Number(open[0].n), 0, 'no job is waiting or running');
    assert.equal(metric(await c.metrics(), 'kiln_queue_jobs', { state: 'waiting' }), 0, 'nothing is queued');
  });

  scenario(
    'Redis restarted (SIGKILL, append-only file): the API keeps answering, 503 with Retry-After while Redis is away; the queued runs complete',
    180_000,
    async () => {
      const outcomes = new Outcomes();
      await Promise.all(WORKERS.map((w) => c.worker(w).stop('SIGTERM')));
      const queued: string[] = [];
      for (let i = 0; i < 3; i++) queued.push((await c.accept({ command: `echo after-redis-${i}` })).id);
      await sleep(1500);
      for (const id of queued) assert.equal((await c.run(id)).status, 'queued', 'no worker runs: the runs wait');
      assert.equal(metric(await c.metrics(), 'kiln_queue_jobs', { state: 'waiting' }), 3, 'three entries wait in the queue');

      await c.redis.kill();
      const runsBefore = await c.runCount();
      const health = await fetch(`${c.url}/api/v1/health`, { signal: AbortSignal.timeout(15_000) });
      const hb = (await health.json()) as { checks: Record<string, { ok: boolean; detail: string }> };
      outcomes.equal(health.status, 503, 'health answers 503 while Redis is away');
      outcomes.equal(hb.checks.redis?.ok, false, `health names Redis (${JSON.stringify(hb.checks)})`);
      outcomes.equal(hb.checks.database?.ok, true, 'health: the database answers');
      outcomes.equal((await c.run(queued[0])).status, 'queued', 'reading a run does not need Redis');
      const refused = await c.submit({ command: 'echo while-redis-is-away' });
      outcomes.equal(refused.status, 503, `a submission while Redis is away (${JSON.stringify(refused.body)})`);
      outcomes.match(refused.body.message ?? '', /Redis/, 'the refusal says Redis is unreachable');
      outcomes.equal(refused.headers.get('retry-after'), '5', `the refusal's Retry-After header (body ${JSON.stringify(refused.body)})`);
      assert.equal(await c.runCount(), runsBefore, 'nothing half-recorded');

      await c.redis.start(); // the same folder: the append-only file brings the queue back
      await until(
        'the API sees the three queued entries again',
        async () => metric(await c.metrics(), 'kiln_queue_jobs', { state: 'waiting' }) === 3,
        30_000,
        500,
      );
      await Promise.all(WORKERS.map((w) => c.startWorker(w)));
      for (const id of queued) {
        const done = await c.waitFor(id, 90_000);
        assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
      }
      outcomes.done('Redis away');
    },
  );

  scenario(
    "dockerd restarted while a job runs: the job ends with an infrastructure error and the engine's message, and a new run succeeds",
    240_000,
    async () => {
      const outcomes = new Outcomes();
      const run = await c.accept({ command: 'echo started; sleep 60' });
      const running = await c.waitFor(run.id, 60_000, 'with its step running', (r) => r.jobs[0].steps[0].status === 'in_progress');
      const jobId = running.jobs[0].id;
      await until('the step printed "started"', async () => /\| started\n/.test(await c.logs(run.id, jobId)), 30_000);
      try {
        await restartDockerd();
        const done = await c.waitFor(run.id, 120_000, 'completed (not left in progress)');
        const [job] = done.jobs;
        assert.equal(done.conclusion, 'failure');
        assert.equal(job.conclusion, 'failure');
        const log = await c.logs(run.id, jobId);
        outcomes.equal(
          job.steps[0].reason,
          'infrastructure',
          `the step's reason (step ${JSON.stringify(job.steps[0])}; job error ${JSON.stringify(job.error)}; log ${JSON.stringify(log.split('\n').slice(-4).join(' / '))})`,
        );
        outcomes.match(log, /infrastructure error: \S/, "the job log carries the engine's message");
        outcomes.match(job.error ?? '', /engine/i, "the job's error says the engine failed");
      } finally {
        await ensureDockerd();
      }
      const after = await c.accept({ command: 'echo after-dockerd' });
      const done = await c.waitFor(after.id, 120_000);
      assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
      assert.match(await c.logs(after.id), /\| after-dockerd\n/);
      outcomes.done('dockerd restarted');
    },
  );

  scenario(
    'PostgreSQL briefly unreachable: 503 with Retry-After naming the database, a submission refused, the running job still ends, new runs succeed',
    240_000,
    async (t) => {
      const outcomes = new Outcomes();
      const run = await c.accept({ command: 'echo started; sleep 5; echo finished' });
      const running = await c.waitFor(run.id, 60_000, 'with its step running', (r) => r.jobs[0].steps[0].status === 'in_progress');
      const jobId = running.jobs[0].id;
      await until('the step printed "started"', async () => /\| started\n/.test(await c.logs(run.id, jobId)), 30_000);
      const runsBefore = await c.runCount();
      const acceptedBefore = c.accepted.size;
      const t0 = Date.now();
      await c.pg.halt();
      try {
        const read = await c.fetch(`/api/v1/runs/${run.id}`);
        const readBody = (await read.json()) as { message?: string };
        outcomes.equal(read.status, 503, `reading a run while PostgreSQL is down (${JSON.stringify(readBody)})`);
        outcomes.equal(read.headers.get('retry-after'), '5', 'its Retry-After header');
        outcomes.match(readBody.message ?? '', /database/, 'the answer names the database');
        const health = await fetch(`${c.url}/api/v1/health`, { signal: AbortSignal.timeout(15_000) });
        const hb = (await health.json()) as { checks: Record<string, { ok: boolean; detail: string }> };
        outcomes.equal(health.status, 503, 'health answers 503');
        outcomes.equal(hb.checks.database?.ok, false, `health names the database (${JSON.stringify(hb.checks)})`);
        const refused = await c.submit({ command: 'echo while-the-database-is-away' });
        assert.notEqual(refused.status, 201, 'a submission while PostgreSQL is down is refused');
        outcomes.equal(refused.status, 503, `the refusal's status (${JSON.stringify(refused.body)})`);
        outcomes.equal(refused.headers.get('retry-after'), '5', "the refusal's Retry-After header");
        outcomes.match(refused.body.message ?? '', /database/, 'the refusal names the database');
        const container = await containerOfJob(jobId);
        assert.equal(container?.state, 'running', 'the job keeps running while the database is away');
        // Down long enough that the step ends (sleep 5) while the database is away.
        await sleep(Math.max(0, 9000 - (Date.now() - t0)));
      } finally {
        await c.pg.resume();
      }
      const done = await c.waitFor(run.id, 90_000, 'completed (no run stuck)');
      t.diagnostic(
        `the job running through the outage ended ${done.jobs[0].conclusion} (${done.jobs[0].error ?? 'no error'}), taken ${done.jobs[0].attempts} time(s)`,
      );
      assert.ok(
        done.jobs.every((j) => j.status === 'completed' && j.conclusion !== null),
        `every job ended: ${JSON.stringify(done.jobs)}`,
      );
      assert.ok(
        done.jobs.every((j) => j.steps.every((s) => s.status === 'completed')),
        `no step left open: ${JSON.stringify(done.jobs)}`,
      );
      // The worker waits the outage out (its records are retried): the job is neither failed nor re-run for it.
      assert.equal(done.conclusion, 'success', `the job that ran through the outage succeeded: ${JSON.stringify(done.jobs)}`);
      assert.equal(done.jobs[0].attempts, 1, 'it was taken once');
      assert.match(await c.logs(run.id, jobId), /\| finished\n/, 'its whole log was kept');
      assert.equal(c.accepted.size, acceptedBefore, 'the refused submission was not accepted');
      assert.equal(await c.runCount(), runsBefore, 'the refused submission left nothing behind');
      const fresh = await c.accept({ command: 'echo after-postgres' });
      const ok = await c.waitFor(fresh.id, 120_000);
      assert.equal(ok.conclusion, 'success', JSON.stringify(ok.jobs));
      outcomes.done('PostgreSQL away');
    },
  );

  scenario('afterwards: every accepted run is present and completed, and no container of this deployment is left', 120_000, async () => {
    assert.ok(c.accepted.size >= 40, `${c.accepted.size} runs accepted`);
    for (const id of c.accepted) {
      const r = await c.waitFor(id, 60_000);
      assert.ok(r.jobs.length > 0 && r.jobs.every((j) => j.status === 'completed'), `run ${id}: ${JSON.stringify(r.jobs)}`);
    }
    const rows = await c.pg.query<{ id: string; status: string }>('SELECT id, status FROM runs');
    assert.deepEqual(rows.map((r) => r.id).sort(), [...c.accepted].sort(), 'the database holds exactly the accepted runs');
    assert.deepEqual(
      rows.filter((r) => r.status !== 'completed'),
      [],
      'none queued or in progress',
    );
    // The reapers pass every KILN_SWEEP_SECONDS: give them a few passes. What may remain are the live
    // workers' idle warm sandboxes (KILN_WARM_POOL); those of killed workers are reaped too.
    const live = new Set([...c.workers.values()].filter((w) => w.alive).map((w) => w.pid));
    let left: { jobs: string[]; idle: { name: string; pid: number }[] } = { jobs: [], idle: [] };
    try {
      await until(
        "no job container and no dead worker's warm sandbox of this deployment left",
        async () => {
          left = await sandboxesOfDeployment(c.prefix);
          return left.jobs.length === 0 && left.idle.every((s) => live.has(s.pid));
        },
        (SWEEP_SECONDS * 3 + 10) * 1000,
        500,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(left)} (live workers ${[...live].join(', ')})`);
    }
    assert.ok(left.idle.length <= live.size * 2, `at most KILN_WARM_POOL (2) idle sandboxes per live worker: ${JSON.stringify(left.idle)}`);
    assert.ok(left.idle.length > 0, 'the live workers keep warm sandboxes (the pool is on by default)');
  });
});
