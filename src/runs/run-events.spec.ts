import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthService } from '../auth/auth.service';
import type { JobQueue } from '../queue/job-queue';
import { RunEvents, type RunEventPayloads } from './run-events';
import { RunScheduler } from './run-scheduler';
import type { RunSources } from './run-sources';
import type { RunsRepository } from './runs.repository';
import type { Job, Run } from './runs.types';

test('every listener is called; one that throws does not stop the others or the emitter', () => {
  const events = new RunEvents();
  const seen: string[] = [];
  events.on('run-concluded', () => {
    throw new Error('listener broke');
  });
  events.on('run-concluded', ({ run, conclusion }) => seen.push(`${run.id}:${conclusion}`));
  events.emit('run-concluded', { run: { id: 'r1' } as Run, conclusion: 'failure' });
  assert.deepEqual(seen, ['r1:failure']);
});

/** A scheduler over a run whose jobs are all done, its records and side effects replaced. */
function concluding(completes: boolean) {
  const run = { id: 'run1', status: 'in_progress', cancelRequested: false, repositoryId: 'repo1', ownerId: null } as unknown as Run;
  const jobs = [
    { id: 'j1', workflowJobId: 'build', status: 'completed', conclusion: 'success', spec: { continueOnError: false } },
    { id: 'j2', workflowJobId: 'test', status: 'completed', conclusion: 'failure', spec: { continueOnError: false } },
  ] as Job[];
  const order: string[] = [];
  const repo = {
    getRun: async () => run,
    jobs: async () => jobs,
    completeRun: async (id: string, conclusion: string) => {
      order.push(`completeRun ${id} ${conclusion}`);
      return completes;
    },
  } as unknown as RunsRepository;
  const sources = {
    release: async (id: string) => {
      order.push(`release ${id}`);
    },
  } as unknown as RunSources;
  const events = new RunEvents();
  const emitted: RunEventPayloads['run-concluded'][] = [];
  events.on('run-concluded', (p) => {
    order.push('run-concluded');
    emitted.push(p);
  });
  const scheduler = new RunScheduler(repo, {} as JobQueue, {} as AuthService, events, sources);
  return { scheduler, run, emitted, order };
}

test('a run whose jobs are all done is concluded, then run-concluded is emitted with the run and its conclusion', async () => {
  const { scheduler, run, emitted, order } = concluding(true);
  await scheduler.advance('run1');
  assert.deepEqual(order, ['release run1', 'completeRun run1 failure', 'run-concluded']);
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0].run, run);
  assert.equal(emitted[0].conclusion, 'failure');
});

test('no event when another process concluded the run first', async () => {
  const { scheduler, emitted } = concluding(false);
  await scheduler.advance('run1');
  assert.deepEqual(emitted, []);
});
