/**
 * `npm run bench [-- --quick] [-- --only=latency,logs] [-- --doc]`: Kiln against the raw Docker
 * baseline, side by side, on this machine. Prints a table, writes bench/results.json and (full runs)
 * docs/benchmarks.md. Starts its own Kiln processes (own data folder, port and queue prefix) and
 * removes every container, process, Redis key and folder it made.
 * BENCH_PROF=<dir> writes a CPU profile of each Kiln server it starts into <dir> (node --cpu-prof),
 * to see where the time of a case goes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { apiLoad } from './cases/api-load';
import { EGRESS_ALLOW, egressCase } from './cases/egress';
import { artifactKiln, artifactRaw, makeTinyTarball } from './cases/artifact';
import { idleRss } from './cases/idle';
import { measureLatency, RawLatency, settle } from './cases/latency';
import { logsKiln, logsRaw } from './cases/logs';
import { queueCase } from './cases/queue';
import { checkHostConfig, throughputKiln, throughputRaw } from './cases/throughput';
import { makeUploadTarball, UPLOAD_FILES, uploadKiln, uploadRaw } from './cases/upload';
import { kilnContainers, kilnJobHostConfig, RawDocker, sweepOrphans } from './lib/docker';
import { ENVIRONMENT, KilnServer, ROOT } from './lib/kiln';
import { machineFacts, NoiseMonitor } from './lib/machine';
import { buildTable, buildTargets, consoleTable, markdown } from './lib/report';
import { CASES, CaseName, FULL, QUICK, Results } from './lib/results';
import { elapsedSeconds, sample, say } from './lib/util';

const RESULTS = path.join(ROOT, 'bench', 'results.json');
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');

interface Options {
  quick: boolean;
  only: CaseName[];
  doc: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { quick: false, only: [...CASES], doc: false };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a === '--doc') o.doc = true;
    else if (a.startsWith('--only=')) {
      const names = a.slice(7).split(',').filter(Boolean);
      for (const n of names) if (!(CASES as readonly string[]).includes(n)) throw new Error(`--only: unknown case '${n}'; the cases: ${CASES.join(', ')}`);
      o.only = names as CaseName[];
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`usage: npm run bench [-- --quick] [-- --only=${CASES.join(',')}] [-- --doc]\n`);
      process.exit(0);
    } else throw new Error(`unknown option '${a}' (try --help)`);
  }
  return o;
}

/** Everything started, to be stopped whatever happens. */
const servers = new Set<KilnServer>();
let raw: RawDocker | null = null;
let workDir = '';

async function start(name: string, extra: Record<string, string> = {}, role: 'serve' | 'api' = 'serve', images = [ENVIRONMENT]): Promise<KilnServer> {
  const s = await KilnServer.start(name, extra, role, images);
  servers.add(s);
  return s;
}

async function stop(s: KilnServer): Promise<number> {
  servers.delete(s);
  const { leftContainers } = await s.stop();
  if (leftContainers) say(`  note: ${leftContainers} container(s) of '${s.name}' were still there after it stopped; removed`);
  return leftContainers;
}

let cleaning: Promise<{ kiln: number; raw: number }> | null = null;
function cleanup(): Promise<{ kiln: number; raw: number }> {
  cleaning ??= (async () => {
    let kiln = 0;
    for (const s of [...servers])
      kiln += await stop(s).catch((e: Error) => {
        say(`cleanup of '${s.name}': ${e.message}`);
        return 0;
      });
    const rawLeft = raw ? await raw.cleanup().catch(() => 0) : 0;
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    return { kiln, raw: rawLeft };
  })();
  return cleaning;
}

async function idleContainers(k: KilnServer): Promise<number> {
  await settle(k);
  return (await kilnContainers(k.prefix, true)).length;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const plan = opts.quick ? QUICK : FULL;
  const want = (c: CaseName) => opts.only.includes(c);
  const startedAt = new Date().toISOString();
  say(`Kiln benchmark${opts.quick ? ' (--quick)' : ''}: ${opts.only.join(', ')}`);
  const swept = await sweepOrphans();
  if (swept) say(`removed ${swept} container(s) left by an earlier bench that did not finish`);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-work-'));
  const machine = await machineFacts(ROOT);
  const noise = new NoiseMonitor();
  const benchId = `${process.pid}-${randomBytes(3).toString('hex')}`;

  const r: Results = {
    meta: {
      startedAt,
      finishedAt: '',
      durationSeconds: 0,
      quick: opts.quick,
      cases: opts.only,
      plan,
      machine,
      noise: null,
      image: null,
      warmPool: { poolServerIdleContainers: null, noPoolServerIdleContainers: null },
      hostConfig: null,
      leftovers: { kilnContainers: 0, rawContainers: 0 },
    },
    table: [],
    targets: [],
  };
  // The raw repetitions alternate with each server's: each server is compared with the raw runs of its own phase.
  const rawPool: RawLatency = { endToEnd: [], firstOut: [] };
  const rawNoPool: RawLatency = { endToEnd: [], firstOut: [] };
  const rawSamples = (x: RawLatency) => ({ endToEnd: sample(x.endToEnd), firstOut: sample(x.firstOut) });
  const concurrency = { KILN_WORKER_CONCURRENCY: '2' };

  // ---- the pool server (default KILN_WARM_POOL): idle RSS, latency, throughput, API under load
  if (want('idle') || want('latency') || want('throughput') || want('api')) {
    const k = await start('pool', concurrency);
    r.meta.image = await k.image();
    raw = new RawDocker(benchId, r.meta.image.id, kilnJobHostConfig(k.config));
    if (want('idle')) {
      say('case 8: idle RSS');
      r.idle = await idleRss(k, plan.idleSettleSeconds);
    }
    r.meta.warmPool.poolServerIdleContainers = await idleContainers(k);
    say("checking the raw baseline's HostConfig against a live Kiln job container");
    r.meta.hostConfig = await checkHostConfig(k, raw);
    if (!r.meta.hostConfig.same) say(`  warning: the baseline differs from Kiln's container: ${r.meta.hostConfig.differences.join('; ')}`);
    if (want('latency')) {
      say(`case 1: latency, pool server (${plan.latencyReps} repetitions)`);
      const pool = await measureLatency(k, raw, plan.latencyReps, workDir, rawPool, 'pool');
      r.latency = { pool, noPool: pool, raw: { pool: rawSamples(rawPool), noPool: rawSamples(rawPool) } };
    }
    if (want('throughput')) {
      say(`case 2: throughput, pool server (${plan.throughputJobs} jobs)`);
      await settle(k);
      const pool = await throughputKiln(k, plan.throughputJobs);
      say(`case 2: throughput, raw docker (${plan.throughputJobs} runs)`);
      const rawT = await throughputRaw(raw, plan.throughputJobs);
      r.throughput = { pool, noPool: pool, raw: rawT };
    }
    if (want('api')) {
      say(`case 6: API under load (${plan.apiRate} req/s)`);
      await settle(k);
      r.api = await apiLoad(k, plan.apiRate, plan.apiSeconds);
    }
    await stop(k);
  }

  // ---- the no-pool server (KILN_WARM_POOL=0): latency, throughput
  if (want('latency') || want('throughput')) {
    const k = await start('nopool', { ...concurrency, KILN_WARM_POOL: '0' });
    raw ??= new RawDocker(benchId, (r.meta.image ??= await k.image()).id, kilnJobHostConfig(k.config));
    r.meta.warmPool.noPoolServerIdleContainers = await idleContainers(k);
    if (want('latency') && r.latency) {
      say(`case 1: latency, no-pool server (${plan.latencyReps} repetitions)`);
      r.latency.noPool = await measureLatency(k, raw, plan.latencyReps, workDir, rawNoPool, 'no pool');
      r.latency.raw.noPool = rawSamples(rawNoPool);
    }
    if (want('throughput') && r.throughput) {
      say(`case 2: throughput, no-pool server (${plan.throughputJobs} jobs)`);
      await settle(k);
      r.throughput.noPool = await throughputKiln(k, plan.throughputJobs);
    }
    await stop(k);
  }

  // ---- the heavy server: logs (first, on a fresh process, for its peak memory), upload, artifact
  if (want('logs') || want('upload') || want('artifact')) {
    // The log cap counts stored JSON lines (~141 bytes per 100-character line): 256m would cut 200 MiB of output short.
    const logCap = '512m';
    const k = await start('heavy', { ...concurrency, KILN_LOG_CAP: logCap });
    raw ??= new RawDocker(benchId, (r.meta.image ??= await k.image()).id, kilnJobHostConfig(k.config));
    if (want('logs')) {
      say(`case 3: 200 MiB of log (${plan.logReps} repetition(s): not followed, followed, raw)`);
      const unfollowed = [];
      const followed = [];
      const rawRuns = [];
      for (let i = 0; i < plan.logReps; i++) {
        unfollowed.push(await logsKiln(k, false));
        followed.push(await logsKiln(k, true));
        rawRuns.push(await logsRaw(raw));
      }
      r.logs = {
        followed,
        unfollowed,
        raw: rawRuns,
        followedSeconds: sample(followed.map((x) => x.seconds)),
        unfollowedSeconds: sample(unfollowed.map((x) => x.seconds)),
        rawSeconds: sample(rawRuns.map((x) => x.seconds)),
        peakRssFollowedBytes: Math.max(...followed.map((x) => x.peakRss)),
        peakRssUnfollowedBytes: unfollowed[0].peakRss,
        logCap,
      };
    }
    if (want('upload')) {
      say('case 4: workspace upload (making the 200 MiB / 20 000-file tarball)');
      const tarball = await makeUploadTarball(workDir);
      const kiln = [];
      const rawRuns = [];
      for (let i = 0; i < plan.uploadReps; i++) {
        kiln.push(await uploadKiln(k, tarball.file));
        rawRuns.push((await uploadRaw(raw, tarball.file)).seconds);
      }
      fs.rmSync(tarball.file, { force: true });
      r.upload = {
        tarballBytes: tarball.bytes,
        files: UPLOAD_FILES,
        kiln: sample(kiln.map((u) => u.seconds)),
        kilnAnswered: sample(kiln.map((u) => u.answeredSeconds)),
        kilnJobStartedAfter: sample(kiln.map((u) => u.jobStartedAfter)),
        kilnJobStartToStep: sample(kiln.map((u) => u.jobStartToStep)),
        raw: sample(rawRuns),
      };
    }
    if (want('artifact')) {
      say(`case 5: artifact collection (${plan.artifactReps} repetition(s))`);
      const tiny = await makeTinyTarball(workDir);
      const kiln = [];
      const rawRuns = [];
      let sizeBytes = 0;
      for (let i = 0; i < plan.artifactReps; i++) {
        const a = await artifactKiln(k, tiny);
        kiln.push(a.seconds);
        sizeBytes = a.sizeBytes;
        rawRuns.push((await artifactRaw(raw, workDir)).seconds);
      }
      const metrics = String((await k.request('GET', '/metrics')).body);
      const collections = (how: string) => Number(new RegExp(`^kiln_artifact_collections_total\\{how="${how}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
      r.artifact = { kiln: sample(kiln), raw: sample(rawRuns), sizeBytes, how: { host: collections('host'), exec: collections('exec') } };
    }
    await stop(k);
  }

  // ---- the queue: an API process without a worker
  if (want('queue')) {
    say(`case 7: queue (${plan.queueRepo} repo-form, then ${plan.queueCommand} quick-form submissions; no worker)`);
    const k = await start('queue', { KILN_OUTBOUND_SCHEMES: 'http,https', KILN_OUTBOUND_ALLOW_PRIVATE: 'true' }, 'api');
    const q = await queueCase(k, workDir, plan.queueRepo, plan.queueCommand);
    r.queue = { ...q, workers: 'no worker: a `kiln api` process, every run stays queued' };
    await stop(k);
  }

  // ---- the egress server (no pool, jobs may reach EGRESS_ALLOW): a job with its gateway against the same with no network
  if (want('egress')) {
    say(`case 9: egress gateway (${plan.egressReps} repetitions of each: with the gateway, with egress: none)`);
    const k = await start('egress', { ...concurrency, KILN_WARM_POOL: '0', KILN_EGRESS_ALLOW: EGRESS_ALLOW }, 'serve', [ENVIRONMENT, 'egress-gateway']);
    r.meta.image ??= await k.image();
    r.egress = await egressCase(k, await makeTinyTarball(workDir), plan.egressReps);
    await stop(k);
  }

  const left = await cleanup();
  r.meta.leftovers = { kilnContainers: left.kiln, rawContainers: left.raw };
  r.meta.noise = noise.stop();
  r.meta.finishedAt = new Date().toISOString();
  r.meta.durationSeconds = Math.round(elapsedSeconds());
  r.table = buildTable(r);
  r.targets = buildTargets(r);

  fs.writeFileSync(RESULTS, JSON.stringify(r, null, 2) + '\n');
  process.stdout.write('\n' + consoleTable(r.table, r.targets));
  const full = !opts.quick && opts.only.length === CASES.length;
  if (full || opts.doc) {
    fs.writeFileSync(DOC, markdown(r, `npm run bench${opts.quick ? ' -- --quick' : ''}`) + '\n');
    say(`wrote ${path.relative(process.cwd(), RESULTS)} and ${path.relative(process.cwd(), DOC)} (${Math.round(elapsedSeconds())} s in all)`);
  } else {
    say(
      `wrote ${path.relative(process.cwd(), RESULTS)}; docs/benchmarks.md is left alone (not a full run; --doc writes it anyway) (${Math.round(elapsedSeconds())} s in all)`,
    );
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`${sig}: cleaning up`);
    // A `docker run` the interrupted case had under way may create its container after the first pass.
    void cleanup()
      .then(() => raw?.cleanup())
      .catch(() => undefined)
      .finally(() => process.exit(130));
  });
}

main().then(
  () => process.exit(0),
  async (e: Error) => {
    process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
    for (const s of servers) process.stderr.write(`--- kiln '${s.name}' log tail ---\n${s.logTail()}\n`);
    await cleanup();
    process.exit(1);
  },
);
