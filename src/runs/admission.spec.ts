import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceUnavailableException } from '@nestjs/common';
import type Redis from 'ioredis';
import type { AuthService } from '../auth/auth.service';
import type { Principal, Quota } from '../auth/auth.types';
import { QuotaExceededException } from '../common/quota';
import { loadConfig } from '../config/config';
import { MemoryRuns } from '../../test/fixtures/memory-runs';
import { AdmissionService } from './admission';
import { ActiveRunsLimit, StorageLimit } from './runs.repository';
import type { Run } from './runs.types';

/** Admission with its side effects replaced: Redis by a counter in memory, the clock by a number, the records by MemoryRuns. */

const config = loadConfig({ KILN_LOG_LEVEL: 'error' });
const owner: Principal = { user: { id: 'u1', name: 'ada', isAdmin: false, quota: {}, createdAt: '' }, tokenId: 't' };

class FakeRedis {
  readonly counts = new Map<string, number>();
  readonly ttls = new Map<string, number>();
  down = false;
  multi() {
    const ops: (() => unknown)[] = [];
    const chain = {
      incr: (k: string) => {
        ops.push(() => {
          this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
          return this.counts.get(k);
        });
        return chain;
      },
      expire: (k: string, s: number) => {
        ops.push(() => {
          this.ttls.set(k, s);
          return 1;
        });
        return chain;
      },
      exec: async () => {
        if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        return ops.map((op) => [null, op()]);
      },
    };
    return chain;
  }
}

function setup(quota: Partial<Quota> = {}) {
  const q: Quota = { concurrentJobs: 2, queuedRuns: 5, submissionsPerMinute: 3, artifactBytes: 1000, repositories: 1, tokens: 1, secrets: 1, ...quota };
  const redis = new FakeRedis();
  const runs = new MemoryRuns();
  const clock = { now: Date.UTC(2026, 0, 1, 12, 0, 15) };
  const auth = { quota: () => q } as unknown as AuthService;
  const admission = new AdmissionService(config, redis as unknown as Redis, runs.repo, auth, () => clock.now);
  return { admission, redis, runs, clock };
}

async function refused(p: Promise<unknown>): Promise<QuotaExceededException> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof QuotaExceededException, `expected a 429, got ${String(e)}`);
    assert.equal(e.getStatus(), 429);
    return e;
  }
  assert.fail('admitted, expected a 429');
}

test('submissions per minute: the ones within the limit pass, the next is 429 until the next minute; the counter expires', async () => {
  const { admission, redis, clock } = setup({ submissionsPerMinute: 3 });
  for (let i = 0; i < 3; i++) await admission.admit(owner);
  const e = await refused(admission.admit(owner));
  // 15 s into the minute: the next one opens in 45 s.
  assert.equal(e.retryAfterSeconds, 45);
  assert.match(e.message, /at most 3 submissions per minute; try again in 45 s/);
  const key = `${config.queuePrefix}:rate:u1:${Math.floor(clock.now / 60_000)}`;
  assert.equal(redis.counts.get(key), 4);
  assert.equal(redis.ttls.get(key), 120);
  clock.now += 60_000;
  await admission.admit(owner);
});

test('the rate limit is per user', async () => {
  const { admission } = setup({ submissionsPerMinute: 1 });
  await admission.admit(owner);
  await refused(admission.admit(owner));
  await admission.admit({ ...owner, user: { ...owner.user, id: 'u2' } });
});

test('Redis unreachable: 503, not an admission', async () => {
  const { admission, redis } = setup();
  redis.down = true;
  await assert.rejects(admission.admit(owner), (e: unknown) => e instanceof ServiceUnavailableException && /Redis is unreachable/.test(e.message));
});

test('runs not yet completed at the cap: 429, retry in 30 s', async () => {
  const { admission, runs } = setup({ queuedRuns: 5 });
  runs.activeRuns = 4;
  await admission.admit(owner);
  runs.activeRuns = 5;
  const e = await refused(admission.admit(owner));
  assert.equal(e.retryAfterSeconds, 30);
  assert.match(e.message, /^quota: .*Wait for some to finish or cancel them$/);
});

test('storage (artifacts and unconcluded sources) at the cap: 429, retry in 300 s', async () => {
  const { admission, runs } = setup({ artifactBytes: 1000 });
  runs.held = { artifacts: 600, sources: 399 };
  await admission.admit(owner);
  runs.held = { artifacts: 600, sources: 400 };
  const e = await refused(admission.admit(owner));
  assert.equal(e.retryAfterSeconds, 300);
  assert.match(e.message, /artifacts 600 bytes, sources of runs not yet concluded 400 bytes\) uses 1000 bytes of 1000/);
});

test("record: the owner's caps go to the repository, and its refusals come back as 429", async () => {
  const { admission, runs } = setup({ queuedRuns: 5, artifactBytes: 1000 });
  const run = { id: 'r1', ownerId: 'u1' } as Run;
  await admission.record(owner, run, [], 123);
  assert.deepEqual(runs.created[0].limits, { maxActive: 5, sourceBytes: 123, maxStorageBytes: 1000 });

  runs.create = async () => {
    throw new ActiveRunsLimit(5, 5);
  };
  assert.equal((await refused(admission.record(owner, run, [], 1))).retryAfterSeconds, 30);
  runs.create = async () => {
    throw new StorageLimit(900, 200, 1000);
  };
  const e = await refused(admission.record(owner, run, [], 200));
  assert.equal(e.retryAfterSeconds, 300);
  assert.match(e.message, /KILN_QUOTA_ARTIFACT_BYTES/);
  runs.create = async () => {
    throw new Error('disk I/O error');
  };
  await assert.rejects(admission.record(owner, run, [], 1), /disk I\/O error/);
});
