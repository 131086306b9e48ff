import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { loadConfig } from '../config/config';
import { Metrics } from '../common/metrics';
import { LocalBlobStore } from '../storage/blob-store';
import { FileStore } from '../storage/file-store';
import { LogStore } from '../storage/log-store';
import { FakeBackend } from '../../test/fixtures/fake-backend';
import { readTar } from '../../test/fixtures/archives';
import type { JobHandle } from './backend';
import { EVENT_DIR, EVENT_PATH } from './event-file';
import type { JobInput, RunContext } from './job';
import { JobRunner } from './job-runner';
import type { JobReporter } from './reporter';

/** The run's inputs and event payload as the runner gives them: the `inputs` and `github.event` contexts, and GITHUB_EVENT_PATH. */

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-event-spec-'));
after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
const config = loadConfig({ KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'error' });

class Backend extends FakeBackend {
  readonly puts: { dir: string | undefined; files: Map<string, Buffer> }[] = [];
  override async putWorkspace(_job: JobHandle, tar: Readable, dir?: string) {
    const chunks: Buffer[] = [];
    for await (const c of tar) chunks.push(c as Buffer);
    this.puts.push({ dir, files: await readTar(Buffer.concat(chunks)) });
  }
}

const reporter = new Proxy({}, { get: () => async () => undefined }) as unknown as JobReporter;

async function runWith(context: Partial<RunContext>) {
  const backend = new Backend();
  const runner = new JobRunner(
    config,
    backend,
    new LogStore(config, { publish: async () => 0 }),
    new FileStore(config),
    new LocalBlobStore(config),
    new Metrics(),
  );
  const job: JobInput = {
    runId: `run-${Math.random().toString(36).slice(2)}`,
    jobId: `job-${Math.random().toString(36).slice(2)}`,
    workflowName: 'ci',
    hasSources: false,
    needs: {},
    secrets: {},
    artifactBytesLeft: Infinity,
    context: { sha: 'a'.repeat(40), ref: 'refs/heads/main', repository: 'octo/kiln', event: 'workflow_dispatch', runNumber: 1, ...context },
    spec: {
      key: 'build',
      jobId: 'build',
      name: 'build',
      matrix: null,
      environment: { name: 'python-3.11', version: '20260101.1', image: `sha256:${'b'.repeat(64)}` },
      needs: [],
      if: null,
      env: {},
      timeoutMinutes: 5,
      continueOnError: false,
      strategy: null,
      limits: {},
      outputs: {},
      steps: [
        {
          index: 0,
          id: null,
          name: 'show',
          run: 'echo ${{ inputs.n }} ${{ inputs.b && inputs.n == 2 }} ${{ github.event.inputs.n }} ${{ github.event.ref }}',
          uses: null,
          with: {},
          shell: 'bash',
          workingDirectory: null,
          env: {},
          if: null,
          continueOnError: false,
          timeoutMinutes: null,
        },
      ],
    },
  };
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  await runner.sandboxGone(job.jobId);
  return { backend, outcome };
}

test('a dispatched run: typed inputs, github.event, and the payload as a file at GITHUB_EVENT_PATH', async () => {
  const payload = { inputs: { n: '2', b: 'true' }, ref: 'refs/heads/main', workflow: '.kiln.yml' };
  const { backend, outcome } = await runWith({ inputs: { n: 2, b: true }, eventPayload: payload });
  assert.equal(outcome.conclusion, 'success');
  assert.equal(backend.execs[0].script, 'echo 2 true 2 refs/heads/main');
  assert.equal(backend.execs[0].env.GITHUB_EVENT_PATH, EVENT_PATH);
  assert.equal(backend.puts.length, 1);
  assert.equal(backend.puts[0].dir, EVENT_DIR);
  assert.deepEqual(JSON.parse(backend.puts[0].files.get('event.json')!.toString()), payload);
});

test('a run without a payload (recorded before inputs, or a plain push): empty contexts, no event file', async () => {
  const { backend } = await runWith({});
  assert.equal(backend.execs[0].script, 'echo    ');
  assert.equal(backend.execs[0].env.GITHUB_EVENT_PATH, undefined);
  assert.equal(backend.puts.length, 0);
});
