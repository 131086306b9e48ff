import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import { PoolTarget, WarmPool } from './warm-pool';

const quiet = new Logger('test');
quiet.warn = () => undefined;
const limits = { memoryBytes: 1, nanoCpus: 1, pids: 1, workspaceBytes: 1, tmpBytes: 1, fileSizeBytes: 1, openFiles: 1 };
const a: PoolTarget = { image: 'sha256:aaa', runtime: 'runc', limits };
const b: PoolTarget = { image: 'sha256:bbb', runtime: 'runc', limits };
const tick = () => new Promise((r) => setTimeout(r, 5));

function fakeOps() {
  let n = 0;
  const live = new Set<string>();
  return {
    live,
    fail: false,
    async create(t: PoolTarget) {
      if (this.fail) throw new Error('engine away');
      const id = `${t.image}-${n++}`;
      live.add(id);
      return id;
    },
    async destroy(id: string) {
      live.delete(id);
    },
  };
}

test('warm pool: fills each target to its size, hands a sandbox out once, and refills', async () => {
  const ops = fakeOps();
  const pool = new WarmPool(2, ops, quiet);
  pool.setTargets([a, b]);
  await tick();
  assert.equal(pool.idleCount(a), 2);
  assert.equal(pool.idleCount(b), 2);
  const first = pool.take(a);
  const second = pool.take(a);
  assert.ok(first && second && first !== second, 'two different sandboxes');
  await tick();
  assert.equal(pool.idleCount(a), 2, 'refilled in the background');
  const third = pool.take(a);
  assert.ok(third && third !== first && third !== second, 'a sandbox is never handed out twice');
});

test('warm pool: other limits, images or runtimes miss; a dropped target is emptied; drain removes all', async () => {
  const ops = fakeOps();
  const pool = new WarmPool(1, ops, quiet);
  pool.setTargets([a, b]);
  await tick();
  assert.equal(pool.take({ ...a, limits: { ...limits, memoryBytes: 2 } }), null);
  assert.equal(pool.take({ ...a, runtime: 'runsc' }), null);
  assert.equal(pool.take({ ...a, image: 'sha256:ccc' }), null);
  assert.equal(pool.misses, 3);
  pool.setTargets([a]);
  await tick();
  assert.equal(pool.idleCount(b), 0);
  assert.equal([...ops.live].filter((id) => id.startsWith('sha256:bbb')).length, 0, "the dropped target's sandbox is removed");
  await pool.drain();
  assert.equal(ops.live.size, 0);
  pool.setTargets([a]);
  await tick();
  assert.equal(ops.live.size, 0, 'a drained pool stays empty');
});

test('warm pool: a failing engine is not hammered (one attempt, then a timed retry); size 0 is off', async () => {
  const ops = fakeOps();
  ops.fail = true;
  let calls = 0;
  const create = ops.create.bind(ops);
  ops.create = async (t) => {
    calls++;
    return create(t);
  };
  const pool = new WarmPool(2, ops, quiet);
  pool.setTargets([a]);
  await tick();
  assert.equal(pool.take(a), null);
  await tick();
  assert.ok(calls <= 2, `at most the first fill's attempts (${calls})`);
  await pool.drain();
  const off = new WarmPool(0, fakeOps(), quiet);
  off.setTargets([a]);
  await tick();
  assert.equal(off.idleCount(), 0);
});

test('warm pool: drain waits for sandboxes still being made and removes them too; idle counts by runtime', async () => {
  const ops = fakeOps();
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const slow = {
    ...ops,
    live: ops.live,
    fail: false,
    async create(t: PoolTarget) {
      await gate;
      return ops.create(t);
    },
    destroy: ops.destroy,
  };
  const pool = new WarmPool(1, slow, quiet);
  pool.setTargets([a, { ...b, runtime: 'runsc' }]);
  assert.deepEqual(pool.idleByRuntime(), { runc: 0, runsc: 0 }, 'nothing ready while being made');
  const drained = pool.drain();
  let done = false;
  void drained.then(() => {
    done = true;
  });
  await tick();
  assert.equal(done, false, 'drain waits for the creations under way');
  release();
  await drained;
  assert.equal(ops.live.size, 0, 'what was being made is removed, not left behind');
});

test('warm pool: idle sandboxes are counted by runtime', async () => {
  const ops = fakeOps();
  const pool = new WarmPool(2, ops, quiet);
  pool.setTargets([a, { ...b, runtime: 'runsc' }]);
  await tick();
  assert.deepEqual(pool.idleByRuntime(), { runc: 2, runsc: 2 });
  pool.take(a);
  assert.deepEqual(pool.idleByRuntime(), { runc: 1, runsc: 2 });
});

test('warm pool: a deferred refill starts when the taker says it has started, or after the delay; a pool left empty refills at once', async () => {
  const ops = fakeOps();
  const pool = new WarmPool(2, ops, quiet);
  pool.setTargets([a]);
  await tick();
  const first = pool.take(a, 60_000);
  assert.ok(first);
  await tick();
  assert.equal(pool.idleCount(a), 1, 'no refill while the taker starts (another is idle)');
  pool.started(first);
  await tick();
  assert.equal(pool.idleCount(a), 2, 'refilled once the taker started');
  pool.started(first);
  await tick();
  assert.equal(ops.live.size, 3, 'a second started() makes nothing more');
  const second = pool.take(a, 20);
  assert.ok(second);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(pool.idleCount(a), 2, 'refilled after the delay without a word from the taker');
  pool.take(a, 60_000);
  pool.take(a, 60_000);
  await tick();
  assert.equal(pool.idleCount(a), 2, 'the take that emptied the pool refilled it at once (the deferred refill with it)');
  assert.equal(pool.take({ ...a, limits: { ...limits, pids: 9 } }, 60_000), null, 'a miss defers nothing');
});

test('warm pool: a taker finding nothing idle waits for a sandbox being made rather than making another', async () => {
  const ops = fakeOps();
  const gates: (() => void)[] = [];
  let made = 0;
  const gated = {
    live: ops.live,
    fail: false,
    async create(t: PoolTarget) {
      made++;
      await new Promise<void>((r) => gates.push(r));
      return ops.create(t);
    },
    destroy: ops.destroy,
  };
  const pool = new WarmPool(1, gated, quiet);
  pool.setTargets([a]);
  gates.shift()!();
  await tick();
  const first = pool.take(a);
  assert.ok(first);
  assert.equal(made, 2, 'the refill is under way');
  const second = pool.takeOrWait(a);
  const third = pool.takeOrWait(a); // nothing more is being made for it to wait for: a miss
  assert.equal(await third, null);
  gates.shift()!();
  const got = await second;
  assert.ok(got && got !== first, 'the sandbox being made went to the waiting taker');
  await tick();
  assert.equal(pool.waited, 1);
  assert.equal(made, 3, 'and the pool refills behind it; nothing else was made');
  gates.splice(0).forEach((g) => g());
  await tick();
  assert.equal(pool.idleCount(a), 1);
  const waiting = (async () => {
    pool.take(a);
    return pool.takeOrWait(a);
  })();
  await tick();
  const drained = pool.drain();
  assert.equal(await waiting, null, 'drain answers waiting takers');
  gates.splice(0).forEach((g) => g());
  await drained;
  assert.equal(ops.live.size, 3, 'only the three taken sandboxes are left (their jobs remove them); the one made during drain is removed');
});
