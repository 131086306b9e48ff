/**
 * Case 6: `GET /api/v1/runs/:id` at a fixed rate (open loop: each request is sent at its scheduled
 * time whether or not earlier ones answered, and its latency counts from that time, so a stalled
 * server is not hidden by a waiting client), once with the server idle and once while jobs run.
 */
import { performance } from 'node:perf_hooks';
import { KilnServer } from '../lib/kiln';
import { cpuSecondsOf } from '../lib/proc';
import { percentile, say, sleep } from '../lib/util';

/** A job that runs about 3 s and writes a line every 100 ms: the worker busy, the log bus live. */
const BUSY_JOB = 'for i in $(seq 1 30); do echo tick $i; sleep 0.1; done';

export interface LoadFigures {
  rate: number;
  seconds: number;
  requests: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** jobs submitted during the window, all completed (0 for the idle pass) */
  jobsCompleted: number;
  /** CPU used by the kiln serve process during the window, in % of one core */
  kilnCpuPercent: number;
}

async function openLoop(
  k: KilnServer,
  ids: string[],
  rate: number,
  seconds: number,
  warmupSeconds: number,
): Promise<{ latencies: number[]; errors: number; sent: number; cpuPercent: number }> {
  const interval = 1000 / rate;
  const total = Math.round(rate * (seconds + warmupSeconds));
  const warm = Math.round(rate * warmupSeconds);
  const latencies: number[] = [];
  let errors = 0;
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now();
  let cpu0 = NaN;
  let cpuT0 = NaN;
  let i = 0;
  while (i < total) {
    const now = performance.now();
    if (i >= warm && Number.isNaN(cpu0)) {
      cpu0 = cpuSecondsOf(k.pid);
      cpuT0 = now;
    }
    while (i < total && t0 + i * interval <= now) {
      const scheduled = t0 + i * interval;
      const measured = i >= warm;
      const id = ids[i % ids.length];
      inFlight.push(
        k.getRaw(`/api/v1/runs/${id}`).then((status) => {
          if (!measured) return;
          if (status !== 200) errors++;
          else latencies.push(performance.now() - scheduled);
        }),
      );
      i++;
    }
    await sleep(Math.max(0, t0 + i * interval - performance.now()));
  }
  await Promise.all(inFlight);
  const cpuPercent = ((cpuSecondsOf(k.pid) - cpu0) / ((performance.now() - cpuT0) / 1000)) * 100;
  return { latencies, errors, sent: total - warm, cpuPercent };
}

function figures(
  rate: number,
  seconds: number,
  r: { latencies: number[]; errors: number; sent: number; cpuPercent: number },
  jobsCompleted: number,
): LoadFigures {
  return {
    kilnCpuPercent: r.cpuPercent,
    rate,
    seconds,
    requests: r.sent,
    errors: r.errors,
    p50: percentile(r.latencies, 50),
    p90: percentile(r.latencies, 90),
    p99: percentile(r.latencies, 99),
    max: Math.max(...r.latencies),
    jobsCompleted,
  };
}

export async function apiLoad(k: KilnServer, rate: number, seconds: number): Promise<{ idle: LoadFigures; busy: LoadFigures }> {
  // Something to read: the runs the server has (earlier cases), or a few new ones.
  let ids = (await k.json<{ id: string }[]>('GET', '/api/v1/runs?limit=50')).map((r) => r.id);
  if (!ids.length) {
    const v = await k.submitCommand('true');
    await k.waitCompleted(v.id);
    ids = [v.id];
  }
  const idle = await openLoop(k, ids, rate, seconds / 2, 1);
  const idleFigures = figures(rate, seconds / 2, idle, 0);
  say(
    `  idle: p50 ${idleFigures.p50.toFixed(1)} ms, p99 ${idleFigures.p99.toFixed(1)} ms (${idleFigures.requests} requests, ${idleFigures.errors} errors; kiln serve at ${idleFigures.kilnCpuPercent.toFixed(0)}% of a core)`,
  );

  // Jobs: one submitted every 1.5 s (two slots, 3 s each: the worker stays busy); reads spread over them.
  const busyIds: string[] = [];
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      const v = await k.submitCommand(BUSY_JOB);
      busyIds.push(v.id);
      ids.push(v.id);
      await sleep(1500);
    }
  })();
  await sleep(4000); // the first jobs are running
  const busy = await openLoop(k, ids, rate, seconds, 1);
  feeding = false;
  await feeder;
  let completed = 0;
  for (const id of busyIds) {
    const v = await k.waitCompleted(id, 120_000);
    if (v.conclusion !== 'success') throw new Error(`load job ${id}: ${v.conclusion}`);
    completed++;
  }
  const busyFigures = figures(rate, seconds, busy, completed);
  say(
    `  while ${completed} jobs ran: p50 ${busyFigures.p50.toFixed(1)} ms, p99 ${busyFigures.p99.toFixed(1)} ms (${busyFigures.requests} requests, ${busyFigures.errors} errors; kiln serve at ${busyFigures.kilnCpuPercent.toFixed(0)}% of a core)`,
  );
  return { idle: idleFigures, busy: busyFigures };
}
