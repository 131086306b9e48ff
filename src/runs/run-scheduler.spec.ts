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
import { POSITION_GAP } from './run-scheduler';
import type { PlanningOptions } from './planning-options';
import { testOptions } from '../../test/fixtures/plan-options';
import { planFromYaml } from '../workflow/plan';

/** The scheduler with its side effects replaced: records in memory, the queue a list, the owner's quota a number. */

type JobSketch = { key: string; needs?: string[]; if?: string; spec?: Partial<PlannedJob> };

function setup(jobs: JobSketch[], concurrentJobs = 10, planning?: PlanningOptions) {
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
  const scheduler = new RunScheduler(runs.repo, queue, auth, new RunEvents(), sources, planning);
  const run = runRecord();
  const rows: Job[] = jobs.map((j, position) => ({
    id: `j-${j.key}`,
    runId: 'r1',
    position: position * POSITION_GAP,
    key: j.key,
    workflowJobId: j.key,
    name: j.key,
    environment: 'python-3.11@1',
    status: 'pending',
    conclusion: null,
    error: null,
    spec: { key: j.key, jobId: j.key, needs: j.needs ?? [], if: j.if ?? null, strategy: null, matrix: null, steps: [], ...j.spec } as unknown as PlannedJob,
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
  const idOf = (key: string) => [...runs.jobRows.values()].find((j) => j.key === key)!.id;
  const finish = async (key: string, conclusion: 'success' | 'failure', outputs: Record<string, string> = {}) => {
    assert.ok(await runs.transitionJob(idOf(key), ['queued'], 'in_progress'));
    assert.ok(await runs.transitionJob(idOf(key), ['in_progress'], 'completed', { conclusion, outputs }));
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

test('a job decided at submission (not runnable, or its if: already false) is skipped with its reason; jobs that need it are skipped saying why', async () => {
  const verdict = { kind: 'not-runnable', reason: "not runnable here: no environment or label named 'windows-latest'", path: 'jobs.win.runs-on', line: 3 };
  const { runs, scheduler, queued, status } = setup([
    { key: 'win', spec: { verdict } as Partial<PlannedJob> },
    { key: 'after', needs: ['win'] },
    { key: 'lin' },
  ]);
  await scheduler.advance('r1');
  assert.deepEqual(queued, ['lin']);
  assert.deepEqual(status(), { win: 'skipped', after: 'skipped', lin: 'queued' });
  assert.equal(runs.jobRows.get('j-win')!.error, verdict.reason);
  assert.equal(runs.jobRows.get('j-after')!.error, 'not run: win ended skipped');
});

test('a job allowed to fail (job-level continue-on-error) is a success to the jobs that need it, and the run succeeds', async () => {
  const { runs, scheduler, queued, finish } = setup([
    { key: 'flaky', spec: { continueOnError: true } },
    { key: 'next', needs: ['flaky'] },
  ]);
  await scheduler.advance('r1');
  await finish('flaky', 'failure');
  assert.deepEqual(queued, ['flaky', 'next']);
  await finish('next', 'success');
  assert.equal(runs.runs.get('r1')!.conclusion, 'success');
});

test('a matrix from a needs output is planned when the needs are done: the placeholder becomes its jobs, placed after it; an empty one runs none', async () => {
  const yaml = (name: string) => `
jobs:
  setup:
    runs-on: python-3.11
    outputs:
      m: \${{ steps.s.outputs.m }}
    steps:
      - id: s
        run: echo
  ${name}:
    needs: setup
    runs-on: python-3.11
    strategy:
      matrix: \${{ fromJSON(needs.setup.outputs.m) }}
    steps:
      - run: echo \${{ matrix.py }}
  last:
    needs: ${name}
    runs-on: python-3.11
    steps:
      - run: echo
`;
  const planned = (await planFromYaml(yaml('test'), testOptions)).jobs;
  const planning = { options: async () => testOptions } as unknown as PlanningOptions;
  const { runs, scheduler, queued, status, finish } = setup(
    planned.map((j) => ({ key: j.key, needs: j.needs, spec: j })),
    10,
    planning,
  );
  await scheduler.advance('r1');
  assert.deepEqual(queued, ['setup']);
  await finish('setup', 'success', { m: '{"py":["3.9","3.11"]}' });
  assert.deepEqual(queued, ['setup', 'test (3.9)', 'test (3.11)']);
  assert.deepEqual(
    [...runs.jobRows.values()].sort((a, b) => a.position - b.position).map((j) => [j.key, j.position]),
    [
      ['setup', 0],
      ['test (3.9)', POSITION_GAP + 1],
      ['test (3.11)', POSITION_GAP + 2],
      ['last', 2 * POSITION_GAP],
    ],
  );
  await finish('test (3.9)', 'success');
  await finish('test (3.11)', 'success');
  assert.deepEqual(status(), { setup: 'success', 'test (3.9)': 'success', 'test (3.11)': 'success', last: 'queued' });

  const empty = setup(
    (await planFromYaml(yaml('none'), testOptions)).jobs.map((j) => ({ key: j.key, needs: j.needs, spec: j })),
    10,
    planning,
  );
  await empty.scheduler.advance('r1');
  await empty.finish('setup', 'success', { m: '{"py":[]}' });
  assert.deepEqual(empty.status(), { setup: 'success', none: 'skipped', last: 'skipped' });
  assert.match(empty.runs.jobRows.get('j-none')!.error!, /matrix is empty/);

  const bad = setup(
    (await planFromYaml(yaml('bad'), testOptions)).jobs.map((j) => ({ key: j.key, needs: j.needs, spec: j })),
    10,
    planning,
  );
  await bad.scheduler.advance('r1');
  await bad.finish('setup', 'success', { m: 'not json' });
  assert.equal(bad.status().bad, 'failure');
  assert.match(bad.runs.jobRows.get('j-bad')!.error!, /could not be planned now that its needs are done:\n.*jobs\.bad\.strategy\.matrix/);
});
