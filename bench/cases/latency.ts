/**
 * Case 1: a trivial one-step job (`python3 -c pass`).
 *  - end to end: `kiln run DIR` (the CLI: pack, upload, follow the live log, final status) against
 *    `docker run --rm` of the same image with the same hardening;
 *  - submit to first log line: POST (quick form) to the step's first output line on the live log
 *    stream, against `docker run` to its first byte on stdout.
 * Kiln and raw repetitions alternate, so drift in the machine's load hits both alike.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RawDocker, kilnContainers } from '../lib/docker';
import { ENVIRONMENT, KILN_BIN, KilnServer, ms } from '../lib/kiln';
import { run } from '../lib/proc';
import { median, round3, sample, Sample, say, sleep } from '../lib/util';

export const TRIVIAL = ['python3', '-c', 'pass'];
const FIRST_LINE = ['python3', '-c', "print('ready')"];

/** Where the time of one `kiln run` goes, from the run's own records (ms). */
export interface Breakdown {
  /** CLI start to the run recorded: node start-up, pack, upload, submission */
  cliToRecorded: number;
  /** recorded to the job taken by a worker (queue) */
  recordedToJobStart: number;
  /** job taken to its step started: the sandbox (container create + start, workspace unpacked) */
  jobStartToStep: number;
  /** the step itself: exec, post-step reader */
  step: number;
  /** step finished to the run finished: container removal, records */
  stepToRunEnd: number;
  /** run finished to the CLI's exit: the end of the log stream, the final status read */
  runEndToCliExit: number;
}

export interface KilnLatency {
  /** `kiln run` wall time, seconds */
  endToEnd: Sample;
  /** POST to the step's first output line on the live stream, ms */
  firstLog: Sample;
  /** POST to the step's start notice (▶) on the live stream, ms */
  stepStartNotice: Sample;
  breakdown: Breakdown;
  breakdownValues: Breakdown[];
}

export interface RawLatency {
  /** `docker run --rm` wall time, seconds */
  endToEnd: number[];
  /** `docker run` to its first byte on stdout, ms */
  firstOut: number[];
}

/** A project folder with a one-step workflow (what `kiln run` packs and uploads). */
export function trivialProject(dir: string): string {
  const project = path.join(dir, 'trivial-project');
  fs.mkdirSync(project, { recursive: true });
  fs.writeFileSync(path.join(project, '.kiln.yml'), `jobs:\n  trivial:\n    runs-on: ${ENVIRONMENT}\n    steps:\n      - run: python3 -c pass\n`);
  return project;
}

/**
 * Waits until the deployment's containers have stopped changing (a finished job's container removed;
 * with a warm pool, the pool refilled), at most 8 s: each repetition starts from the same state.
 */
export async function settle(k: KilnServer): Promise<void> {
  let last = '';
  let stableSince = Date.now();
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline) {
    const now = (await kilnContainers(k.prefix, true)).sort().join(',');
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    }
    if (Date.now() - stableSince >= 700) return;
    await sleep(200);
  }
}

async function kilnRunOnce(k: KilnServer, project: string, configHome: string): Promise<{ seconds: number; breakdown: Breakdown }> {
  const t0 = Date.now();
  const r = await run(process.execPath, [KILN_BIN, 'run', '.'], {
    cwd: project,
    env: { PATH: process.env.PATH, HOME: configHome, XDG_CONFIG_HOME: configHome, NO_COLOR: '1', KILN_URL: k.url, KILN_TOKEN: k.token },
    timeoutMs: 300_000,
  });
  const tExit = t0 + r.ms;
  if (r.code !== 0) throw new Error(`kiln run exited ${r.code}: ${r.stderr.slice(-1000)}\n${k.logTail()}`);
  const id = /run (\S+) \(/.exec(r.stderr)?.[1];
  if (!id) throw new Error(`kiln run did not name its run: ${r.stderr}`);
  const v = await k.getRun(id);
  const job = v.jobs[0];
  const step = job.steps[0];
  const breakdown: Breakdown = {
    cliToRecorded: ms(v.createdAt) - t0,
    recordedToJobStart: ms(job.startedAt) - ms(v.createdAt),
    jobStartToStep: ms(step.startedAt) - ms(job.startedAt),
    step: ms(step.finishedAt) - ms(step.startedAt),
    stepToRunEnd: ms(v.finishedAt) - ms(step.finishedAt),
    runEndToCliExit: tExit - ms(v.finishedAt),
  };
  return { seconds: r.ms / 1000, breakdown };
}

async function firstLogOnce(k: KilnServer): Promise<{ firstLog: number; notice: number }> {
  const t0 = performance.now();
  const submitted = await k.submitCommand(`python3 -c "print('ready')"`);
  let firstLog = NaN;
  let notice = NaN;
  await k.follow(submitted.id, (rec, at) => {
    if (rec.i >= 0 && rec.s === 'k' && rec.l.startsWith('▶') && Number.isNaN(notice)) notice = at - t0;
    if (rec.i >= 0 && rec.s === 'o' && Number.isNaN(firstLog)) firstLog = at - t0;
  });
  const v = await k.waitCompleted(submitted.id);
  if (v.conclusion !== 'success') throw new Error(`first-log run ${v.id}: ${v.conclusion} ${JSON.stringify(v.jobs[0]).slice(0, 500)}`);
  if (Number.isNaN(firstLog)) throw new Error(`first-log run ${v.id}: no output line arrived on the live stream`);
  return { firstLog, notice };
}

/** `reps` alternating repetitions of Kiln and raw docker; `raw` collects the baseline's values. */
export async function measureLatency(k: KilnServer, docker: RawDocker, reps: number, workDir: string, raw: RawLatency, label: string): Promise<KilnLatency> {
  const project = trivialProject(workDir);
  const configHome = fs.mkdtempSync(path.join(workDir, 'cli-home-'));
  // One of each first, not measured: caches warm (the CLI's modules, the image's pages).
  await kilnRunOnce(k, project, configHome);
  await run('docker', docker.runArgs(TRIVIAL));
  await settle(k);
  const e2e: number[] = [];
  const breakdowns: Breakdown[] = [];
  const firstLog: number[] = [];
  const notice: number[] = [];
  for (let i = 0; i < reps; i++) {
    const rawRun = await run('docker', docker.runArgs(TRIVIAL));
    if (rawRun.code !== 0) throw new Error(`raw docker run exited ${rawRun.code}: ${rawRun.stderr}`);
    raw.endToEnd.push(rawRun.ms / 1000);
    await settle(k);
    const kr = await kilnRunOnce(k, project, configHome);
    e2e.push(kr.seconds);
    breakdowns.push(kr.breakdown);
    await settle(k);
    const rawFirst = await run('docker', docker.runArgs(FIRST_LINE));
    if (rawFirst.code !== 0 || rawFirst.firstOutMs === null) throw new Error(`raw first-line run failed: ${rawFirst.stderr}`);
    raw.firstOut.push(rawFirst.firstOutMs);
    await settle(k);
    const fl = await firstLogOnce(k);
    firstLog.push(fl.firstLog);
    notice.push(fl.notice);
    await settle(k);
    say(
      `  latency ${label} ${i + 1}/${reps}: kiln run ${kr.seconds.toFixed(2)} s, docker run ${(rawRun.ms / 1000).toFixed(2)} s; first log ${Math.round(fl.firstLog)} ms, docker first byte ${Math.round(rawFirst.firstOutMs)} ms`,
    );
  }
  const keys = Object.keys(breakdowns[0]) as (keyof Breakdown)[];
  const breakdown = Object.fromEntries(keys.map((key) => [key, round3(median(breakdowns.map((b) => b[key])))])) as unknown as Breakdown;
  fs.rmSync(configHome, { recursive: true, force: true });
  return { endToEnd: sample(e2e), firstLog: sample(firstLog), stepStartNotice: sample(notice), breakdown, breakdownValues: breakdowns };
}
