/**
 * Case 7: many submissions by JSON to a `kiln api` process (no worker: every run stays queued), then a
 * check that none was lost: every id answered 201 is in the database with its job, and the jobs are
 * either in the queue (Redis) or pending behind the user's concurrent-jobs quota.
 *  - repo form `{repo, ref}`: Kiln clones at submission (a local smart-HTTP git server, the tests' fixture);
 *  - quick form `{command}`.
 */
import BetterSqlite3 from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { makeRepo, startGitServer } from '../../test/fixtures/git-server';
import { JOBS_QUEUE } from '../../src/queue/queue.types';
import { ENVIRONMENT, KilnServer } from '../lib/kiln';
import { percentile, pool, say } from '../lib/util';

export interface SubmissionFigures {
  form: 'repo' | 'command';
  submitted: number;
  accepted: number;
  refused: Record<string, number>;
  seconds: number;
  acceptedPerSecond: number;
  /** accepted per second over the first and the last tenth of the submissions (a slowdown as the queue grows) */
  firstTenthPerSecond: number;
  lastTenthPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  parallel: number;
}

export interface LossCheck {
  accepted: number;
  inDatabase: number;
  missing: number;
  jobsInDatabase: number;
  jobsByStatus: Record<string, number>;
  queuedInRedis: number;
  lost: number;
}

async function submitMany(
  k: KilnServer,
  form: 'repo' | 'command',
  n: number,
  parallel: number,
  body: () => unknown,
  accepted: string[],
): Promise<SubmissionFigures> {
  const refused: Record<string, number> = {};
  const latencies: number[] = new Array(n);
  const doneAt: number[] = new Array(n);
  const t0 = performance.now();
  let lastReport = t0;
  let done = 0;
  await pool(
    Array.from({ length: n }, (_, i) => i),
    parallel,
    async (i) => {
      const s = performance.now();
      const r = await k.request('POST', '/api/v1/runs', body());
      latencies[i] = performance.now() - s;
      doneAt[i] = performance.now() - t0;
      if (r.status === 201) accepted.push((r.body as { id: string }).id);
      else refused[String(r.status)] = (refused[String(r.status)] ?? 0) + 1;
      done++;
      if (performance.now() - lastReport > 15_000) {
        lastReport = performance.now();
        say(`  ${form}: ${done}/${n} submitted, ${(done / ((lastReport - t0) / 1000)).toFixed(1)}/s so far`);
      }
    },
  );
  const seconds = (performance.now() - t0) / 1000;
  const finished = [...doneAt].sort((a, b) => a - b);
  const tenth = Math.max(1, Math.floor(n / 10));
  const firstTenth = tenth / (finished[tenth - 1] / 1000);
  const lastTenth = tenth / ((finished[n - 1] - finished[n - 1 - tenth]) / 1000);
  const ok = Object.values(refused).reduce((a, b) => a + b, 0);
  const figures: SubmissionFigures = {
    form,
    submitted: n,
    accepted: n - ok,
    refused,
    seconds,
    acceptedPerSecond: (n - ok) / seconds,
    firstTenthPerSecond: firstTenth,
    lastTenthPerSecond: lastTenth,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    parallel,
  };
  say(
    `  ${form}: ${figures.accepted}/${n} accepted in ${seconds.toFixed(1)} s = ${figures.acceptedPerSecond.toFixed(1)}/s (first tenth ${firstTenth.toFixed(1)}/s, last tenth ${lastTenth.toFixed(1)}/s; p50 ${figures.p50Ms.toFixed(0)} ms, p99 ${figures.p99Ms.toFixed(0)} ms)`,
  );
  return figures;
}

/** Reads the server's own database (SQLite, read-only while it runs) and its queue in Redis. */
async function lossCheck(k: KilnServer, accepted: string[]): Promise<LossCheck> {
  const db = new BetterSqlite3(path.join(k.dataDir, 'kiln.sqlite'), { readonly: true, fileMustExist: true });
  let runs: Set<string>;
  let jobs: { run_id: string; status: string }[];
  try {
    runs = new Set((db.prepare('SELECT id FROM runs').all() as { id: string }[]).map((r) => r.id));
    jobs = db.prepare('SELECT run_id, status FROM jobs').all() as { run_id: string; status: string }[];
  } finally {
    db.close();
  }
  const missing = accepted.filter((id) => !runs.has(id)).length;
  const withJob = new Set(jobs.map((j) => j.run_id));
  const jobless = accepted.filter((id) => runs.has(id) && !withJob.has(id)).length;
  const jobsByStatus: Record<string, number> = {};
  for (const j of jobs) jobsByStatus[j.status] = (jobsByStatus[j.status] ?? 0) + 1;
  const redis = new Redis(k.config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  let queuedInRedis = 0;
  try {
    await redis.connect();
    const key = `${k.prefix}:${JOBS_QUEUE}`;
    queuedInRedis =
      (await redis.llen(`${key}:wait`)) +
      (await redis.llen(`${key}:paused`)) +
      (await redis.zcard(`${key}:delayed`)) +
      (await redis.zcard(`${key}:prioritized`).catch(() => 0));
  } finally {
    redis.disconnect();
  }
  // A job is accounted for when it waits in Redis (queued) or in the database behind the quota (pending).
  const queued = jobsByStatus.queued ?? 0;
  const lost = missing + jobless + Math.max(0, queued - queuedInRedis);
  return { accepted: accepted.length, inDatabase: accepted.length - missing, missing, jobsInDatabase: jobs.length, jobsByStatus, queuedInRedis, lost };
}

export async function queueCase(
  k: KilnServer,
  workDir: string,
  repoCount: number,
  commandCount: number,
): Promise<{ repo: SubmissionFigures; command: SubmissionFigures; check: LossCheck }> {
  const gitRoot = fs.mkdtempSync(path.join(workDir, 'git-'));
  await makeRepo(gitRoot, 'trivial', [
    { '.kiln.yml': `jobs:\n  trivial:\n    runs-on: ${ENVIRONMENT}\n    steps:\n      - run: python3 -c pass\n`, 'README.md': 'bench\n' },
  ]);
  const git = await startGitServer(gitRoot);
  const accepted: string[] = [];
  let repo: SubmissionFigures;
  try {
    repo = await submitMany(k, 'repo', repoCount, 4, () => ({ repo: git.repoUrl('trivial'), ref: 'main' }), accepted);
  } finally {
    await git.close();
  }
  const command = await submitMany(k, 'command', commandCount, 16, () => ({ command: 'python3 -c pass', environment: ENVIRONMENT }), accepted);
  const check = await lossCheck(k, accepted);
  say(
    `  lost: ${check.lost} (accepted ${check.accepted}, in the database ${check.inDatabase}, jobs ${JSON.stringify(check.jobsByStatus)}, in Redis ${check.queuedInRedis})`,
  );
  return { repo, command, check };
}
