import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../config/config';
import { Metrics } from '../common/metrics';
import { LocalBlobStore } from '../storage/blob-store';
import { FileStore } from '../storage/file-store';
import type { EgressReport, EgressRequest } from '../common/egress-rules';
import type { JobHandle, JobSandboxSpec } from './backend';
import { RetryableJobError } from './job';
import { JobRunner } from './job-runner';
import { NO_NETWORK_NOTE } from './script-step';
import type { StepEnd } from './reporter';
import type { Annotation } from './workflow-commands';
import { Backend, dataDir, input, logs, MemoryReporter, ok, readLog, setup } from '../../test/fixtures/runner-harness';

/**
 * The runner with its side effects replaced (test/fixtures/runner-harness.ts): the scripted fake
 * backend, an in-memory reporter, logs and blobs in a temporary folder, no database and no Redis.
 */

test('a job of two steps: each is started then finished, in order, and the job succeeds', async () => {
  const { backend, runner, reporter } = setup();
  const job = input([{ run: 'echo one' }, { run: 'printenv GITHUB_JOB' }]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, ok()],
    ['stepStarted', 1],
    ['stepFinished', 1, ok()],
  ]);
  assert.deepEqual(outcome, { conclusion: 'success', error: null, beforeSteps: false, outputs: {} });
  assert.deepEqual(
    backend.execs.map((e) => e.script),
    ['echo one', 'printenv GITHUB_JOB'],
  );
  // The GitHub variables come from the plain input.
  const env = backend.execs[1].env;
  assert.equal(env.GITHUB_JOB, 'build');
  assert.equal(env.GITHUB_RUN_ID, job.runId);
  assert.equal(env.GITHUB_RUN_NUMBER, '7');
  assert.equal(env.GITHUB_REF_NAME, 'main');
  assert.equal(env.GITHUB_REPOSITORY_OWNER, 'octo');
  await runner.sandboxGone(job.jobId);
  assert.deepEqual(backend.destroyed, [job.jobId]);
});

test('a failing step skips the steps after it, but not one with if: always()', async () => {
  const { backend, runner, reporter } = setup();
  const outcome = await runner.run(
    input([{ run: 'exit 1' }, { run: 'echo never' }, { run: 'echo cleanup', if: 'always()' }]),
    reporter,
    new AbortController().signal,
  );
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'failure', exitCode: 1, reason: null }],
    ['stepSkipped', 1],
    ['stepStarted', 2],
    ['stepFinished', 2, ok()],
  ]);
  assert.equal(outcome.conclusion, 'failure');
  assert.equal(outcome.error, null);
  assert.deepEqual(
    backend.execs.map((e) => e.script),
    ['exit 1', 'echo cleanup'],
  );
});

test('continue-on-error: the step fails, its conclusion is success, the job goes on and succeeds', async () => {
  const { runner, reporter } = setup();
  const job = input([{ run: 'exit 3', continueOnError: true }, { run: 'exit 4', continueOnError: '${{ matrix.flaky }}' }, { run: 'echo after' }], {
    matrix: { flaky: true },
  });
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'success', exitCode: 3, reason: null }],
    ['stepStarted', 1],
    ['stepFinished', 1, { outcome: 'failure', conclusion: 'success', exitCode: 4, reason: null }],
    ['stepStarted', 2],
    ['stepFinished', 2, ok()],
  ]);
  assert.equal(outcome.conclusion, 'success');
});

test('the job timeout stops the running step; the steps after it are not run and the job fails with its error', async () => {
  const { runner, reporter } = setup();
  const outcome = await runner.run(
    input([{ run: 'hang' }, { run: 'echo never', if: 'always()' }], { timeoutMinutes: 0.001 }),
    reporter,
    new AbortController().signal,
  );
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'failure', exitCode: 143, reason: 'job-timeout' }],
    ['stepNotRun', 1, 'job-timeout'],
  ]);
  assert.deepEqual(outcome, { conclusion: 'failure', error: 'the job exceeded its timeout of 0.001 minutes', beforeSteps: false, outputs: {} });
});

test("the job's deadline is kept by the runner's clock: each step gets what is left of the job's time", async () => {
  let now = Date.parse('2031-01-01T00:00:00Z');
  const { backend, runner } = setup(() => now);
  const reporter = new MemoryReporter();
  const finished = reporter.stepFinished.bind(reporter);
  reporter.stepFinished = async (index: number, end: StepEnd) => {
    now += 3 * 60_000; // each step takes three minutes by this clock
    await finished(index, end);
  };
  const outcome = await runner.run(
    input([{ run: 'echo one' }, { run: 'echo two', timeoutMinutes: 4 }, { run: 'echo three' }], { timeoutMinutes: 5 }),
    reporter,
    new AbortController().signal,
  );
  // 5 minutes for the first step; 2 left for the second (under its own 4); the third would start after the deadline.
  assert.deepEqual(backend.timeouts, [5 * 60_000, 2 * 60_000]);
  assert.deepEqual(reporter.calls.at(-1), ['stepNotRun', 2, 'job-timeout']);
  assert.deepEqual(outcome, { conclusion: 'failure', error: 'the job exceeded its timeout of 5 minutes', beforeSteps: false, outputs: {} });
});

test('a step timeout fails that step only (reason timeout); the job goes on to its if: always() steps', async () => {
  const { runner, reporter } = setup();
  const outcome = await runner.run(
    input([
      { run: 'hang', timeoutMinutes: 0.001 },
      { run: 'echo cleanup', if: 'always()' },
    ]),
    reporter,
    new AbortController().signal,
  );
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'failure', exitCode: 143, reason: 'timeout' }],
    ['stepStarted', 1],
    ['stepFinished', 1, ok()],
  ]);
  assert.deepEqual(outcome, { conclusion: 'failure', error: null, beforeSteps: false, outputs: {} });
});

test('the sandbox lost mid-step: the step fails as sandbox-lost, no later step runs, the job says why', async () => {
  const { backend, runner, reporter } = setup();
  const outcome = await runner.run(input([{ run: 'lose' }, { run: 'echo never', if: 'always()' }]), reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'failure', exitCode: null, reason: 'sandbox-lost' }],
    ['stepNotRun', 1, 'sandbox-lost'],
  ]);
  assert.deepEqual(outcome, { conclusion: 'failure', error: "the job's sandbox stopped; later steps could not run", beforeSteps: false, outputs: {} });
  assert.equal(backend.execs.length, 0);
});

test('GITHUB_OUTPUT reaches later steps and the job outputs; GITHUB_ENV reaches later steps', async () => {
  const { backend, runner, reporter } = setup();
  const job = input([{ id: 'version', run: 'output tag=v1.2.3\nsetenv FLAVOUR=plain' }, { run: 'echo ${{ steps.version.outputs.tag }}\nprintenv FLAVOUR' }], {
    outputs: { tag: '${{ steps.version.outputs.tag }}', missing: '${{ steps.nope.outputs.x }}' },
  });
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'success');
  assert.deepEqual(outcome.outputs, { tag: 'v1.2.3', missing: '' });
  assert.equal(backend.execs[1].script, 'echo v1.2.3\nprintenv FLAVOUR');
  assert.equal(backend.execs[1].env.FLAVOUR, 'plain');
});

test('a job output holding a secret is left out', async () => {
  const { runner, reporter } = setup();
  const job = input([{ id: 's', run: 'output token=hunter22' }], { outputs: { token: '${{ steps.s.outputs.token }}' } }, { secrets: { TOKEN: 'hunter22' } });
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(outcome.outputs, {});
});

test('cancelled while a step runs: the step ends cancelled, the open steps are closed, the job is cancelled', async () => {
  const { runner, reporter } = setup();
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  const outcome = await runner.run(input([{ run: 'hang' }, { run: 'echo never' }]), reporter, abort.signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, { outcome: 'cancelled', conclusion: 'cancelled', exitCode: 143, reason: 'cancelled' }],
    ['cancelled'],
  ]);
  assert.deepEqual(outcome, { conclusion: 'cancelled', error: null, beforeSteps: false });
});

test('cancelled between steps: no further step starts', async () => {
  const { backend, runner, reporter } = setup();
  const abort = new AbortController();
  abort.abort();
  const outcome = await runner.run(input([{ run: 'echo never' }]), reporter, abort.signal);
  assert.deepEqual(reporter.calls, [['cancelled']]);
  assert.equal(outcome.conclusion, 'cancelled');
  assert.equal(backend.execs.length, 0);
});

test('annotations and the job summary are reported, masked', async () => {
  const { runner, reporter } = setup();
  const job = input(
    [{ run: 'echo ::warning title=Lint::found hunter22 here\nsummary ## Result\nsummary token hunter22' }],
    {},
    { secrets: { TOKEN: 'hunter22' } },
  );
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'success');
  const annotation = reporter.calls.find((c) => c[0] === 'annotation');
  assert.ok(annotation, JSON.stringify(reporter.calls));
  const [, stepIndex, seq, a] = annotation as ['annotation', number, number, Annotation];
  assert.deepEqual([stepIndex, seq, a.level, a.title], [0, 0, 'warning', 'Lint']);
  assert.ok(!a.message.includes('hunter22') && a.message.startsWith('found '), a.message);
  const summary = reporter.calls.find((c) => c[0] === 'summary') as ['summary', string] | undefined;
  assert.ok(summary, JSON.stringify(reporter.calls));
  assert.equal(summary[1], '## Result\ntoken ***\n');
  // The summary is reported once the steps are done.
  assert.deepEqual(reporter.calls.at(-1)?.[0], 'summary');
});

test('built-in actions: checkout runs nothing, setup-python its script in the sandbox; upload and download report their failures', async () => {
  const { backend, runner, reporter } = setup();
  const job = input([
    { uses: 'checkout' },
    { uses: 'setup-python', with: { 'python-version': '3.11' } },
    { uses: 'upload-artifact', with: { name: 'dist', path: 'dist/', 'if-no-files-found': 'error' } },
    { uses: 'download-artifact', with: { name: 'dist' }, if: 'always()' },
  ]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, ok(null)],
    ['stepStarted', 1],
    ['stepFinished', 1, ok()],
    ['stepStarted', 2],
    ['stepFinished', 2, { outcome: 'failure', conclusion: 'failure', exitCode: null, reason: 'no-files' }],
    ['stepStarted', 3],
    ['stepFinished', 3, { outcome: 'failure', conclusion: 'failure', exitCode: null, reason: 'artifact-error' }],
  ]);
  assert.equal(outcome.conclusion, 'failure');
  // One exec: setup-python's script (a venv over the environment's Python, first on PATH), as a bash step.
  assert.equal(backend.execs.length, 1);
  assert.match(backend.execs[0].script, /python3 -m venv --system-site-packages --without-pip "\$dir"/);
  assert.match(backend.execs[0].script, /echo "\$dir\/bin" >> "\$GITHUB_PATH"/);
});

test('upload-artifact with nothing found and the default if-no-files-found: a warning, the step succeeds, nothing recorded', async () => {
  const { runner, reporter } = setup();
  const job = input([{ uses: 'upload-artifact', with: { path: 'dist/' } }]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepStarted', 0],
    ['stepFinished', 0, ok(null)],
  ]);
  assert.equal(outcome.conclusion, 'success');
  const { records } = await logs.read(job.runId, job.jobId);
  assert.ok(
    records.some((r) => r.l.startsWith('warning: no files were found with the provided path: dist/')),
    JSON.stringify(records),
  );
});

test("upload-artifact: a name the run already holds is refused with GitHub's words unless overwrite; inputs are checked after expressions", async () => {
  const { runner, reporter } = setup();
  reporter.stored.push({ id: 'old', name: 'dist', sizeBytes: 3, files: 1, createdAt: '', expiresAt: '' });
  const job = input([
    { uses: 'upload-artifact', with: { name: 'dist', path: 'dist/' }, continueOnError: true },
    { uses: 'upload-artifact', with: { name: 'other', path: 'dist/', 'compression-level': "${{ 'ten' }}" }, continueOnError: true },
    { uses: 'upload-artifact', with: { name: 'other', path: 'dist/', 'include-hidden-files': "${{ 'yes' }}" }, continueOnError: true },
    { uses: 'upload-artifact', with: { name: 'dist', path: 'dist/', overwrite: "${{ 'true' }}" } },
  ]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  const ends = reporter.calls.filter((c) => c[0] === 'stepFinished').map((c) => (c[2] as StepEnd).outcome);
  assert.deepEqual(ends, ['failure', 'failure', 'failure', 'success']);
  assert.equal(outcome.conclusion, 'success');
  const lines = (await logs.read(job.runId, job.jobId)).records.map((r) => r.l);
  assert.ok(
    lines.includes(
      "error: Failed to CreateArtifact: Received non-retryable error: Failed request: (409) Conflict: an artifact with this name already exists on the workflow run (set overwrite: true to replace 'dist')",
    ),
    JSON.stringify(lines),
  );
  assert.ok(lines.includes("error: 'compression-level' must be a whole number from 0 to 9, not 'ten'"), JSON.stringify(lines));
  assert.ok(lines.includes("error: 'include-hidden-files' must be true or false"), JSON.stringify(lines));
  // The fake sandbox holds no files: nothing found, so nothing replaced.
  assert.ok(!reporter.calls.some((c) => c[0] === 'artifactRemoved'));
});

test('an if: that cannot be evaluated fails its step without starting it', async () => {
  const { backend, runner, reporter } = setup();
  const outcome = await runner.run(input([{ run: 'echo x', if: 'hashFiles(steps.x)' }, { run: 'echo after' }]), reporter, new AbortController().signal);
  assert.deepEqual(reporter.calls, [
    ['stepFinished', 0, { outcome: 'failure', conclusion: 'failure', exitCode: null, reason: null }],
    ['stepSkipped', 1],
  ]);
  assert.equal(outcome.conclusion, 'failure');
  assert.equal(backend.execs.length, 0);
});

test('the sandbox cannot start: a retryable error, no step reported', async () => {
  const { backend, runner, reporter } = setup();
  backend.failStartsLeft = 1;
  await assert.rejects(runner.run(input([{ run: 'echo x' }]), reporter, new AbortController().signal), RetryableJobError);
  assert.deepEqual(reporter.calls, []);
});

test('a failing step whose output says the network is not there gets a note on how to install without one; a passing step does not', async () => {
  const { runner, reporter } = setup();
  const job = input([
    { run: 'echo curl: (6) Could not resolve host: example.org\nexit 0', continueOnError: true },
    { run: "echo WARNING: Retrying after connection broken by 'NewConnectionError: [Errno -3] Temporary failure in name resolution'\nexit 1" },
  ]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'failure');
  const notes = reporter.calls.filter((c) => c[0] === 'annotation');
  assert.deepEqual(notes, [
    [
      'annotation',
      1,
      0,
      { level: 'warning', message: NO_NETWORK_NOTE, title: 'No network', file: null, line: null, endLine: null, col: null, endColumn: null },
    ],
  ]);
  assert.match(NO_NETWORK_NOTE, /pip install --no-index --find-links \.\/wheels/);
  const { records } = await logs.read(job.runId, job.jobId);
  assert.ok(records.some((r) => r.i === 1 && r.l.startsWith('warning: this step tried to reach the network')));
});

/** A backend whose sandboxes have a gateway: proxy variables on the handle, one refused request in the first step, a report at the end. */
class EgressBackend extends Backend {
  readonly specs: JobSandboxSpec[] = [];
  private handedOut = false;
  override async startJob(spec: JobSandboxSpec): Promise<JobHandle> {
    this.specs.push(spec);
    return { ...(await super.startJob(spec)), env: { HTTPS_PROXY: 'http://10.9.0.2:3128' } };
  }
  async egressActivity(): Promise<EgressRequest[]> {
    if (this.handedOut) return [];
    this.handedOut = true;
    return [
      { time: 1, method: 'CONNECT', host: 'files.example.org', port: 443, status: 403, refused: true, bytesIn: 3000, bytesOut: 40, userAgent: 'pip/23.0.1' },
    ];
  }
  async egressReport(job: JobHandle): Promise<EgressReport | null> {
    if (!this.specs.some((spec) => spec.jobId === job.jobId && spec.egress)) return null; // no gateway: as the Docker backend
    return { rules: [`report of ${job.jobId}`], hosts: [], lookups: [], totalBytes: 1, maxBytes: 2, capReached: false };
  }
}

test("egress: the job's grant goes to the backend, its steps get the proxy and the operator's index, a refused request is annotated on its step, the report is recorded", async () => {
  const cfg = loadConfig({
    KILN_DATA_DIR: dataDir,
    KILN_LOG_LEVEL: 'error',
    KILN_EGRESS_ALLOW: 'pypi.org:443,*.pythonhosted.org:443',
    KILN_PIP_INDEX_URL: 'https://pypi.org/simple/',
  });
  const backend = new EgressBackend();
  const runner = new JobRunner(cfg, backend, logs, new FileStore(cfg), new LocalBlobStore(cfg), new Metrics());
  const reporter = new MemoryReporter();
  const job = input([{ run: 'printenv HTTPS_PROXY\nprintenv PIP_INDEX_URL' }, { run: 'echo two' }], { egress: ['pypi.org:443'] });
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'success');
  assert.deepEqual(
    backend.specs[0].egress?.grant.rules.map((r) => `${r.host}:${r.port}`),
    ['pypi.org:443'],
    'narrowed by the workflow',
  );
  assert.equal(backend.specs[0].egress?.maxBytes, 2 * 1024 ** 3);
  assert.equal(backend.execs[0].env.HTTPS_PROXY, 'http://10.9.0.2:3128');
  assert.equal(backend.execs[0].env.PIP_INDEX_URL, 'https://pypi.org/simple/');
  const notes = reporter.calls.filter((c) => c[0] === 'annotation') as ['annotation', number, number, Annotation][];
  assert.equal(notes.length, 1);
  assert.equal(notes[0][1], 0, 'on the step that made the request');
  assert.match(notes[0][3].message, /^pip tried files\.example\.org:443: not on this server's egress list \(it allows pypi\.org:443\)/);
  const reports = reporter.calls.filter((c) => c[0] === 'egress').map((c) => (c[1] as EgressReport).rules);
  assert.deepEqual(reports, [['pypi.org:443'], [`report of ${job.jobId}`]], 'what it may reach at its start, the full report at its end');
  const text = await readLog(job);
  assert.match(text, /network: egress gateway to pypi\.org:443 \(at most 2 GiB\)/);

  // egress: none: nothing of it
  const sealed = new EgressBackend();
  const r2 = new MemoryReporter();
  const none = input([{ run: 'printenv PIP_INDEX_URL' }], { egress: 'none' });
  await new JobRunner(cfg, sealed, logs, new FileStore(cfg), new LocalBlobStore(cfg), new Metrics()).run(none, r2, new AbortController().signal);
  assert.equal(sealed.specs[0].egress, undefined);
  assert.equal(sealed.execs[0].env.PIP_INDEX_URL, undefined);
  assert.deepEqual(
    r2.calls.filter((c) => c[0] === 'egress' || c[0] === 'annotation'),
    [],
  );
  assert.match(await readLog(none), /network none/);
});
