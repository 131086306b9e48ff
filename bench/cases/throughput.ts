/**
 * Case 2: N trivial jobs (`python3 -c pass`) through a worker with KILN_WORKER_CONCURRENCY=2, against
 * N `docker run --rm` two at a time. Kiln's time runs from the first submission to the last run's
 * recorded end (server clock, same machine); the submissions are part of it.
 */
import { performance } from 'node:perf_hooks';
import { RawDocker, compareHostConfig, kilnContainers } from '../lib/docker';
import { KilnServer, ms, RunView } from '../lib/kiln';
import { run } from '../lib/proc';
import { pool, say, sleep } from '../lib/util';
import { TRIVIAL } from './latency';

export interface Throughput {
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
}

export interface HostConfigCheck {
  checked: boolean;
  same: boolean;
  differences: string[];
}

/**
 * Compares a live Kiln job container's HostConfig with the raw baseline's (a job that sleeps, so its
 * container is there to inspect). Outside the timed cases: inspecting during them would load the engine.
 */
export async function checkHostConfig(k: KilnServer, docker: RawDocker): Promise<HostConfigCheck> {
  const v = await k.submitCommand('sleep 4');
  const deadline = Date.now() + 60_000;
  let check: HostConfigCheck = { checked: false, same: false, differences: ['no Kiln container was seen'] };
  while (Date.now() < deadline) {
    const ids = await kilnContainers(k.prefix, true);
    if (ids.length) {
      try {
        check = { checked: true, ...(await compareHostConfig(ids[0], docker)) };
        break;
      } catch {
        /* removed under us: the next one */
      }
    }
    await sleep(100);
  }
  await k.waitCompleted(v.id);
  return check;
}

export async function throughputKiln(k: KilnServer, n: number): Promise<Throughput> {
  const t0 = Date.now();
  const ids = await pool(
    Array.from({ length: n }, (_, i) => i),
    4,
    async () => (await k.submitCommand(TRIVIAL.join(' '))).id,
  );
  const submitted = Date.now();
  const pending = new Set(ids);
  const done: RunView[] = [];
  const deadline = Date.now() + Math.max(300_000, n * 20_000);
  while (pending.size) {
    if (Date.now() > deadline) throw new Error(`${pending.size} of ${n} runs not completed in time\n${k.logTail()}`);
    await sleep(500);
    const list = await k.json<{ id: string; status: string }[]>('GET', `/api/v1/runs?limit=${Math.min(500, n + 10)}`);
    for (const r of list) {
      if (pending.has(r.id) && r.status === 'completed') {
        pending.delete(r.id);
        done.push(await k.getRun(r.id));
      }
    }
    // Runs older than the list's window: asked one by one.
    if (list.length && pending.size && !list.some((r) => pending.has(r.id))) {
      for (const id of pending) {
        const v = await k.getRun(id);
        if (v.status === 'completed') {
          pending.delete(id);
          done.push(v);
        }
      }
    }
  }
  const failed = done.filter((v) => v.conclusion !== 'success');
  if (failed.length) throw new Error(`${failed.length} of ${n} throughput runs did not succeed, e.g. ${JSON.stringify(failed[0]).slice(0, 600)}`);
  const end = Math.max(...done.map((v) => ms(v.finishedAt)));
  const seconds = (end - t0) / 1000;
  say(`  kiln: ${n} jobs in ${seconds.toFixed(1)} s (submitted in ${((submitted - t0) / 1000).toFixed(1)} s) = ${(n / seconds).toFixed(2)} jobs/s`);
  return { jobs: n, seconds, jobsPerSecond: n / seconds };
}

export async function throughputRaw(docker: RawDocker, n: number): Promise<Throughput> {
  const t0 = performance.now();
  await pool(
    Array.from({ length: n }, (_, i) => i),
    2,
    async () => {
      const r = await run('docker', docker.runArgs(TRIVIAL));
      if (r.code !== 0) throw new Error(`raw docker run exited ${r.code}: ${r.stderr}`);
    },
  );
  const seconds = (performance.now() - t0) / 1000;
  say(`  raw docker: ${n} runs in ${seconds.toFixed(1)} s = ${(n / seconds).toFixed(2)} jobs/s`);
  return { jobs: n, seconds, jobsPerSecond: n / seconds };
}
