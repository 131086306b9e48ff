import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloneGate, GateFull } from './clone-gate';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

test('runs at most `concurrency` tasks at once; the rest wait in order, beyond the queue they are refused', async () => {
  const gate = new CloneGate(2, 2);
  const release = Array.from({ length: 4 }, deferred);
  let now = 0;
  let max = 0;
  const order: number[] = [];
  const tasks = release.map((d, i) =>
    gate.run(async () => {
      order.push(i);
      now++;
      max = Math.max(max, now);
      await d.promise;
      now--;
      return i;
    }),
  );
  await tick();
  assert.deepEqual(order, [0, 1]);
  assert.equal(gate.active, 2);
  assert.equal(gate.waiting, 2);
  await assert.rejects(
    gate.run(async () => 99),
    (e: unknown) => e instanceof GateFull && e.running === 2 && e.waiting === 2,
  );
  release[1].resolve();
  await tick();
  assert.deepEqual(order, [0, 1, 2], 'the first waiting task takes the freed place');
  for (const d of release) d.resolve();
  assert.deepEqual(await Promise.all(tasks), [0, 1, 2, 3]);
  assert.equal(max, 2);
  assert.equal(gate.active, 0);
  assert.equal(gate.waiting, 0);
});

test('a failing task frees its place', async () => {
  const gate = new CloneGate(1, 0);
  await assert.rejects(
    gate.run(async () => {
      throw new Error('clone failed');
    }),
    /clone failed/,
  );
  assert.equal(gate.active, 0);
  assert.equal(await gate.run(async () => 'next'), 'next');
});

test('with no queue, a task past the concurrency is refused at once', async () => {
  const gate = new CloneGate(1, 0);
  const d = deferred();
  const first = gate.run(() => d.promise);
  await assert.rejects(
    gate.run(async () => 1),
    GateFull,
  );
  d.resolve();
  await first;
});
