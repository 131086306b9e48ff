import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthService } from '../auth/auth.service';
import type { JobQueue } from '../queue/job-queue';
import type { PlannedJob } from '../workflow/model';
import { MemoryRuns, runRecord } from '../../test/fixtures/memory-runs';
import { RunEvents } from './run-events';
import { RunScheduler } from './run-scheduler';
import type { RunSources } from './run-sources';
import type { Job } from './runs.types';

/** The scheduler with its side effects replaced: records in memory, the queue a list, the owner's quota a number. */

function setup(jobs: { key: string; needs?: string[]; if?: string }[], concurrentJobs = 10) {
  const runs = new MemoryRuns();
  const queued: string[] = [];
  const released: string[] = [];
  const auth = { findUser: async (id: string) => ({ id }), quota: () => ({ concurrentJobs }) } as unknown as AuthService;
  const queue = {
    enqueueJob: async (p: { jobId: string }) => {
      queued.push(runs.jobRows.get(p.jobId)!.key);
    },
  } as unknown as JobQueue;
  const sources = {
    release: async (runId: string) => {
      released.push(runId);
    },
  } as unknown as RunSources;
  const scheduler = new RunScheduler(runs.repo, queue, auth, new RunEvents(), sources);
  const run = runRecord();
  const rows: Job[] = jobs.map((j, position) => ({
    id: `j-${j.key}`,
    runId: 'r1',
    position,
    key: j.key,
    workflowJobId: j.key,
    name: j.key,
    environment: 'python-3.11@1',
    status: 'pending',
    conclusion: null,
    error: null,
    spec: { key: j.key, jobId: j.key, needs: j.needs ?? [], if: j.if ?? null, strategy: null, matrix: null, steps: [] } as unknown as PlannedJob,
    outputs: {},
    attempts: 0,
    worker: null,
    queuedAt: null,
    startedAt: null,
    finishedAt: null,
  }));
  void runs.create(run, rows);
  const status = () => Object.fromEntries([...runs.jobRows.values()].map((j) => [j.key, j.conclusion ?? j.status]));
  /** What a worker does with a queued job: runs it and records how it ended. */
  const finish = async (key: string, conclusion: 'success' | 'failure') => {
    assert.ok(await runs.transitionJob(`j-${key}`, ['queued'], 'in_progress'));
    assert.ok(await runs.transitionJob(`j-${key}`, ['in_progress'], 'completed', { conclusion }));
    await scheduler.advance('r1');
  };
  return { runs, scheduler, queued, released, status, finish };
}

test('jobs whose needs are met are queued; the others wait until their needs succeed', async () => {
  const { scheduler, queued, status, finish } = setup([{ key: 'build' }, { key: 'lint' }, { key: 'test', needs: ['build', 'lint'] }]);
  await scheduler.advance('r1');
  assert.deepEqual(queued, ['build', 'lint']);
  assert.deepEqual(status(), { build: 'queued', lint: 'queued', test: 'pending' });
  await finish('build', 'success');
  assert.deepEqual(queued, ['build', 'lint'], 'test still needs lint');
  await finish('lint', 'success');
  assert.deepEqual(queued, ['build', 'lint', 'test']);
});

test('a failed need skips its dependents (and theirs); an if: always() dependent still runs', async () => {
  const { scheduler, queued, status, finish } = setup([
    { key: 'build' },
    { key: 'test', needs: ['build'] },
    { key: 'deploy', needs: ['test'] },
    { key: 'report', needs: ['build'], if: 'always()' },
  ]);
  await scheduler.advance('r1');
  await finish('build', 'failure');
  assert.deepEqual(queued, ['build', 'report']);
  assert.deepEqual(status(), { build: 'failure', test: 'skipped', deploy: 'skipped', report: 'queued' });
});

test('the run concludes when its jobs do: its source is released, then it is completed with their conclusion', async () => {
  const { runs, scheduler, released, finish } = setup([{ key: 'build' }, { key: 'test', needs: ['build'] }]);
  await scheduler.advance('r1');
  await finish('build', 'success');
  assert.equal(runs.runs.get('r1')!.status, 'queued');
  assert.deepEqual(released, []);
  await finish('test', 'success');
  assert.deepEqual([runs.runs.get('r1')!.status, runs.runs.get('r1')!.conclusion], ['completed', 'success']);
  assert.deepEqual(released, ['r1']);

  const failing = setup([{ key: 'build' }, { key: 'test', needs: ['build'] }]);
  await failing.scheduler.advance('r1');
  await failing.finish('build', 'failure');
  assert.deepEqual([failing.runs.runs.get('r1')!.status, failing.runs.runs.get('r1')!.conclusion], ['completed', 'failure']);
});

test("the owner's concurrent-jobs quota holds ready jobs pending until a slot frees", async () => {
  const { scheduler, queued, status, finish } = setup([{ key: 'a' }, { key: 'b' }], 1);
  await scheduler.advance('r1');
  assert.deepEqual(status(), { a: 'queued', b: 'pending' });
  await finish('a', 'success');
  assert.deepEqual(queued, ['a', 'b']);
});

test('a cancelled run: its waiting jobs are cancelled and it concludes cancelled', async () => {
  const { runs, scheduler, queued, status } = setup([{ key: 'a' }, { key: 'b', needs: ['a'] }]);
  await scheduler.advance('r1');
  await runs.requestCancel('r1');
  await scheduler.advance('r1');
  assert.deepEqual(queued, ['a']);
  assert.deepEqual(status(), { a: 'cancelled', b: 'cancelled' });
  assert.equal(runs.runs.get('r1')!.conclusion, 'cancelled');
});
