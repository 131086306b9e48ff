import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestException, HttpException } from '@nestjs/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type Redis from 'ioredis';
import type { AuthService } from '../auth/auth.service';
import type { Principal, Quota } from '../auth/auth.types';
import type { CatalogueService } from '../catalogue/catalogue.service';
import { loadConfig } from '../config/config';
import type { JobQueue } from '../queue/job-queue';
import type { BlobStore } from '../storage/blob-store';
import { SourceIntake } from '../sources/source-intake';
import { FileStore } from '../storage/file-store';
import { MemoryRuns } from '../../test/fixtures/memory-runs';
import { AdmissionService } from './admission';
import { RunEvents } from './run-events';
import { RunScheduler } from './run-scheduler';
import type { RunSources } from './run-sources';
import { PlanningOptions } from './planning-options';
import { RunsService } from './runs.service';

/**
 * RunsService's submission paths with their side effects replaced: the records in memory (MemoryRuns),
 * the queue a list, Redis a counter, the catalogue one environment, sources kept in a list. The real
 * RunScheduler and AdmissionService stand between them. Only scratch files touch the disk (a temp folder).
 */

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-runs-service-spec-'));
after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
const config = loadConfig({ KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'error' });
const owner: Principal = { user: { id: 'u1', name: 'ada', isAdmin: false, quota: {}, createdAt: '' }, tokenId: 't' };

function setup(quota: Partial<Quota> = {}) {
  const q: Quota = { concurrentJobs: 4, queuedRuns: 5, submissionsPerMinute: 10, artifactBytes: 1 << 30, repositories: 1, tokens: 1, secrets: 1, ...quota };
  const runs = new MemoryRuns();
  const enqueued: { runId: string; jobId: string; environment: string }[] = [];
  const kept: string[] = [];
  let submissions = 0;
  const redis = {
    multi: () => ({
      incr() {
        return this;
      },
      expire() {
        return this;
      },
      exec: async () => [[null, ++submissions]],
    }),
  } as unknown as Redis;
  const auth = { quota: () => q, findUser: async () => owner.user, useStorageMeter: () => undefined } as unknown as AuthService;
  const queue = {
    enqueueJob: async (p: { runId: string; jobId: string }, environment: string) => {
      enqueued.push({ ...p, environment });
    },
  } as unknown as JobQueue;
  const sources = {
    keep: async (runId: string, tarPath: string) => {
      kept.push(runId);
      await fs.promises.rm(tarPath, { force: true });
    },
    release: async () => undefined,
  } as unknown as RunSources;
  const catalogue = {
    planning: async () => ({
      resolveEnvironment: (label: string) =>
        label === 'python-3.11' ? { name: 'python-3.11', version: '20260101.1', image: `sha256:${'b'.repeat(64)}` } : { error: `no environment '${label}'` },
      pythons: {},
    }),
  } as unknown as CatalogueService;
  const planning = new PlanningOptions(config, catalogue);
  const scheduler = new RunScheduler(runs.repo, queue, auth, new RunEvents(), sources, planning);
  const admission = new AdmissionService(config, redis, runs.repo, auth, () => Date.UTC(2026, 0, 1, 12, 0, 0));
  const service = new RunsService(
    config,
    runs.repo,
    scheduler,
    new FileStore(config),
    {} as BlobStore,
    auth,
    sources,
    admission,
    new SourceIntake(config, new FileStore(config)),
    planning,
  );
  return { service, runs, enqueued, kept };
}

async function status(p: Promise<unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HttpException) return { status: e.getStatus(), body: e.getResponse() as Record<string, unknown> };
    throw e;
  }
  assert.fail('accepted, expected a refusal');
}

test('the quick form: a run of one job is recorded, its source kept, its job queued on its environment', async () => {
  const { service, runs, enqueued, kept } = setup();
  const view = await service.submitJson(owner, { command: 'echo hello', files: { 'a.txt': 'x' } });
  assert.equal(runs.created.length, 1);
  const { run, jobs } = runs.created[0];
  assert.equal(view.id, run.id);
  assert.equal(run.ownerId, 'u1');
  assert.deepEqual(run.source, { kind: 'command', files: 1 });
  assert.equal(run.context.event, 'workflow_dispatch');
  assert.deepEqual(
    jobs.map((j) => [j.key, j.environment, j.spec.steps.map((s) => s.run)]),
    [['command', 'python-3.11@20260101.1', ['echo hello']]],
  );
  assert.deepEqual(kept, [run.id]);
  assert.deepEqual(enqueued, [{ runId: run.id, jobId: jobs[0].id, environment: 'python-3.11@20260101.1' }]);
  assert.equal(view.jobs[0].status, 'queued');
  assert.equal(view.urls.self, `/api/v1/runs/${run.id}`);
  // Each submission gets the next run number.
  await service.submitJson(owner, { command: 'echo again' });
  assert.equal(runs.created[1].run.context.runNumber, run.context.runNumber + 1);
});

test('over the rate limit: 429, nothing recorded, nothing queued', async () => {
  const { service, runs, enqueued } = setup({ submissionsPerMinute: 1 });
  await service.submitJson(owner, { command: 'echo one' });
  const refused = await status(service.submitJson(owner, { command: 'echo two' }));
  assert.equal(refused.status, 429);
  assert.match(String(refused.body.message), /at most 1 submissions per minute/);
  assert.equal(runs.created.length, 1);
  assert.equal(enqueued.length, 1);
});

test('over the quota of runs not yet completed: 429, nothing recorded, nothing queued', async () => {
  const { service, runs, enqueued, kept } = setup({ queuedRuns: 2 });
  runs.activeRuns = 2;
  const refused = await status(service.submitJson(owner, { command: 'echo one' }));
  assert.equal(refused.status, 429);
  assert.deepEqual([runs.created.length, enqueued.length, kept.length], [0, 0, 0]);
});

test('a workflow with a problem: 400 naming it, nothing recorded, nothing queued', async () => {
  const { service, runs, enqueued } = setup();
  const refused = await status(service.submitJson(owner, { command: 'echo hi', environment: 'cobol-85' }));
  assert.equal(refused.status, 400);
  assert.match(String(refused.body.message), /^the workflow is not valid:/);
  assert.match(String(refused.body.message), /cobol-85/);
  assert.ok(Array.isArray(refused.body.problems) && (refused.body.problems as unknown[]).length > 0);
  assert.deepEqual([runs.created.length, enqueued.length], [0, 0]);
});

test('the JSON forms are checked before any work: 400 saying what goes with what', async () => {
  const { service, runs } = setup();
  for (const [body, said] of [
    [{ repo: 'https://example.com/a.git', command: 'x' }, /either \{repo, ref\}/],
    [{ repo: 'https://example.com/a.git' }, /ref is required with repo/],
    [{ command: 'x', workflow: 'jobs: {}' }, /do not go with command/],
    [{ command: 'x', files: { a: 1 } }, /files\.a: content must be a string/],
  ] as const) {
    await assert.rejects(service.submitJson(owner, body as never), (e: unknown) => e instanceof BadRequestException && said.test(e.message));
  }
  assert.equal(runs.created.length, 0);
});
