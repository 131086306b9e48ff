import { Inject, Injectable } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DATABASE, Database } from '../db/database';
import { REDIS } from '../db/redis';
import { DockerEngine } from '../docker/docker-engine';

export interface Check {
  ok: boolean;
  detail: string;
  ms: number;
}

export interface Health {
  status: 'ok' | 'degraded';
  checks: { engine: Check; redis: Check; database: Check };
}

@Injectable()
export class HealthService {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @Inject(DATABASE) private readonly db: Database,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly engine: DockerEngine,
  ) {}

  async check(): Promise<Health> {
    const t = this.config.healthTimeoutMs;
    const [engine, redis, database] = await Promise.all([
      timed(async () => {
        const v = await this.engine.ping(t);
        const have = await this.engine.runtimes();
        const need = [...new Set([this.config.runtime, ...(this.config.runscEnvironments.length ? ['runsc'] : [])])];
        const missing = need.filter((r) => !have.includes(r));
        if (missing.length) {
          throw new Error(
            `Docker ${v.version}: Kiln is configured for the runtime ${missing.join(', ')} (KILN_RUNTIME / KILN_RUNSC_ENVIRONMENTS) but the engine has only ${have.join(', ')}; register gVisor's runsc in /etc/docker/daemon.json (npm run up does so when runsc is installed)`,
          );
        }
        return `Docker ${v.version} (API ${v.apiVersion}), runtimes ${have.join(', ')}; jobs run under ${need.join(' and ')}`;
      }, t),
      timed(async () => `PING ${await this.redis.ping()}`, t),
      timed(async () => {
        await this.db.ping();
        return this.db.kind;
      }, t),
    ]);
    return { status: engine.ok && redis.ok && database.ok ? 'ok' : 'degraded', checks: { engine, redis, database } };
  }
}

async function timed(fn: () => Promise<string>, timeoutMs: number): Promise<Check> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true, detail, ms: Date.now() - t0 };
  } catch (e) {
    return { ok: false, detail: (e as Error).message, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}
