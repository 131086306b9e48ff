import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Redis from 'ioredis';
import type { Request, Response } from 'express';
import type { KilnConfig } from '../../src/config/config';
import { openRedis } from '../../src/db/redis';
import { LogsService } from '../../src/runs/logs.service';
import type { RunsRepository } from '../../src/runs/runs.repository';
import type { Job, JobStatus } from '../../src/runs/runs.types';
import { LogBus } from '../../src/storage/log-bus';
import { LogStore, LogWriter } from '../../src/storage/log-store';
import { encodeLogMessage, LogBatch, logChannel, LogRecord } from '../../src/storage/log-wire';
import { testConfig, tmpDir } from '../helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Every follower, so that a failed test does not leave one polling forever. */
const followers: Follower[] = [];

/** The follower of the API (LogsService.follow), as an HTTP client sees its server-sent events. */
class Follower {
  readonly lines: (LogRecord & { job: string; jobId: string })[] = [];
  readonly raw: string[] = [];
  end: { status?: string; conclusion?: string } | null = null;
  readonly done: Promise<void>;
  private readonly req = new EventEmitter();

  constructor(service: LogsService, runId: string, jobId?: string, step?: number) {
    const res = Object.assign(new EventEmitter(), {
      status: () => res,
      set: () => res,
      flushHeaders: () => undefined,
      write: (chunk: string) => {
        this.raw.push(chunk);
        for (const event of chunk.split('\n\n').filter(Boolean)) {
          if (event.startsWith('event: end')) this.end = JSON.parse(event.split('\n')[1].slice(6));
          else if (event.startsWith('data: ')) this.lines.push(JSON.parse(event.slice(6)));
        }
        return true;
      },
      end: () => undefined,
    });
    followers.push(this);
    this.done = service.follow(runId, jobId, step, this.req as unknown as Request, res as unknown as Response);
  }

  texts(): string[] {
    return this.lines.map((l) => l.l);
  }

  async waitFor(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.lines.length} lines`);
      await sleep(10);
    }
  }

  disconnect(): void {
    this.req.emit('close');
  }
}

/** The part of the runs repository the follower reads: job states, and the run at the end. */
class FakeRepo {
  readonly states = new Map<string, JobStatus>();
  constructor(
    private readonly runId: string,
    jobIds: string[],
  ) {
    for (const id of jobIds) this.states.set(id, 'in_progress');
  }
  async jobs(runId: string): Promise<Job[]> {
    if (runId !== this.runId) return [];
    return [...this.states].map(([id, status], position) => ({ id, runId, position, key: `key-${id}`, status }) as unknown as Job);
  }
  async getRun() {
    return { status: [...this.states.values()].every((s) => s === 'completed') ? 'completed' : 'in_progress', conclusion: 'success' };
  }
  finish(jobId: string): void {
    this.states.set(jobId, 'completed');
  }
}

describe('live logs over Redis pub/sub (real Redis)', () => {
  let redis: Redis;
  const buses: LogBus[] = [];
  let n = 0;

  before(() => {
    redis = openRedis({ redisUrl: process.env.KILN_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' });
  });
  after(async () => {
    for (const f of followers) f.disconnect();
    await Promise.allSettled(followers.map((f) => f.done));
    for (const bus of buses) bus.onApplicationShutdown();
    redis.disconnect();
  });

  /** A deployment of its own (queue prefix), and a node of it: a data folder, a store, a bus, the API's follower. */
  function node(config: KilnConfig, dataDir = config.dataDir, publisher: Pick<Redis, 'publish'> = redis) {
    const cfg = { ...config, dataDir };
    const bus = new LogBus(cfg, redis);
    buses.push(bus);
    const store = new LogStore(cfg, publisher);
    return { cfg, bus, store };
  }

  function ids() {
    n++;
    return { runId: `run-${process.pid}-${n}-${Math.random().toString(36).slice(2, 8)}`, jobId: `job-${n}` };
  }

  async function subscribers(config: KilnConfig, runId: string): Promise<number> {
    const [, count] = (await redis.pubsub('NUMSUB', logChannel(config.queuePrefix, runId))) as [string, number];
    return Number(count);
  }

  /** Waits until Redis counts `count` subscriptions to the run's channel (one per connection). */
  async function subscribed(config: KilnConfig, runId: string, count = 1): Promise<void> {
    const deadline = Date.now() + 5000;
    while ((await subscribers(config, runId)) !== count) {
      if (Date.now() > deadline) throw new Error(`the channel did not get ${count} subscribers`);
      await sleep(10);
    }
  }

  test('a follower on a node that cannot see the log file gets every line live, in order, via the bus', async () => {
    const config = testConfig();
    const { runId, jobId } = ids();
    const worker = node(config, tmpDir('kiln-node-a-'));
    const api = node(config, tmpDir('kiln-node-b-'));
    const repo = new FakeRepo(runId, [jobId]);
    const service = new LogsService(repo as unknown as RunsRepository, api.store, api.bus);
    const f = new Follower(service, runId);
    await subscribed(config, runId);

    const w = worker.store.writer(runId, jobId);
    const expected: string[] = [];
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < 50; i++) {
        const text = `burst ${burst} line ${i} ${'é'.repeat(i)}`;
        expected.push(text);
        w.write(burst % 2, i % 3 ? 'stdout' : 'stderr', Buffer.from(`${text}\n`));
      }
      if (burst === 0) {
        // Well inside the 2 s fallback poll: this came on the bus.
        const t0 = Date.now();
        await f.waitFor(() => f.lines.length === 50, 'the first burst', 1500);
        assert.ok(Date.now() - t0 < 1500);
      }
      await sleep(15);
    }
    w.notice(-1, 'job done');
    expected.push('job done');
    w.close();
    await f.waitFor(() => f.lines.length === expected.length, 'every line before the job state changes', 2000);
    assert.equal(f.end, null, 'no end while the job is in progress');
    repo.finish(jobId);
    await f.done;
    assert.deepEqual(f.texts(), expected, 'every line, in order, once');
    assert.ok(!fs.existsSync(api.store.file(runId, jobId)), 'the follower never saw the file');
    assert.deepEqual(f.end, { status: 'completed', conclusion: 'success' });
    assert.deepEqual(Object.keys(f.lines[0]).sort(), ['i', 'job', 'jobId', 'l', 's', 't']);
    assert.equal(f.lines[0].job, `key-${jobId}`);
    assert.equal(f.lines[0].jobId, jobId);
    assert.ok(f.raw.every((c) => c.endsWith('\n\n')));
    await subscribed(config, runId, 0); // unsubscribed when the follower left
  });

  test('followers that join late (same data folder) get every line exactly once, in order', async () => {
    const config = testConfig();
    const { runId, jobId } = ids();
    const here = node(config);
    const repo = new FakeRepo(runId, [jobId]);
    const service = new LogsService(repo as unknown as RunsRepository, here.store, here.bus);
    const w = here.store.writer(runId, jobId);
    const expected: string[] = [];
    let i = 0;
    const writeSome = (count: number) => {
      for (let k = 0; k < count; k++, i++) {
        const text = `line ${i}`;
        expected.push(text);
        w.write(0, 'stdout', Buffer.from(`${text}\n`));
      }
    };
    writeSome(1000);
    await sleep(30);
    const late: Follower[] = [];
    // They join while lines are being written: between batches, and in the middle of one.
    for (let j = 0; j < 4; j++) {
      writeSome(137);
      late.push(new Follower(service, runId));
      writeSome(59);
      await sleep(j * 7);
    }
    await subscribed(config, runId, 1);
    for (let burst = 0; burst < 20; burst++) {
      writeSome(100);
      await sleep(5);
    }
    w.close();
    for (const f of late) await f.waitFor(() => f.lines.length >= expected.length, 'every line', 2500);
    repo.finish(jobId);
    for (const f of late) {
      await f.done;
      assert.deepEqual(f.texts(), expected);
      assert.ok(f.end);
    }
    assert.equal(here.bus.followers(runId), 0);
  });

  test('a bus that skips batches: a follower with the file fills the gaps from it at once', async () => {
    const config = testConfig();
    const { runId, jobId } = ids();
    const here = node(config);
    let count = 0;
    const channel = logChannel(config.queuePrefix, runId);
    const repo = new FakeRepo(runId, [jobId]);
    const service = new LogsService(repo as unknown as RunsRepository, here.store, here.bus);
    const f = new Follower(service, runId, jobId);
    await subscribed(config, runId);
    // Every other batch is lost on the way.
    fs.mkdirSync(path.dirname(here.store.file(runId, jobId)), { recursive: true });
    const w = new LogWriter(here.store.file(runId, jobId), config.logCapBytes, [], (b: LogBatch) =>
      count++ % 2 ? null : redis.publish(channel, encodeLogMessage(jobId, b)),
    );
    const expected: string[] = [];
    for (let burst = 0; burst < 8; burst++) {
      for (let k = 0; k < 10; k++) {
        expected.push(`b${burst} l${k}`);
        w.write(0, 'stdout', Buffer.from(`b${burst} l${k}\n`));
      }
      await sleep(40);
    }
    // Batches 1, 3, 5 were dropped and filled when the next arrived, well before the 2 s poll; batch 7
    // was dropped too, and its lines come with the closing marker.
    await f.waitFor(() => f.lines.length === 70, 'the gaps filled', 1000);
    assert.deepEqual(f.texts(), expected.slice(0, 70));
    w.close();
    await f.waitFor(() => f.lines.length === 80, 'the last gap filled', 1000);
    repo.finish(jobId);
    await f.done;
    assert.deepEqual(f.texts(), expected);
  });

  test('with publishing failing, a follower sharing the data folder still gets every line (fallback poll)', async () => {
    const config = testConfig();
    const { runId, jobId } = ids();
    const failing = {
      publish: async () => {
        throw new Error('Connection is closed.');
      },
    } as unknown as Pick<Redis, 'publish'>;
    const worker = node(config, config.dataDir, failing);
    const api = node(config);
    const repo = new FakeRepo(runId, [jobId, 'other']);
    const service = new LogsService(repo as unknown as RunsRepository, api.store, api.bus);
    const whole = new Follower(service, runId);
    const stepOnly = new Follower(service, runId, jobId, 1);
    await subscribed(config, runId);
    const w = worker.store.writer(runId, jobId);
    const expected: string[] = [];
    for (let k = 0; k < 300; k++) {
      expected.push(`line ${k}`);
      w.write(k % 2, 'stdout', Buffer.from(`line ${k}\n`));
      if (k % 50 === 0) await sleep(20);
    }
    await whole.waitFor(() => whole.lines.length === expected.length, 'the lines, by polling, while the job runs', 5000);
    w.close();
    repo.finish(jobId);
    await sleep(300);
    assert.equal(whole.end, null, 'the other job is still running');
    repo.finish('other');
    await Promise.all([whole.done, stepOnly.done]);
    assert.deepEqual(whole.texts(), expected);
    assert.deepEqual(
      stepOnly.texts(),
      expected.filter((_, k) => k % 2 === 1),
      'the step filter',
    );
    assert.ok(stepOnly.lines.every((l) => l.i === 1));
  });

  test('a follower that disconnects stops, and leaves the channel', async () => {
    const config = testConfig();
    const { runId, jobId } = ids();
    const here = node(config);
    const repo = new FakeRepo(runId, [jobId]);
    const service = new LogsService(repo as unknown as RunsRepository, here.store, here.bus);
    const a = new Follower(service, runId);
    const b = new Follower(service, runId);
    await subscribed(config, runId);
    const w = here.store.writer(runId, jobId);
    w.write(0, 'stdout', Buffer.from('one\n'));
    await a.waitFor(() => a.lines.length === 1, 'one', 1500);
    a.disconnect();
    await a.done;
    w.write(0, 'stdout', Buffer.from('two\n'));
    await b.waitFor(() => b.lines.length === 2, 'two', 1500);
    assert.deepEqual(a.texts(), ['one']);
    assert.equal(a.end, null);
    assert.equal(await subscribers(config, runId), 1, 'one connection per process, still subscribed for b');
    b.disconnect();
    await b.done;
    w.close();
    await subscribed(config, runId, 0);
  });
});
