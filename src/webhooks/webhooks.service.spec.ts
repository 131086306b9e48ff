import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AuthService } from '../auth/auth.service';
import type { Principal } from '../auth/auth.types';
import { QuotaExceededException } from '../common/quota';
import { loadConfig } from '../config/config';
import type { JobQueue } from '../queue/job-queue';
import type { AdmissionService } from '../runs/admission';
import type { RunsService } from '../runs/runs.service';
import type { RepositoriesRepository } from './repositories.repository';
import type { StatusReporter } from './status-reporter';
import type { SourceIntake } from '../sources/source-intake';
import { WebhooksService } from './webhooks.service';

/** The worker side of a push (build) with its side effects replaced: the clone, the records, admission and submission. */

const config = loadConfig({ KILN_LOG_LEVEL: 'error' });
const user = { id: 'u1', name: 'ada', isAdmin: false, quota: {}, createdAt: '' };
const sha = 'b'.repeat(40);
const workflow = 'on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n';

function setup(admit: (p: Principal) => Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-webhook-spec-'));
  fs.writeFileSync(path.join(dir, '.kiln.yml'), workflow);
  const finished: { key: string; state: string; detail: string | null; runIds: string[] }[] = [];
  const submitted: unknown[] = [];
  const admitted: Principal[] = [];
  const repos = {
    delivery: async (key: string) => ({
      key,
      id: 'd-1',
      repositoryId: 'r1',
      event: 'push',
      payload: { ref: 'refs/heads/main', after: sha, commits: [] },
      state: 'queued',
      detail: null,
      runIds: [],
      receivedAt: '',
    }),
    byId: async () => ({
      id: 'r1',
      ownerId: 'u1',
      fullName: 'octo/demo',
      cloneUrl: 'https://git.example.test/octo/demo.git',
      secret: 's',
      branches: null,
      labelMap: {},
      statusUrl: null,
      statusToken: null,
      createdAt: '',
    }),
    finishDelivery: async (key: string, state: string, detail: string | null, runIds: string[]) => {
      finished.push({ key, state, detail, runIds });
    },
  } as unknown as RepositoriesRepository;
  const auth = { seal: (v: string) => v, unseal: (v: string) => v, findUser: async () => user } as unknown as AuthService;
  const runs = {
    submitFromDir: async (...args: unknown[]) => {
      submitted.push(args);
      return { id: `run-${submitted.length}` };
    },
    internalRun: async () => null,
  } as unknown as RunsService;
  const admission = {
    admit: async (p: Principal) => {
      admitted.push(p);
      await admit(p);
    },
  } as unknown as AdmissionService;
  const intake = {
    clone: async () => ({ dir, sha, ref: 'refs/heads/main', cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) }),
    workflowFiles: () => [{ file: '.kiln.yml', text: workflow }],
  } as unknown as SourceIntake;
  const service = new WebhooksService(config, repos, auth, {} as JobQueue, runs, {} as StatusReporter, admission, intake);
  return { service, finished, submitted, admitted };
}

test('a push passes the same admission as every submission before its run is submitted', async () => {
  const { service, finished, submitted, admitted } = setup(async () => undefined);
  await service.build('key-1');
  assert.deepEqual(
    admitted.map((p) => p.user.id),
    ['u1'],
  );
  assert.equal(submitted.length, 1);
  assert.deepEqual(finished, [{ key: 'key-1', state: 'done', detail: null, runIds: ['run-1'] }]);
  // The delivery's payload goes with the run as its github.event, and the run is a push.
  const context = (submitted[0] as unknown[])[3] as { event: string; eventPayload: unknown };
  assert.equal(context.event, 'push');
  assert.deepEqual(context.eventPayload, { ref: 'refs/heads/main', after: sha, commits: [] });
});

test("a push refused by admission is recorded on the delivery with the admission's message; nothing is submitted", async () => {
  const message = 'quota: at most 3 submissions per minute; try again in 45 s';
  const { service, finished, submitted } = setup(async () => {
    throw new QuotaExceededException(message, 45);
  });
  await service.build('key-2');
  assert.equal(submitted.length, 0);
  assert.equal(finished.length, 1);
  assert.equal(finished[0].state, 'failed');
  assert.deepEqual(finished[0].runIds, []);
  assert.equal(finished[0].detail, `.kiln.yml: ${JSON.stringify(message)}`);
});
