import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunReporter } from './run-reporter';
import type { RunsRepository } from './runs.repository';

/** A repository that records the calls it gets (the reporter's writes, without a database). */
function recordingRepo() {
  const calls: unknown[][] = [];
  const record =
    (name: string) =>
    async (...args: unknown[]) => {
      calls.push([name, ...args]);
      return name === 'artifacts' ? [] : undefined;
    };
  const repo = {
    updateStep: record('updateStep'),
    closeOpenSteps: record('closeOpenSteps'),
    insertAnnotation: record('insertAnnotation'),
    setJobSummary: record('setJobSummary'),
    insertArtifact: record('insertArtifact'),
    artifacts: record('artifacts'),
  } as unknown as RunsRepository;
  return { repo, calls };
}

test('each report becomes the run record the runner used to write itself', async () => {
  const { repo, calls } = recordingRepo();
  const r = new RunReporter(repo, 'run1', 'job1');
  await r.stepNotRun(3, 'job-timeout');
  await r.stepSkipped(1);
  await r.stepStarted(2);
  await r.stepFinished(2, { outcome: 'failure', conclusion: 'success', exitCode: 1, reason: null });
  await r.cancelled();
  const annotation = { level: 'warning' as const, message: 'm', title: null, file: null, line: 1, endLine: null, col: null, endColumn: null };
  await r.annotation(2, 0, annotation);
  await r.summary('## done');
  const artifact = { id: 'a1', name: 'dist', sizeBytes: 10, files: 2, createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-02T00:00:00.000Z' };
  await r.artifactRecorded(artifact);
  await r.artifacts();
  assert.deepEqual(calls, [
    ['updateStep', 'job1', 3, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', reason: 'job-timeout', finished: true }],
    ['updateStep', 'job1', 1, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', started: true, finished: true }],
    ['updateStep', 'job1', 2, { status: 'in_progress', started: true }],
    ['updateStep', 'job1', 2, { status: 'completed', outcome: 'failure', conclusion: 'success', exitCode: 1, reason: null, finished: true }],
    ['closeOpenSteps', 'job1', 'cancelled', 'cancelled'],
    ['insertAnnotation', 'run1', 'job1', 2, 0, annotation],
    ['setJobSummary', 'job1', '## done'],
    ['insertArtifact', { ...artifact, runId: 'run1', jobId: 'job1' }],
    ['artifacts', 'run1'],
  ]);
});

test("a step's evaluated name replaces the record's when it starts or is skipped", async () => {
  const { repo, calls } = recordingRepo();
  const r = new RunReporter(repo, 'run1', 'job1');
  await r.stepStarted(0, 'Set up Python 3.12');
  await r.stepSkipped(1, 'Skip 3.12');
  assert.deepEqual(calls, [
    ['updateStep', 'job1', 0, { status: 'in_progress', started: true, name: 'Set up Python 3.12' }],
    ['updateStep', 'job1', 1, { status: 'completed', outcome: 'skipped', conclusion: 'skipped', started: true, finished: true, name: 'Skip 3.12' }],
  ]);
});

test('a refused artifact (its name taken) is refused to the runner', async () => {
  const { repo } = recordingRepo();
  (repo as unknown as { insertArtifact: () => Promise<void> }).insertArtifact = async () => {
    throw new Error('UNIQUE constraint failed');
  };
  const r = new RunReporter(repo, 'run1', 'job1');
  await assert.rejects(r.artifactRecorded({ id: 'a', name: 'n', sizeBytes: 1, files: 1, createdAt: '', expiresAt: '' }), /UNIQUE/);
});
