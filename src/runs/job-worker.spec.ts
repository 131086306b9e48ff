import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Job as BullJob, Queue } from 'bull';
import type { AuthService } from '../auth/auth.service';
import { Metrics } from '../common/metrics';
import { loadConfig } from '../config/config';
import type { JobReporter } from '../execution/reporter';
import { JobInput, JobOutcome, RetryableJobError } from '../execution/job';
import type { JobRunner } from '../execution/job-runner';
import type { PlannedJob } from '../workflow/model';
import { MemoryRuns, runRecord } from '../../test/fixtures/memory-runs';
import { QueueHandlers } from '../queue/queue-handlers';
import { handleWorkerNaming, JobWorker } from './job-worker';
import type { RunScheduler } from './run-scheduler';
import type { Job, Run } from './runs.types';

/**
 * The worker with its side effects replaced: the queue hands its processor to the spec, the JobRunner
 * is a script, the records are in memory, the scheduler a list of calls. No Redis, no Docker.
 */

type Script = (input: JobInput, reporter: JobReporter, signal: AbortSignal) => Promise<JobOutcome>;

function setup(script: Script, env: Record<string, string> = {}) {
  const config = loadConfig({ KILN_LOG_LEVEL: 'error', KILN_WORKER_NAME: 'w1', ...env });
  const runs = new MemoryRuns();
  let processor: ((job: BullJob) => Promise<void>) | undefined;
  const queue = {
    process: (_name: string, _n: number, fn: (job: BullJob) => Promise<void>) => {
      processor = fn;
      return new Promise<void>(() => undefined); // as Bull's: settles only when processing ends
    },
    pause: async () => undefined,
    resume: async () => undefined,
    close: async () => undefined,
  } as unknown as Queue;
  const inputs: JobInput[] = [];
  const gone: string[] = [];
  const runner = {
    run: (input: JobInput, reporter: JobReporter, signal: AbortSignal) => {
      inputs.push(input);
      return script(input, reporter, signal);
    },
    sandboxGone: async (jobId: string) => {
      gone.push(jobId);
    },
  } as unknown as JobRunner;
  const advanced: string[] = [];
  const scheduler = {
    advance: async (id: string) => {
      advanced.push(id);
    },
    advanceOwner: async () => undefined,
  } as unknown as RunScheduler;
  const auth = {
    findUser: async (id: string) => ({ id }),
    secretsOf: async () => ({ TOKEN: 's3cret' }),
    quota: () => ({ artifactBytes: 1000 }),
  } as unknown as AuthService;
  const handlers = new QueueHandlers();
  const worker = new JobWorker(config, new Map([[null, queue]]), runs.repo, runner, scheduler, auth, handlers, new Metrics());
  worker.onModuleInit();
  handlers.register('webhook-push', async () => undefined); // the webhooks module's; not this spec's
  worker.onApplicationBootstrap();
  assert.ok(processor, 'the worker registered a processor');

  const run = runRecord({
    source: { kind: 'command', files: 1 },
    workflowName: 'ci',
    plan: { workflowName: 'ci', jobs: [] } as unknown as Run['plan'],
    context: { sha: 'a', ref: 'refs/heads/main', repository: 'o/r', event: 'push', runNumber: 3 },
  });
  const job: Job = {
    id: 'j1',
    runId: 'r1',
    position: 0,
    key: 'build',
    workflowJobId: 'build',
    name: 'build',
    environment: 'python-3.11@1',
    status: 'queued',
    conclusion: null,
    error: null,
    spec: { key: 'build', jobId: 'build', needs: [], if: null, strategy: null, matrix: null, steps: [{ index: 0, name: 'one' }] } as unknown as PlannedJob,
    outputs: {},
    attempts: 0,
    worker: null,
    queuedAt: null,
    startedAt: null,
    finishedAt: null,
  };
  void runs.create(run, [job]);
  runs.held = { artifacts: 100, sources: 50 };
  const deliver = (attemptsMade = 0, attempts = 3) =>
    processor!({ id: 'b1', name: 'run-job', data: { runId: 'r1', jobId: 'j1' }, attemptsMade, opts: { attempts } } as unknown as BullJob);
  return { worker, runs, inputs, gone, advanced, deliver, row: () => runs.jobRows.get('j1')! };
}

test('a job from the queue is run through the JobRunner and its outcome recorded; the run advances', async () => {
  const { runs, inputs, gone, advanced, deliver, row } = setup(async (_input, reporter) => {
    await reporter.stepStarted(0);
    await reporter.stepFinished(0, { outcome: 'success', conclusion: 'success', exitCode: 0, reason: null });
    return { conclusion: 'success', error: null, beforeSteps: false, outputs: { tag: 'v1' } };
  });
  await deliver();
  assert.equal(inputs.length, 1);
  assert.deepEqual(
    [inputs[0].runId, inputs[0].jobId, inputs[0].hasSources, inputs[0].secrets, inputs[0].artifactBytesLeft],
    ['r1', 'j1', true, { TOKEN: 's3cret' }, 850],
  );
  assert.deepEqual(
    [row().status, row().conclusion, row().error, row().outputs, row().worker, row().attempts],
    ['completed', 'success', null, { tag: 'v1' }, 'w1', 1],
  );
  assert.equal(runs.runs.get('r1')!.status, 'in_progress');
  assert.deepEqual(
    runs.stepRows.map((s) => s.conclusion),
    ['success'],
    'the reporter wrote the step',
  );
  assert.deepEqual(advanced, ['r1']);
  assert.deepEqual(gone, ['j1'], 'the sandbox is waited for');
});

test('a retryable failure before steps: the job goes back to queued and the queue is told to retry', async () => {
  const { deliver, row, gone, advanced } = setup(async () => {
    throw new RetryableJobError('the Docker engine is unreachable');
  });
  await assert.rejects(deliver(0, 3), RetryableJobError);
  assert.deepEqual([row().status, row().conclusion], ['queued', null]);
  assert.deepEqual(advanced, []);
  assert.deepEqual(gone, ['j1']);
});

test('the same failure on the last attempt: the job fails as infrastructure, its steps closed, the run advances', async () => {
  const { runs, deliver, row, advanced } = setup(async () => {
    throw new RetryableJobError('the Docker engine is unreachable');
  });
  await deliver(2, 3);
  assert.deepEqual([row().status, row().conclusion, row().error], ['completed', 'failure', 'infrastructure: the Docker engine is unreachable']);
  assert.deepEqual(
    runs.stepRows.map((s) => [s.conclusion, s.reason]),
    [['skipped', 'infrastructure']],
  );
  assert.deepEqual(advanced, ['r1']);
});

test('a job of a cancelled run is not run: it is completed as cancelled', async () => {
  const { runs, inputs, deliver, row } = setup(async () => assert.fail('not run'));
  await runs.requestCancel('r1');
  await deliver();
  assert.equal(inputs.length, 0);
  assert.deepEqual([row().status, row().conclusion], ['completed', 'cancelled']);
});

test('shutdown: a running job past the grace is cancelled and says the worker shut down; a job arriving after is left for another worker', async () => {
  const { worker, deliver, row, inputs } = setup(
    (_input, _reporter, signal) =>
      new Promise((resolve) => {
        signal.addEventListener('abort', () => resolve({ conclusion: 'cancelled', error: null, beforeSteps: false }));
      }),
    { KILN_SHUTDOWN_GRACE_SECONDS: '0' },
  );
  const running = deliver();
  while (!inputs.length) await new Promise((r) => setTimeout(r, 5));
  await worker.beforeApplicationShutdown('SIGTERM');
  await running;
  assert.deepEqual([row().status, row().conclusion], ['completed', 'cancelled']);
  assert.match(row().error ?? '', /the worker shut down before the job finished/);

  row().status = 'queued';
  await assert.rejects(deliver(), (e: unknown) => e instanceof RetryableJobError && /shutting down/.test(e.message));
  assert.equal(row().status, 'queued');
  assert.equal(inputs.length, 1);
});

test("Bull's dropped CLIENT SETNAME promise is handled: a queue closed before Redis answers leaves no unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    let calls = 0;
    const queue = {
      setWorkerName: () => {
        calls++;
        return Promise.reject(new Error('Connection is closed.'));
      },
    };
    handleWorkerNaming(queue as unknown as Queue);
    // As Bull's setHandler does: called, its promise dropped.
    // eslint-disable-next-line @typescript-eslint/no-floating-promises
    (queue as { setWorkerName: () => Promise<unknown> }).setWorkerName();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls, 1, "Bull's own naming still runs");
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
