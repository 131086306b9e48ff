/** The table, the targets, the console output and docs/benchmarks.md, all from one Results. */
import { egressMethod, egressRows, egressSection } from '../cases/egress';
import type { Breakdown } from '../cases/latency';
import type { Results, Row, Target } from './results';
import { fmtMiB, fmtMs, fmtRatio, fmtSeconds, MiB } from './util';

const DASH = '—';

/** Output lines that never reached the live follower, over every followed run. */
function lost(l: NonNullable<Results['logs']>): number {
  return l.followed.reduce((a, x) => a + (x.missingLines ?? 0), 0);
}

export function buildTable(r: Results): Row[] {
  const rows: Row[] = [];
  if (r.latency) {
    const { pool, noPool, raw } = r.latency;
    rows.push({
      measure: '1. trivial job end to end (`kiln run` / `docker run --rm`), median',
      pool: fmtSeconds(pool.endToEnd.median),
      noPool: fmtSeconds(noPool.endToEnd.median),
      raw: `${fmtSeconds(raw.pool.endToEnd.median)} / ${fmtSeconds(raw.noPool.endToEnd.median)}`,
      ratio: `${fmtRatio(pool.endToEnd.median / raw.pool.endToEnd.median)} / ${fmtRatio(noPool.endToEnd.median / raw.noPool.endToEnd.median)} (time)`,
    });
    rows.push({
      measure: '1. submit to first log line (live stream / docker run to first stdout byte), median',
      pool: fmtMs(pool.firstLog.median),
      noPool: fmtMs(noPool.firstLog.median),
      raw: `${fmtMs(raw.pool.firstOut.median)} / ${fmtMs(raw.noPool.firstOut.median)}`,
      ratio: `${fmtRatio(pool.firstLog.median / raw.pool.firstOut.median)} / ${fmtRatio(noPool.firstLog.median / raw.noPool.firstOut.median)} (time)`,
    });
  }
  if (r.throughput) {
    const { pool, noPool, raw } = r.throughput;
    rows.push({
      measure: `2. throughput, ${raw.jobs} trivial jobs at concurrency 2`,
      pool: `${pool.jobsPerSecond.toFixed(2)} jobs/s`,
      noPool: `${noPool.jobsPerSecond.toFixed(2)} jobs/s`,
      raw: `${raw.jobsPerSecond.toFixed(2)} jobs/s`,
      ratio: `${fmtRatio(pool.jobsPerSecond / raw.jobsPerSecond)} / ${fmtRatio(noPool.jobsPerSecond / raw.jobsPerSecond)} (throughput)`,
    });
  }
  if (r.logs) {
    const l = r.logs;
    const rate = (s: number) => `${(200 / s).toFixed(1)} MiB/s`;
    rows.push({
      measure: '3. 200 MiB of log, submit to the last line read by a live follower (raw: through the docker client), median',
      pool: `${fmtSeconds(l.followedSeconds.median)} (${rate(l.followedSeconds.median)})${lost(l) ? `, ${lost(l)} lines lost` : ''}`,
      noPool: DASH,
      raw: `${fmtSeconds(l.rawSeconds.median)} (${rate(l.rawSeconds.median)})`,
      ratio: `${fmtRatio(l.rawSeconds.median / l.followedSeconds.median)} (throughput)`,
    });
    rows.push({
      measure: '3. the same job with no live follower, submit to completed, median',
      pool: `${fmtSeconds(l.unfollowedSeconds.median)} (${rate(l.unfollowedSeconds.median)})`,
      noPool: DASH,
      raw: DASH,
      ratio: `${fmtRatio(l.rawSeconds.median / l.unfollowedSeconds.median)} (throughput)`,
    });
    rows.push({
      measure: '3. peak RSS of `kiln serve`: 200 MiB of log with a live follower / without',
      pool: `${fmtMiB(l.peakRssFollowedBytes)} / ${fmtMiB(l.peakRssUnfollowedBytes)}`,
      noPool: DASH,
      raw: DASH,
      ratio: DASH,
    });
  }
  if (r.upload) {
    const u = r.upload;
    rows.push({
      measure: `4. workspace upload, ${(u.tarballBytes / MiB).toFixed(0)} MiB tar / ${u.files} files, submit to first step (raw: create + cp + start), median`,
      pool: fmtSeconds(u.kiln.median),
      noPool: DASH,
      raw: fmtSeconds(u.raw.median),
      ratio: `${fmtRatio(u.raw.median / u.kiln.median)} (throughput)`,
    });
  }
  if (r.artifact) {
    const a = r.artifact;
    rows.push({
      measure: '5. artifact collection, 200 MiB (upload-artifact step / docker cp out), median',
      pool: fmtSeconds(a.kiln.median),
      noPool: DASH,
      raw: fmtSeconds(a.raw.median),
      ratio: `${fmtRatio(a.raw.median / a.kiln.median)} (throughput)`,
    });
  }
  if (r.api) {
    const { idle, busy } = r.api;
    rows.push({
      measure: `6. GET /api/v1/runs/:id at ${busy.rate} req/s while jobs run: p50 / p99`,
      pool: `${fmtMs(busy.p50)} / ${fmtMs(busy.p99)}`,
      noPool: DASH,
      raw: DASH,
      ratio: DASH,
    });
    rows.push({ measure: `6. the same, server idle: p50 / p99`, pool: `${fmtMs(idle.p50)} / ${fmtMs(idle.p99)}`, noPool: DASH, raw: DASH, ratio: DASH });
  }
  if (r.queue) {
    const { repo, command, check } = r.queue;
    rows.push({
      measure: `7. queue: ${command.submitted} runs by JSON \`{command}\`, accepted/s (lost)`,
      pool: `${command.acceptedPerSecond.toFixed(1)}/s (${check.lost} lost)`,
      noPool: DASH,
      raw: DASH,
      ratio: DASH,
    });
    rows.push({
      measure: `7. queue: ${repo.submitted} runs by JSON \`{repo, ref}\` (clone at submission), accepted/s`,
      pool: `${repo.acceptedPerSecond.toFixed(1)}/s`,
      noPool: DASH,
      raw: DASH,
      ratio: DASH,
    });
  }
  if (r.idle) {
    rows.push({
      measure: '8. idle RSS of `kiln serve` (after start-up and one job, settled)',
      pool: fmtMiB(r.idle.afterOneJobBytes),
      noPool: DASH,
      raw: DASH,
      ratio: DASH,
    });
  }
  if (r.egress) rows.push(...egressRows(r.egress));
  return rows;
}

export function buildTargets(r: Results): Target[] {
  const t: Target[] = [];
  if (r.latency) {
    const { pool, noPool, raw } = r.latency;
    const rp = pool.endToEnd.median / raw.pool.endToEnd.median;
    const rn = noPool.endToEnd.median / raw.noPool.endToEnd.median;
    t.push({
      target: 'trivial job end to end ≤ 1.0x raw `docker run` (with the pool)',
      figure: `${fmtRatio(rp)} (${fmtSeconds(pool.endToEnd.median)} vs ${fmtSeconds(raw.pool.endToEnd.median)})`,
      met: rp <= 1.0,
    });
    t.push({
      target: 'trivial job end to end ≤ 1.3x raw (without the pool)',
      figure: `${fmtRatio(rn)} (${fmtSeconds(noPool.endToEnd.median)} vs ${fmtSeconds(raw.noPool.endToEnd.median)})`,
      met: rn <= 1.3,
    });
    t.push({ target: 'submit to first log line < 300 ms (with the pool)', figure: fmtMs(pool.firstLog.median), met: pool.firstLog.median < 300 });
  }
  if (r.throughput) {
    const { pool, noPool, raw } = r.throughput;
    const x = pool.jobsPerSecond / raw.jobsPerSecond;
    t.push({
      target: 'throughput ≥ 1.0x raw (concurrency 2, with the pool)',
      figure: `${fmtRatio(x)} (${pool.jobsPerSecond.toFixed(2)} vs ${raw.jobsPerSecond.toFixed(2)} jobs/s; without the pool ${fmtRatio(noPool.jobsPerSecond / raw.jobsPerSecond)})`,
      met: x >= 1.0,
    });
  }
  if (r.logs) {
    const x = r.logs.rawSeconds.median / r.logs.followedSeconds.median;
    const y = r.logs.rawSeconds.median / r.logs.unfollowedSeconds.median;
    t.push({
      target: 'log throughput ≥ 0.8x raw (every line delivered to a live follower)',
      figure: `${fmtRatio(x)} (${fmtSeconds(r.logs.followedSeconds.median)} vs ${fmtSeconds(r.logs.rawSeconds.median)} for 200 MiB; with nobody following ${fmtRatio(y)})${lost(r.logs) ? `; **${lost(r.logs)} lines never reached the follower**` : ''}`,
      met: x >= 0.8 && !lost(r.logs),
    });
  }
  if (r.upload) {
    const x = r.upload.raw.median / r.upload.kiln.median;
    t.push({
      target: 'upload throughput ≥ 0.8x raw',
      figure: `${fmtRatio(x)} (${fmtSeconds(r.upload.kiln.median)} vs ${fmtSeconds(r.upload.raw.median)})`,
      met: x >= 0.8,
    });
  }
  if (r.artifact) {
    const x = r.artifact.raw.median / r.artifact.kiln.median;
    t.push({
      target: 'artifact throughput ≥ 0.8x raw',
      figure: `${fmtRatio(x)} (${fmtSeconds(r.artifact.kiln.median)} vs ${fmtSeconds(r.artifact.raw.median)})`,
      met: x >= 0.8,
    });
  }
  if (r.logs)
    t.push({
      target: 'peak RSS while streaming 200 MiB of logs < 300 MiB (to a live follower)',
      figure: `${fmtMiB(r.logs.peakRssFollowedBytes)} (with nobody following: ${fmtMiB(r.logs.peakRssUnfollowedBytes)})`,
      met: r.logs.peakRssFollowedBytes < 300 * MiB,
    });
  if (r.idle) t.push({ target: 'idle RSS < 200 MiB', figure: fmtMiB(r.idle.afterOneJobBytes), met: r.idle.afterOneJobBytes < 200 * MiB });
  if (r.queue) {
    const c = r.queue.check;
    const full = r.queue.command.submitted >= 10_000;
    t.push({
      target: 'no accepted run lost at 10 000 queued',
      figure: `${c.lost} lost of ${c.accepted} accepted${full ? '' : ` (only ${r.queue.command.submitted + r.queue.repo.submitted} submitted in this run)`}`,
      met: full ? c.lost === 0 : null,
    });
  }
  return t;
}

function pad(s: string, n: number): string {
  return s + ' '.repeat(Math.max(0, n - [...s].length));
}

/** The table for a terminal. */
export function consoleTable(rows: Row[], targets: Target[]): string {
  const head: Row = { measure: 'measure', pool: 'Kiln (pool)', noPool: 'Kiln (no pool)', raw: 'raw docker', ratio: 'Kiln / raw (pool / no pool)' };
  const all = [head, ...rows];
  const keys = ['measure', 'pool', 'noPool', 'raw', 'ratio'] as const;
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => [...r[k].replace(/`/g, '')].length))])) as Record<
    (typeof keys)[number],
    number
  >;
  const line = (r: Row) => keys.map((k) => pad(r[k].replace(/`/g, ''), width[k])).join('  ');
  const out = [line(head), keys.map((k) => '-'.repeat(width[k])).join('  '), ...rows.map(line), ''];
  for (const t of targets) out.push(`${t.met === null ? '  ?  ' : t.met ? ' met ' : ' NOT '} ${t.target}: ${t.figure}`);
  return out.join('\n') + '\n';
}

function mdTable(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`),
  ].join('\n');
}

const BREAKDOWN_LABELS: Record<keyof Breakdown, string> = {
  cliToRecorded: 'CLI start → run recorded (node start-up, pack, upload, submission)',
  recordedToJobStart: 'recorded → job taken by the worker (queue)',
  jobStartToStep: 'job taken → step started (container create + start, workspace unpacked)',
  step: 'the step (`docker exec`; counters and env files read from the host)',
  stepToRunEnd: 'step finished → run finished (container removed, records)',
  runEndToCliExit: 'run finished → CLI exits (end of the live log stream, final status)',
};

/** docs/benchmarks.md, written from one full run. */
export function markdown(r: Results, command: string): string {
  const m = r.meta;
  const o: string[] = [];
  o.push('# Benchmarks', '');
  o.push(
    `Generated by \`${command}\` on ${m.finishedAt.slice(0, 10)}: every figure below is from that one run (${Math.round(m.durationSeconds / 60)} min${m.quick ? ', **--quick**: fewer repetitions, smaller counts' : ''}); \`bench/results.json\` (not committed) has every repetition. Nothing here is asserted by a test: the bench measures, this page reports.`,
    '',
  );
  o.push(
    'Kiln and the raw baseline run side by side in the same run, on the same image (the one the catalogue measured for `python-3.11`) and with the same limits. "Kiln (pool)" is a `kiln serve` with the default `KILN_WARM_POOL` (pre-started containers per GA environment), "Kiln (no pool)" one with `KILN_WARM_POOL=0`; the cases without that split ran on a server with the default.',
    '',
  );
  if (m.warmPool.poolServerIdleContainers !== null) {
    o.push(
      m.warmPool.poolServerIdleContainers > 0
        ? `The pool was active: the pool server kept ${m.warmPool.poolServerIdleContainers} container(s) while idle; the no-pool server ${m.warmPool.noPoolServerIdleContainers ?? 'n/a'}.`
        : `**The warm pool was not active in this build**: the "pool" server kept no container while idle (\`KILN_WARM_POOL\` is not read yet), so the two Kiln columns measure the same code and differ only by noise.`,
      '',
    );
  }
  o.push('## Results', '');
  o.push(
    mdTable(
      ['measure', 'Kiln (pool)', 'Kiln (no pool)', 'raw docker', 'Kiln / raw (pool / no pool)'],
      r.table.map((x) => [x.measure, x.pool, x.noPool, x.raw, x.ratio]),
    ),
    '',
  );
  o.push(
    "Ratios: \"(time)\" is Kiln's time over raw's (lower is better); \"(throughput)\" is Kiln's rate over raw's (higher is better). For case 1 the raw column has two figures: the raw runs that alternated with the pool server's repetitions, then those that alternated with the no-pool server's; each Kiln column is compared with its own.",
    '',
  );
  o.push('## Targets', '');
  o.push(
    mdTable(
      ['target', 'figure', 'met'],
      r.targets.map((t) => [t.target, t.figure, t.met === null ? 'not measured at full size' : t.met ? 'met' : '**not met**']),
    ),
    '',
  );

  if (r.latency) {
    o.push('## Where the time of a trivial job goes', '');
    o.push("Medians of each stage of `kiln run`, from the run's own records (server timestamps, same clock as the bench):", '');
    const b = r.latency;
    o.push(
      mdTable(
        ['stage', 'pool', 'no pool'],
        (Object.keys(BREAKDOWN_LABELS) as (keyof Breakdown)[]).map((k) => [BREAKDOWN_LABELS[k], fmtMs(b.pool.breakdown[k]), fmtMs(b.noPool.breakdown[k])]),
      ),
      '',
    );
    o.push(
      `Submit to the step's start notice (▶) on the live stream: ${fmtMs(b.pool.stepStartNotice.median)} (pool), ${fmtMs(b.noPool.stepStartNotice.median)} (no pool); to its first output line ${fmtMs(b.pool.firstLog.median)} / ${fmtMs(b.noPool.firstLog.median)}.`,
      '',
    );
  }
  o.push(...egressSection(r));
  o.push('## Details', '');
  if (r.throughput) {
    const t = r.throughput;
    o.push(
      `- Throughput: Kiln ${t.pool.jobs} jobs in ${fmtSeconds(t.pool.seconds)} (pool) and ${fmtSeconds(t.noPool.seconds)} (no pool), from the first submission to the last run's recorded end; raw ${fmtSeconds(t.raw.seconds)}.`,
    );
  }
  if (r.logs) {
    const l = r.logs;
    const f = l.followed[l.followed.length - 1];
    const cpu = (runs: { kilnCpuSeconds: number; seconds: number }[]) =>
      runs.map((x) => `${x.kilnCpuSeconds.toFixed(1)} s in ${x.seconds.toFixed(1)} s`).join(', ');
    o.push(
      `- Logs: ${l.followed.length} repetition(s) of each. The step alone took ${l.unfollowed.map((x) => fmtSeconds(x.stepSeconds)).join(', ')} with nobody following and ${l.followed.map((x) => fmtSeconds(x.stepSeconds)).join(', ')} followed (the server reads the step's output more slowly while it also serves the follower). \`kiln serve\` CPU time: ${cpu(l.unfollowed)} (not followed), ${cpu(l.followed)} (followed). The follower received ${f.events} log lines (${fmtMiB(f.sseBytes ?? NaN)} of server-sent events)${lost(l) ? `; **${lost(l)} of the step's 2 097 152 output lines never reached it** (over ${l.followed.length} run(s))` : ", every one of the step's 2 097 152 output lines and Kiln's notices"}. The stored log is ${fmtMiB(f.storedBytes)} of JSON lines for 200 MiB of output: \`KILN_LOG_CAP\` counts those bytes, so the bench sets \`KILN_LOG_CAP=${l.logCap}\` (256m would cut this log short)${[...l.followed, ...l.unfollowed].some((x) => x.truncated) ? '; **the cap was reached: a log was truncated**' : '; it was not reached'}. Peak RSS is the largest VmRSS sampled every 100 ms during a run; the unfollowed figure is from the server's first job after it started (a Node process keeps the memory it grew to, so later runs start higher).`,
    );
  }
  if (r.upload) {
    const u = r.upload;
    o.push(
      `- Upload (medians): the 201 came ${fmtSeconds(u.kilnAnswered.median)} after the POST started (upload to disk, sanitize, record), the worker took the job ${fmtSeconds(u.kilnJobStartedAfter.median)} after the POST started, and its step started ${fmtSeconds(u.kilnJobStartToStep.median)} after that (container, workspace streamed through \`docker exec tar -x\`).`,
    );
  }
  if (r.artifact)
    o.push(
      `- Artifact: ${fmtMiB(r.artifact.sizeBytes)} stored per run; its files read from the host ${r.artifact.how.host} time(s), by tar in the sandbox ${r.artifact.how.exec} time(s) (\`kiln_artifact_collections_total\`).`,
    );
  if (r.api) {
    const { idle, busy } = r.api;
    o.push(
      `- API under load: ${busy.requests} requests at ${busy.rate}/s over ${busy.seconds} s while ${busy.jobsCompleted} jobs (3 s each, a line every 100 ms) were submitted and ran: p50 ${fmtMs(busy.p50)}, p90 ${fmtMs(busy.p90)}, p99 ${fmtMs(busy.p99)}, max ${fmtMs(busy.max)}, ${busy.errors} errors. Idle (${idle.requests} requests over ${idle.seconds} s): p50 ${fmtMs(idle.p50)}, p90 ${fmtMs(idle.p90)}, p99 ${fmtMs(idle.p99)}, max ${fmtMs(idle.max)}, ${idle.errors} errors.`,
    );
  }
  if (r.queue) {
    const { repo, command, check, workers } = r.queue;
    o.push(
      `- Queue (${workers}): \`{command}\` ${command.accepted}/${command.submitted} accepted in ${fmtSeconds(command.seconds)} with ${command.parallel} requests in flight (${command.acceptedPerSecond.toFixed(1)}/s; first tenth ${command.firstTenthPerSecond.toFixed(1)}/s, last tenth ${command.lastTenthPerSecond.toFixed(1)}/s; submission p50 ${fmtMs(command.p50Ms)}, p99 ${fmtMs(command.p99Ms)}). \`{repo, ref}\` ${repo.accepted}/${repo.submitted} in ${fmtSeconds(repo.seconds)} with ${repo.parallel} in flight (${repo.acceptedPerSecond.toFixed(1)}/s, p50 ${fmtMs(repo.p50Ms)}), submitted first, on an empty queue. Refused: ${JSON.stringify({ ...repo.refused, ...command.refused })}. Check: ${check.inDatabase} of ${check.accepted} accepted ids in the database, jobs ${JSON.stringify(check.jobsByStatus)}, ${check.queuedInRedis} entries waiting in the Redis queue; lost ${check.lost}.`,
    );
  }
  if (r.idle)
    o.push(
      `- Idle RSS: ${fmtMiB(r.idle.afterStartBytes)} after start-up, ${fmtMiB(r.idle.afterOneJobBytes)} after one job (${r.idle.settleSeconds} s to settle, median of 5 samples).`,
    );
  if (m.hostConfig) {
    o.push(
      `- Baseline check: a live Kiln job container's HostConfig was compared with the raw baseline's: ${m.hostConfig.same ? 'identical in every hardening field' : `**differs**: ${m.hostConfig.differences.join('; ')}`}.`,
    );
  }
  o.push('');

  const obs = observations(r);
  if (obs.length)
    o.push('## Observations', '', "Drawn from the figures above (each appears only when this run's figures show it):", '', ...obs.map((x) => `- ${x}`), '');
  o.push('## Method', '');
  o.push(
    ...[
      '`npm run bench` builds the project (tsc), then starts its own Kiln processes: each with its own data folder (a fresh SQLite database, into which `kiln images python-3.11` publishes the cached image in seconds), its own port and its own queue prefix (Redis keys and container labels `kbench-<pid>-…`), so a running Kiln is neither used nor disturbed. Every server runs with quotas raised out of the way (`KILN_QUOTA_QUEUED_RUNS`, `KILN_QUOTA_SUBMISSIONS_PER_MINUTE`, `KILN_QUOTA_CONCURRENT_JOBS`, `KILN_QUOTA_ARTIFACT_BYTES`) and `KILN_WORKER_CONCURRENCY=2`; everything else is the default.',
      '',
      "- **The raw baseline** is the `docker` CLI with exactly the HostConfig Kiln gives a job container: it is computed by Kiln's own `hardenedHostConfig()` and `sandboxLimits()` with the server's default limits (user 1001, read-only root, all capabilities dropped, `no-new-privileges`, pids 256, 2 GiB memory = swap, 1 CPU, the four tmpfs mounts, `fsize`/`nofile` ulimits, `--init`, network none, json-file logging capped at 16 MiB) and checked against a live Kiln container (see Details). Kiln runs a step as `docker exec` in a long-lived container; the baseline runs the command as the container's own process.",
      "- **Upload and artifact baselines** cannot use that exact HostConfig: the engine refuses `docker cp` into a container whose root is read-only, and its archive API does not see tmpfs mounts. Their containers therefore keep everything but the read-only root and the `/workspace` tmpfs (the files live in the container's layer, on disk). That is also why Kiln, where it cannot read a sandbox's files from the host, streams tar through `docker exec` (docs/runs.md).",
      `- **1. Latency**: ${m.plan.latencyReps} repetitions per server, Kiln and raw alternating (each server compared with the raw runs of its own phase: the machine's load may drift between phases), one unmeasured warm-up of each first; between repetitions the bench waits until the server's containers stop changing (a used pool container replaced). End to end is the wall time of \`kiln run DIR\` (a one-step \`.kiln.yml\`) and of \`docker run --rm … python3 -c pass\`. First log line: POST of the quick form \`python3 -c "print('ready')"\`, then the live log (\`?follow=1\`), to the first output line of the step; raw: \`docker run\` to the first byte on stdout.`,
      `- **2. Throughput**: ${m.plan.throughputJobs} quick-form runs of \`python3 -c pass\` submitted 4 at a time, timed from the first submission to the last run's recorded end; raw: ${m.plan.throughputJobs} \`docker run --rm\`, 2 at a time, once (right after the pool server's run; both Kiln columns are compared with it).`,
      `- **3. Logs**: the quick form \`head -c 209715200 /dev/zero | tr '\\0' 'a' | fold -w 100\` (2 Mi lines of 100 characters) on a server started for this case and the next two, with \`KILN_LOG_CAP=${r.logs?.logCap ?? '512m'}\`. Followed: a follower process of its own (\`bench/lib/follower.ts\`: it counts the events and the step's output lines by byte patterns, without parsing them) reads the live log (\`?follow=1\`); timed from the POST to the stream's \`end\`, and every one of the 2 097 152 output lines must have arrived. Not followed: the same job with nobody reading, timed from the POST to the run's recorded end. \`kiln serve\`'s VmRSS is sampled every 100 ms and its CPU time read from /proc. Raw: \`docker run\` of the same pipeline, its stdout read (and counted) through the docker client; its output also goes to the json-file log driver that Kiln's HostConfig sets (a Kiln step is a \`docker exec\`, whose output does not). ${m.plan.logReps} repetition(s) of each.`,
      `- **4. Upload**: an uncompressed tarball of 20 000 files of random bytes (200 MiB of content) in 100 folders, posted as multipart (the workflow as a text field) by the bench itself, streamed from disk; timed from the start of the POST to the first step's recorded start. The step checks that 20 000 files arrived. Raw: \`docker create\` + \`docker cp - CONTAINER:/workspace\` of the same tarball + \`docker start\`. ${m.plan.uploadReps} repetition(s) each.`,
      `- **5. Artifact**: a step writes 20 files of 10 MiB from /dev/urandom, then \`actions/upload-artifact\` collects them; the figure is that step's recorded duration. Raw: the same files written by a container, then \`docker cp CONTAINER:/workspace/out -\` into a file. Each side's timed part starts after a \`sync\` (the write-back of what came before, 200 MiB at a time, would otherwise slow whichever side came next). ${m.plan.artifactReps} repetition(s) each.`,
      `- **6. API under load**: an open-loop generator in the bench (keep-alive HTTP, each request sent at its scheduled time, latency counted from that time) reads \`GET /api/v1/runs/:id\` at ${m.plan.apiRate} req/s over runs of the server, first for ${m.plan.apiSeconds / 2} s with nothing running, then for ${m.plan.apiSeconds} s while a 3-second job is submitted every 1.5 s (both slots busy). The generator shares the machine's two cores with Kiln and the engine.`,
      `- **7. Queue**: a \`kiln api\` process (no worker: every run stays queued). First ${m.plan.queueRepo} \`{repo, ref}\` submissions (4 in flight) of a one-job repository served by the tests' local smart-HTTP git server (\`KILN_GIT_SCHEMES=http\`, \`KILN_GIT_ALLOW_PRIVATE=true\`): Kiln clones at submission, so this form costs a clone per run and 10 000 of them would not fit the bench's time; then ${m.plan.queueCommand} quick-form \`{command}\` submissions (16 in flight). Then the server's SQLite database is read: every id answered 201 must be there with its job, and each job either waits in the Redis queue (\`queued\`) or in the database behind the user's concurrent-jobs quota (\`pending\`, at most \`KILN_QUOTA_CONCURRENT_JOBS\`=1000 are handed to the queue).`,
      `- **8. Idle RSS**: the pool server's VmRSS ${m.plan.idleSettleSeconds} s after start-up, and ${m.plan.idleSettleSeconds} s after one trivial job (median of 5 samples, 1 s apart).`,
      egressMethod(m.plan),
      '- Medians throughout; every repetition is in `bench/results.json`. `npm run bench -- --quick` runs fewer repetitions and smaller counts (and leaves this page alone); `--only=latency,logs` runs some cases.',
      '',
    ],
  );
  o.push('## Machine', '');
  const f = m.machine;
  o.push(
    mdTable(
      ['', ''],
      [
        ['CPU', `${f.cpus} × ${f.cpuModel}`],
        ['memory', `${f.memoryMiB} MiB`],
        ['OS, kernel', `${f.os}, ${f.kernel}`],
        ['Docker engine', `${f.docker}, ${f.storageDriver}, cgroup ${f.cgroup}, default runtime ${f.defaultRuntime}`],
        ['Node.js', f.node],
        ['Redis', f.redis],
        ['database', f.database],
        ['Kiln', f.kilnCommit],
        ['image', m.image ? `${m.image.ref} (${m.image.id.slice(0, 19)})` : 'n/a'],
      ],
    ),
    '',
  );
  if (m.noise) {
    o.push(
      `Other load during the run: up to ${m.noise.otherContainersMax} container(s) not started by the bench were running at once${m.noise.otherImages.length ? ` (${m.noise.otherImages.join(', ')})` : ''}; the 1-minute load average peaked at ${m.noise.loadAverageMax.toFixed(2)} on ${f.cpus} cores. ${m.noise.otherContainersMax > 0 ? 'Other work shared the machine during the run: the figures are noisier than on an idle machine (both sides alike, as repetitions alternate).' : 'Nothing else ran in containers during the run.'}`,
      '',
    );
  }
  return o.join('\n');
}

/** What the figures of this run say about where Kiln spends its time; each only when the figures show it. */
export function observations(r: Results): string[] {
  const out: string[] = [];
  if (r.latency) {
    const b = r.latency.noPool.breakdown;
    const keys = Object.keys(BREAKDOWN_LABELS) as (keyof Breakdown)[];
    const total = keys.reduce((a, k) => a + b[k], 0);
    const [top, second] = [...keys].sort((x, y) => b[y] - b[x]);
    out.push(
      `Trivial job (no pool): the largest stage is "${BREAKDOWN_LABELS[top]}" at ${fmtMs(b[top])} of ${fmtMs(total)}, then "${BREAKDOWN_LABELS[second]}" at ${fmtMs(b[second])}. The raw \`docker run\` alternating with it took ${fmtSeconds(r.latency.raw.noPool.endToEnd.median)} for everything.`,
    );
    if (b.runEndToCliExit > 150)
      out.push(
        `After the run is recorded finished, \`kiln run\` still waits ${fmtMs(b.runEndToCliExit)} (median) before it exits: the live log stream ends on the follower's next poll of the job states, not when the run ends.`,
      );
    const p = r.latency.pool.breakdown;
    if ((r.meta.warmPool.poolServerIdleContainers ?? 0) > 0 && p.step > 1.3 * b.step) {
      out.push(
        `With the pool the sandbox is ready sooner (job taken → step started ${fmtMs(p.jobStartToStep)} vs ${fmtMs(b.jobStartToStep)}) but the step itself is slower (${fmtMs(p.step)} vs ${fmtMs(b.step)}): the pool starts the replacement sandbox as soon as one is taken, so its creation and start compete with the step on this machine's ${r.meta.machine.cpus} cores.`,
      );
    }
    if (b.step > 250)
      out.push(
        `A step of \`python3 -c pass\` takes ${fmtMs(b.step)} inside Kiln: one \`docker exec\` (about 90 ms of it the engine's own cost here) of \`sh\` writing the script, then \`bash\` running it, then \`python3\`; the cgroup counters and env files are read from the host after it.`,
      );
  }
  if (r.logs) {
    const l = r.logs;
    if (l.peakRssFollowedBytes > 2 * l.peakRssUnfollowedBytes) {
      out.push(
        `One live follower multiplies the server's memory for a large log: peak RSS ${fmtMiB(l.peakRssFollowedBytes)} followed vs ${fmtMiB(l.peakRssUnfollowedBytes)} not followed, and ${fmtSeconds(l.followedSeconds.median)} vs ${fmtSeconds(l.unfollowedSeconds.median)}.`,
      );
    }
    if (lost(l)) {
      out.push(
        `The live log lost lines: ${lost(l)} of the step's output lines never reached the follower, although the stream ended normally (\`event: end\`)${[...l.followed].some((x) => x.truncated) ? '' : ' and the stored log was not truncated'}. A follower that falls behind misses part of the log without being told.`,
      );
    }
    const u = l.unfollowed[0];
    if (u && u.kilnCpuSeconds > 0.8 * u.seconds)
      out.push(
        `Even with nobody following, \`kiln serve\` used ${u.kilnCpuSeconds.toFixed(1)} s of CPU in ${u.seconds.toFixed(1)} s for 200 MiB of log: the server's one thread is the bottleneck (every output line becomes a JSON record, written to the log file and published to Redis).`,
      );
    const f = l.followed[0];
    if (f && f.kilnCpuSeconds > 0.8 * f.seconds && f.seconds > 1.5 * (u?.seconds ?? Infinity))
      out.push(
        `With a follower, \`kiln serve\` used ${f.kilnCpuSeconds.toFixed(1)} s of CPU in ${f.seconds.toFixed(1)} s: serving the live stream (one server-sent event per line) costs more than storing the log, in the same thread that reads the step's output, so the step itself ran ${fmtSeconds(f.stepSeconds)} instead of ${fmtSeconds(u?.stepSeconds ?? NaN)}.`,
      );
  }
  if (r.artifact && r.artifact.kiln.median > r.artifact.raw.median / 0.8) {
    const { host, exec } = r.artifact.how;
    const route =
      exec > 0
        ? `${exec} of ${host + exec} collection(s) ran \`tar\` in the sandbox, streamed out through \`docker exec\`'s attach stream (the engine's archive API cannot see the tmpfs \`/workspace\`), not the read from the host (docs/runs.md says when that is not taken)`
        : 'the files were read from the host (a listing exec in the sandbox, then the files through /proc/<keeper>/root)';
    out.push(
      `Artifact: Kiln's ${fmtSeconds(r.artifact.kiln.median)}: ${route}; \`docker cp\` (${fmtSeconds(r.artifact.raw.median)}) reads a container's files on disk through the archive API.`,
    );
  }
  if (r.upload && r.upload.kiln.median > r.upload.raw.median / 0.8) {
    const u = r.upload;
    out.push(
      `Upload: of ${fmtSeconds(u.kiln.median)} to the first step, ${fmtSeconds(u.kilnAnswered.median)} pass before the 201 (multipart to disk, then sanitized into a second copy, hashed, stored) and ${fmtSeconds(u.kilnJobStartToStep.median)} between the job's start and its step (the tar streamed through \`docker exec\`); \`docker create\` + \`docker cp\` + \`docker start\` take ${fmtSeconds(u.raw.median)} in all.`,
    );
  }
  if (r.api && r.api.busy.p99 > 5 * r.api.idle.p99) {
    const { idle, busy } = r.api;
    out.push(
      `Status reads slow down while jobs run: p99 ${fmtMs(busy.p99)} vs ${fmtMs(idle.p99)} idle (p50 ${fmtMs(busy.p50)} vs ${fmtMs(idle.p50)}); \`kiln serve\` used ${busy.kilnCpuPercent.toFixed(0)}% of a core during the busy window and ${idle.kilnCpuPercent.toFixed(0)}% idle. The API and the worker share one process and one event loop in \`kiln serve\`; the machine has ${r.meta.machine.cpus} cores for Kiln, the engine, the jobs and the load generator.`,
    );
  }
  if (r.queue && r.queue.command.lastTenthPerSecond < 0.6 * r.queue.command.firstTenthPerSecond) {
    const c = r.queue.command;
    out.push(
      `Submissions slow down as the queue grows: ${c.firstTenthPerSecond.toFixed(1)}/s over the first tenth of the ${c.submitted} quick-form runs, ${c.lastTenthPerSecond.toFixed(1)}/s over the last. Work per submission grows with the user's runs: the scheduler counts the user's active jobs (\`RunsRepository.countActiveJobs\`, a join over all of the user's runs and jobs) and the quota check sums their artifact bytes (\`artifactBytes\`, a join over all of the user's runs).`,
    );
  }
  return out;
}
