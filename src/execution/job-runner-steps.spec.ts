import { test } from 'node:test';
import assert from 'node:assert/strict';
import { input, readLog, setup } from '../../test/fixtures/runner-harness';

/** What a step is called and run with, decided when it runs: its ${{ }} name and shell, and the old workflow commands. */

test('the old commands: set-output reaches later steps (GITHUB_OUTPUT wins); set-env without the opt-in fails its step though it exits 0', async () => {
  const { backend, runner, reporter } = setup();
  const job = input([
    { id: 'old', run: 'echo ::set-output name=a::1\necho ::set-output name=b::2\noutput b=file' },
    { run: 'echo a=${{ steps.old.outputs.a }} b=${{ steps.old.outputs.b }}' },
    { run: 'echo ::set-env name=FOO::bar' },
  ]);
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(backend.execs[1].script, 'echo a=1 b=file');
  assert.deepEqual(reporter.calls.filter((c) => c[0] === 'stepFinished').at(-1), [
    'stepFinished',
    2,
    { outcome: 'failure', conclusion: 'failure', exitCode: 0, reason: null },
  ]);
  assert.equal(outcome.conclusion, 'failure');
});

test('the old commands with ACTIONS_ALLOW_UNSECURE_COMMANDS in the env: set-env and add-path reach later steps', async () => {
  const { backend, runner, reporter } = setup();
  const job = input(
    [{ run: 'echo ::set-env name=FOO::bar\necho ::add-path::/opt/tool/bin', env: { ACTIONS_ALLOW_UNSECURE_COMMANDS: 'true' } }, { run: 'printenv FOO' }],
    {},
  );
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'success');
  assert.equal(backend.execs[1].env.FOO, 'bar');
  assert.match(backend.execs[1].env.PATH, /^\/opt\/tool\/bin:/);
});

test("a step's ${{ }} name is evaluated when it starts (or is skipped), with the job's contexts; one that cannot be is shown as written", async () => {
  const { runner, reporter } = setup();
  const bad = "bad ${{ fromJSON('{') }}";
  const job = input(
    [
      { name: 'Set up Python ${{ matrix.python-version }} on ${{ env.OS }}', run: 'echo one' },
      { name: 'Skipped ${{ matrix.python-version }}', if: 'false', run: 'echo never' },
      { name: 'plain', run: 'echo two' },
      { name: bad, run: 'echo three' },
    ],
    { matrix: { 'python-version': '3.12' }, env: { OS: 'linux' } },
  );
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.equal(outcome.conclusion, 'success');
  assert.deepEqual(
    reporter.calls.filter((c) => c[0] === 'stepStarted' || c[0] === 'stepSkipped'),
    [
      ['stepStarted', 0, 'Set up Python 3.12 on linux'],
      ['stepSkipped', 1, 'Skipped 3.12'],
      ['stepStarted', 2],
      ['stepStarted', 3],
    ],
  );
  const log = await readLog(job);
  assert.match(log, /▶ Set up Python 3\.12 on linux/);
  assert.match(log, /■ Set up Python 3\.12 on linux: success/);
  assert.match(log, /warning: the step name could not be evaluated \(shown as written\): /);
  assert.ok(log.includes(`▶ ${bad}`), log);
});

test('a ${{ }} shell is evaluated when its step runs, with the step env; a value Kiln has no shell for fails the step', async () => {
  const { backend, runner, reporter } = setup();
  const job = input(
    [
      { shell: '${{ env.MY_SHELL }}', run: 'echo one', env: { MY_SHELL: 'python' } },
      { shell: "${{ matrix.os == 'x' && 'sh' || 'perl {0}' }}", run: 'echo two' },
      { shell: '${{ env.MY_SHELL }}', run: 'echo three', env: { MY_SHELL: 'fish' } },
    ],
    { matrix: { os: 'y' } },
  );
  const outcome = await runner.run(job, reporter, new AbortController().signal);
  assert.deepEqual(backend.argvs, [
    ['python3', '/tmp/kiln/step-0.py'],
    ['perl', '/tmp/kiln/step-1.script'],
  ]);
  assert.equal(outcome.conclusion, 'failure');
  assert.deepEqual(reporter.calls.at(-1), ['stepFinished', 2, { outcome: 'failure', conclusion: 'failure', exitCode: null, reason: null }]);
  assert.match(
    await readLog(job),
    /error: unsupported shell 'fish': use one of bash, sh, python, or a custom template .*\(the value of shell: \$\{\{ env\.MY_SHELL \}\}\)/,
  );
});
