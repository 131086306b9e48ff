/** Facts about the machine the figures come from, and a watch on what else it was doing meanwhile. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import Redis from 'ioredis';
import { BENCH_LABEL, PREFIX_RE } from './docker';
import { must } from './proc';
import { MiB } from './util';

export interface MachineFacts {
  cpuModel: string;
  cpus: number;
  memoryMiB: number;
  os: string;
  kernel: string;
  node: string;
  docker: string;
  storageDriver: string;
  cgroup: string;
  defaultRuntime: string;
  redis: string;
  database: string;
  kilnCommit: string;
}

export async function machineFacts(root: string): Promise<MachineFacts> {
  const osRelease = fs.existsSync('/etc/os-release')
    ? (/^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown')
    : 'unknown';
  const info = JSON.parse(await must('docker', ['info', '--format', '{{json .}}'])) as {
    ServerVersion?: string;
    Driver?: string;
    CgroupVersion?: string;
    CgroupDriver?: string;
    DefaultRuntime?: string;
  };
  let redis = 'unknown';
  const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    redis = /redis_version:(\S+)/.exec(await r.info('server'))?.[1] ?? 'unknown';
  } catch {
    /* reported as unknown */
  } finally {
    r.disconnect();
  }
  const commit = await must('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).catch(() => 'unknown');
  const dirty = await must('git', ['-C', root, 'status', '--porcelain', '--', 'src']).catch(() => '');
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryMiB: Math.round(os.totalmem() / MiB),
    os: osRelease,
    kernel: os.release(),
    node: process.version,
    docker: info.ServerVersion ?? 'unknown',
    storageDriver: info.Driver ?? 'unknown',
    cgroup: `v${info.CgroupVersion ?? '?'} (${info.CgroupDriver ?? '?'})`,
    defaultRuntime: info.DefaultRuntime ?? 'unknown',
    redis,
    database: 'SQLite (the default; KILN_DATA_DIR of each bench server)',
    kilnCommit: commit + (dirty ? ' + uncommitted changes in src/' : ''),
  };
}

export interface Noise {
  /** most containers running at once that were neither the bench's nor its Kiln servers' */
  otherContainersMax: number;
  /** their images (a few), to say what was running */
  otherImages: string[];
  loadAverageMax: number;
  samples: number;
}

/** Every few seconds: the 1-minute load average and how many containers not of this bench run. */
export class NoiseMonitor {
  private readonly timer: NodeJS.Timeout;
  private readonly noise: Noise = { otherContainersMax: 0, otherImages: [], loadAverageMax: 0, samples: 0 };
  private busy = false;

  constructor(everyMs = 5000) {
    this.timer = setInterval(() => void this.take(), everyMs);
    void this.take();
  }

  private async take(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      this.noise.loadAverageMax = Math.max(this.noise.loadAverageMax, os.loadavg()[0]);
      const lines = (await must('docker', ['ps', '--format', `{{.Image}}\t{{.Label "${BENCH_LABEL}"}}\t{{.Label "kiln.deployment"}}`]))
        .split('\n')
        .filter(Boolean);
      const others = lines.map((l) => l.split('\t')).filter(([, bench, deployment]) => !bench && !PREFIX_RE.test(deployment ?? ''));
      this.noise.otherContainersMax = Math.max(this.noise.otherContainersMax, others.length);
      for (const [image] of others) if (this.noise.otherImages.length < 8 && !this.noise.otherImages.includes(image)) this.noise.otherImages.push(image);
      this.noise.samples++;
    } catch {
      /* a missed sample */
    } finally {
      this.busy = false;
    }
  }

  stop(): Noise {
    clearInterval(this.timer);
    return this.noise;
  }
}
