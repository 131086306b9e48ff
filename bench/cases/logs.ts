/**
 * Case 3: a step that prints 200 MiB (2 Mi lines of 100 characters).
 *  - Kiln, followed: from the submission to the end of the live log stream read by a follower (a
 *    process of its own that counts the lines), so every line reached a client, as with raw docker;
 *  - Kiln, unfollowed: the same job with nobody reading the live log (submission to completion);
 *  - raw: `docker run` of the same command, its output read through the docker client.
 * The server's VmRSS is sampled every 100 ms and its CPU time read from /proc.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RawDocker } from '../lib/docker';
import { KilnServer, ms } from '../lib/kiln';
import { cpuSecondsOf, run, RssSampler } from '../lib/proc';
import type { Followed } from '../lib/follower';
import { MiB, say } from '../lib/util';

export const LOG_BYTES = 200 * MiB;
const LINE = 100;
export const LOG_LINES = LOG_BYTES / LINE;
export const LOG_COMMAND = `head -c ${LOG_BYTES} /dev/zero | tr '\\0' 'a' | fold -w ${LINE}`;
const FOLLOWER = path.join(__dirname, '..', 'lib', 'follower.js');

export interface KilnLogRun {
  followed: boolean;
  /** submission to the follower's end of stream (followed) or to the run's completion, s */
  seconds: number;
  /** the step alone (its recorded start to end), s */
  stepSeconds: number;
  /** log lines the follower received (Kiln's notices included); null when not followed */
  events: number | null;
  /** output lines of the step missing from the live stream (of 2 Mi); null when not followed */
  missingLines: number | null;
  /** bytes of server-sent events the follower read */
  sseBytes: number | null;
  /** size of the stored log (JSON lines: what KILN_LOG_CAP counts) */
  storedBytes: number;
  /** largest VmRSS sampled during the run, and the process's VmHWM after it, bytes */
  peakRss: number;
  hwm: number;
  /** CPU time of kiln serve during the run, s */
  kilnCpuSeconds: number;
  truncated: boolean;
}

export async function logsKiln(k: KilnServer, followed: boolean): Promise<KilnLogRun> {
  const sampler = new RssSampler(k.pid, 100);
  const cpu0 = cpuSecondsOf(k.pid);
  const t0 = performance.now();
  const wall0 = Date.now();
  const submitted = await k.submitCommand(LOG_COMMAND);
  let followedBy: Followed | null = null;
  if (followed) {
    const f = await run(process.execPath, [FOLLOWER, `${k.url}/api/v1/runs/${submitted.id}/logs?follow=1`, k.token], { timeoutMs: 900_000 });
    if (f.code !== 0) throw new Error(`the follower failed: ${f.stderr}`);
    followedBy = JSON.parse(f.stdout) as Followed;
    if (!followedBy.ended) throw new Error(`the live log of ${submitted.id} stopped before its end event`);
  }
  const v = await k.waitCompleted(submitted.id, 900_000, 100);
  const seconds = followed ? (performance.now() - t0) / 1000 : (ms(v.finishedAt) - wall0) / 1000;
  const mem = sampler.stop();
  const kilnCpuSeconds = cpuSecondsOf(k.pid) - cpu0;
  if (v.conclusion !== 'success') throw new Error(`log run ${v.id}: ${v.conclusion} ${JSON.stringify(v.jobs[0]).slice(0, 500)}`);
  // The follower counts lines without reading them: the stored log's end says whether the cap was hit.
  const file = path.join(k.dataDir, 'logs', v.id, `${v.jobs[0].id}.jsonl`);
  const storedBytes = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  const tail = Buffer.alloc(Math.min(storedBytes, 65536));
  fs.readSync(fd, tail, 0, tail.length, storedBytes - tail.length);
  fs.closeSync(fd);
  const truncated = /log truncated/.test(tail.toString('utf8'));
  const step = v.jobs[0].steps[0];
  const out: KilnLogRun = {
    followed,
    seconds,
    stepSeconds: (ms(step.finishedAt) - ms(step.startedAt)) / 1000,
    events: followedBy?.events ?? null,
    missingLines: followedBy ? LOG_LINES - followedBy.stdoutLines : null,
    sseBytes: followedBy?.bytes ?? null,
    storedBytes,
    peakRss: mem.peakRss,
    hwm: mem.hwm,
    kilnCpuSeconds,
    truncated,
  };
  if (out.missingLines)
    say(
      `  warning: ${out.missingLines} of the step's ${LOG_LINES} output lines never reached the live follower (${followedBy!.stdoutLines} did)${truncated ? '; the log cap was reached' : ''}`,
    );
  say(
    `  kiln${followed ? ', followed' : ', not followed'}: 200 MiB of log in ${seconds.toFixed(1)} s (step ${out.stepSeconds.toFixed(1)} s${followedBy ? `, ${followedBy.events} lines followed` : ''}), peak RSS ${(mem.peakRss / MiB).toFixed(0)} MiB, kiln CPU ${kilnCpuSeconds.toFixed(1)} s${truncated ? ', LOG TRUNCATED' : ''}`,
  );
  return out;
}

export async function logsRaw(docker: RawDocker): Promise<{ seconds: number; bytes: number }> {
  const r = await run('docker', docker.runArgs(['sh', '-c', LOG_COMMAND]), { stdout: 'count', timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`raw log run exited ${r.code}: ${r.stderr}`);
  const expected = LOG_BYTES + LOG_LINES - 1; // fold puts a newline between lines, none after the last
  if (r.outBytes !== expected) throw new Error(`raw log run: ${r.outBytes} bytes on stdout, expected ${expected}`);
  say(`  raw docker: 200 MiB of output in ${(r.ms / 1000).toFixed(1)} s`);
  return { seconds: r.ms / 1000, bytes: r.outBytes };
}
