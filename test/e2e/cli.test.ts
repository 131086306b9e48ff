import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, KILN_BIN, runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { spawn } from 'node:child_process';
import { Client } from './runs-helpers';

/** The built CLI, run as a subprocess the way a user runs it, against a real server. */
describe('the kiln CLI (real server, real engine)', () => {
  const data = tmpDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  let env: Record<string, string>;
  let api: Client;

  function project(files: Record<string, string>): string {
    const dir = tmpDir('kiln-project-');
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), content);
    }
    return dir;
  }

  /** The CLI from a directory of its own (so no ./data/admin-token is found by accident). */
  const kiln = (args: string[], cwd?: string, extra: Record<string, string> = {}) => runKiln(args, { ...env, ...extra }, 300_000, cwd ?? tmpDir('kiln-cwd-'));

  before(async () => {
    const images = await runKiln(['images', 'python-3.11'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({ KILN_DATA_DIR: data, KILN_QUEUE_PREFIX: `cli-${process.pid}`, KILN_LOG_LEVEL: 'warn' });
    env = { KILN_URL: server.url, KILN_TOKEN: TEST_ADMIN_TOKEN, HOME: tmpDir('kiln-home-'), XDG_CONFIG_HOME: '', NO_COLOR: '1' };
    api = new Client(server.url);
  });
  after(async () => server?.stop());

  test('kiln run: a passing project exits 0; ignored files and outside links are not uploaded; --json matches the API', async () => {
    const dir = project({
      'calc.py': 'def add(a, b):\n    return a + b\n',
      'test_calc.py': 'from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n',
      '.gitignore': 'secret.txt\n*.log\n',
      '.kilnignore': 'private/\n',
      'secret.txt': 'do not upload\n',
      'debug.log': 'noise\n',
      'private/key.pem': 'KEY\n',
      'sub/ok.txt': 'fine\n',
      '.kiln.yml':
        [
          'jobs:',
          '  test:',
          '    runs-on: python-3.11',
          '    steps:',
          '      - run: test ! -e secret.txt && test ! -e debug.log && test ! -e private && test ! -e outside && test -L inside && cat inside',
          '      - run: python3 -m pytest -q',
        ].join('\n') + '\n',
    });
    fs.symlinkSync('/etc/passwd', path.join(dir, 'outside'));
    fs.symlinkSync('sub/ok.txt', path.join(dir, 'inside'));
    const r = await kiln(['run', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /left out outside -> \/etc\/passwd: the link points outside/);
    assert.match(r.stderr, /1 passed/, 'logs went to stderr with --json');
    const summary = JSON.parse(r.stdout) as {
      id: string;
      conclusion: string;
      jobs: { key: string; conclusion: string; steps: { exitCode: number; conclusion: string }[] }[];
    };
    assert.equal(summary.conclusion, 'success');
    const view = await api.run(summary.id);
    assert.equal(view.conclusion, summary.conclusion);
    assert.deepEqual(
      summary.jobs.map((j) => [j.key, j.conclusion]),
      view.jobs.map((j) => [j.key, j.conclusion]),
    );
    assert.deepEqual(
      summary.jobs[0].steps.map((s) => [s.exitCode, s.conclusion]),
      view.jobs[0].steps.map((s) => [s.exitCode, s.conclusion]),
    );
    const log = await api.logs(summary.id);
    assert.match(log, /\| fine/, 'the inside link was uploaded as a link');
  });

  test('kiln run: a failing project exits 1 and shows the failure', async () => {
    const dir = project({ '.kiln.yml': 'jobs:\n  t:\n    runs-on: python-3.11\n    steps:\n      - run: echo about-to-fail; exit 4\n' });
    const r = await kiln(['run', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /about-to-fail/);
    assert.match(r.stderr, /✗ t \(python-3\.11@\d{8}\.\d+\): failure/);
    assert.match(r.stderr, /exit 4/);
  });

  test('kiln artifacts --download: the bytes are what the job wrote', async () => {
    const dir = project({
      '.kiln.yml':
        [
          'jobs:',
          '  make:',
          '    runs-on: python-3.11',
          '    steps:',
          '      - run: mkdir -p out && head -c 300000 /dev/urandom > out/data.bin && sha256sum out/data.bin',
          '      - uses: actions/upload-artifact@v4',
          '        with: { name: payload, path: out/ }',
        ].join('\n') + '\n',
    });
    const r = await kiln(['run', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { id, artifacts } = JSON.parse(r.stdout) as { id: string; artifacts: string[] };
    assert.deepEqual(artifacts, ['payload']);
    const sha = /([0-9a-f]{64}) {2}out\/data\.bin/.exec(r.stderr)?.[1];
    assert.ok(sha);
    const list = await kiln(['artifacts', id]);
    assert.match(list.stdout, /payload\s+1\s+300000/);
    const out = tmpDir('kiln-dl-');
    const dl = await kiln(['artifacts', id, '--download', 'payload', '-o', out]);
    assert.equal(dl.code, 0, dl.stderr);
    const bytes = fs.readFileSync(path.join(out, 'payload', 'data.bin'));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sha);
  });

  test("kiln exec streams the output and exits with the command's exit code", async () => {
    const r = await kiln(['exec', '--env', 'python-3.11', '--', 'python3', '-c', "import sys; print('from exec'); sys.exit(7)"]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stdout, /^from exec$/m);
    const dir = project({ 'data.txt': 'payload-from-dir\n' });
    const withDir = await kiln(['exec', dir, '--', 'cat', 'data.txt']);
    assert.equal(withDir.code, 0, withDir.stderr);
    assert.match(withDir.stdout, /payload-from-dir/);
  });

  test('catalogue commands: envs, env show, env which', async () => {
    const envs = await kiln(['envs']);
    assert.equal(envs.code, 0);
    assert.match(envs.stdout, /python-3\.11 \(default\)\s+\d{8}\.\d+\s+ga/);
    const show = await kiln(['env', 'show', 'python-3.11', '--packages']);
    assert.match(show.stdout, /Python: 3\.11\.\d+/);
    assert.match(show.stdout, /^numpy\s+\d/m);
    const which = await kiln(['env', 'which', 'numpy']);
    assert.match(which.stdout, /python-3\.11\s+\d{8}\.\d+\s+\d+\.\d+/);
    const none = await kiln(['env', 'which', 'no-such-package-xyz']);
    assert.equal(none.code, 1);
  });

  test('errors: server messages (no stack traces), usage errors 2, unreachable 3', async () => {
    const missing = await kiln(['status', 'nosuchrun']);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim(), 'kiln: no run nosuchrun');
    const usage = await kiln(['run', '--frobnicate']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Unknown option '--frobnicate'/);
    const closed = await freePort();
    const down = await kiln(['runs'], undefined, { KILN_URL: `http://127.0.0.1:${closed}` });
    assert.equal(down.code, 3);
    assert.equal(
      down.stderr.trim(),
      `kiln: cannot reach Kiln at http://127.0.0.1:${closed}: ECONNREFUSED (is it running? set KILN_URL, or start it with npm run up)`,
    );
    const noToken = await kiln(['runs'], undefined, { KILN_TOKEN: '' });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /authentication required.*\(no token: set KILN_TOKEN or run kiln login\)/);
    for (const c of [missing, usage, down, noToken]) assert.doesNotMatch(c.stderr, /\n\s+at /, 'no stack trace');
    // Next to a local server's data folder, the admin token there is used, and the CLI says so.
    const local = tmpDir('kiln-local-');
    fs.mkdirSync(path.join(local, 'data'));
    fs.writeFileSync(path.join(local, 'data', 'admin-token'), TEST_ADMIN_TOKEN + '\n', { mode: 0o600 });
    const fallback = await kiln(['runs'], local, { KILN_TOKEN: '' });
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.match(fallback.stderr, /using the admin token in .*data\/admin-token \(local server/);
  });

  test('-W, -j and -P: a workflow file from elsewhere, one job and what it needs, a label mapped', async () => {
    const dir = project({ 'hello.txt': 'hi\n' });
    const wf = path.join(tmpDir('kiln-wf-'), 'ci.yml');
    fs.writeFileSync(
      wf,
      [
        'jobs:',
        '  build: { runs-on: my-label, steps: [ { run: echo built } ] }',
        '  test: { runs-on: my-label, needs: build, steps: [ { run: cat hello.txt } ] }',
        '  lint: { runs-on: my-label, steps: [ { run: echo linted } ] }',
      ].join('\n') + '\n',
    );
    const r = await kiln(['run', dir, '-W', wf, '-j', 'test', '-P', 'my-label=python-3.11', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { jobs: { key: string; environment: string }[] };
    assert.deepEqual(
      summary.jobs.map((j) => j.key),
      ['build', 'test'],
    );
    assert.ok(summary.jobs.every((j) => j.environment.startsWith('python-3.11@')));
    const bad = await kiln(['run', dir, '-W', wf, '-j', 'nope', '-P', 'my-label=python-3.11']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /kiln: job: the workflow has no job 'nope'; its jobs: build, test, lint/);
  });

  test('--input: workflow_dispatch inputs typed, defaults filled, an empty value kept; a bad input is refused naming it', async () => {
    const dir = project({
      '.kiln.yml':
        [
          'on:',
          '  workflow_dispatch:',
          '    inputs:',
          '      name: { required: true }',
          '      note: { default: none }',
          '      flag: { type: boolean, default: true }',
          '      count: { type: number, default: 2 }',
          'jobs:',
          '  show:',
          '    runs-on: python-3.11',
          '    steps:',
          '      - run: echo "name=${{ inputs.name }} note=[${{ inputs.note }}] flag=${{ inputs.flag }} count=${{ inputs.count }} sum=${{ inputs.count == 2 }} event=${{ github.event_name }}"',
        ].join('\n') + '\n',
    });
    const r = await kiln(['run', dir, '--input', 'name=a=b', '-i', 'note=', '--input', 'flag=false', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /name=a=b note=\[\] flag=false count=2 sum=true event=workflow_dispatch/);
    const view = await api.run(JSON.parse(r.stdout).id);
    assert.deepEqual((view as unknown as { context: { inputs: unknown } }).context.inputs, { name: 'a=b', note: '', flag: false, count: 2 });
    const bad = await kiln(['run', dir, '--input', 'name=x', '--input', 'count=many', '--input', 'colour=red']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /inputs\.colour: the workflow declares no input 'colour'/);
    assert.match(bad.stderr, /inputs\.count: the input 'count' is a number: give a number, not 'many'/);
    const missing = await kiln(['run', dir]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /inputs\.name: the input 'name' is required and has no default/);
    const form = await kiln(['run', dir, '--input', 'name']);
    assert.equal(form.code, 2);
    assert.match(form.stderr, /--input takes NAME=VALUE/);
  });

  test('--detach, then logs --follow, status and cancel by run id', async () => {
    const dir = project({ '.kiln.yml': 'jobs:\n  slow:\n    runs-on: python-3.11\n    steps:\n      - run: echo tick; sleep 300\n' });
    const detached = await kiln(['run', dir, '--detach']);
    assert.equal(detached.code, 0, detached.stderr);
    const id = detached.stdout.trim();
    assert.match(id, /^[A-Za-z0-9]{16}$/);
    await api.waitFor(id, 60_000, (v) => v.jobs[0].status === 'in_progress');
    const following = kiln(['logs', id, '--follow']);
    await new Promise((r) => setTimeout(r, 2000));
    const status = await kiln(['status', id]);
    assert.match(status.stdout, new RegExp(`run ${id}: in_progress`));
    const cancelled = await kiln(['cancel', id]);
    assert.equal(cancelled.code, 0);
    const followed = await following;
    assert.equal(followed.code, 0);
    assert.match(followed.stdout, /^tick$/m);
    const done = await api.waitFor(id, 30_000);
    assert.equal(done.conclusion, 'cancelled');
  });

  test('Ctrl-C with --cancel-on-interrupt cancels the run and exits 1', async () => {
    const dir = project({ '.kiln.yml': 'jobs:\n  slow:\n    runs-on: python-3.11\n    steps:\n      - run: echo started; sleep 300\n' });
    const p = spawn(process.execPath, [KILN_BIN, 'run', dir, '--cancel-on-interrupt'], {
      env: { ...process.env, ...env },
      cwd: tmpDir('kiln-cwd-'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errText = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    p.stderr.on('data', (d: Buffer) => {
      errText += d;
    });
    const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    for (let i = 0; i < 300 && !/^started$/m.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /^started$/m, errText);
    const id = /run ([A-Za-z0-9_-]{16})/.exec(errText)![1];
    p.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 1, errText);
    assert.match(errText, new RegExp(`cancelling ${id}`));
    assert.equal((await api.run(id)).conclusion, 'cancelled');
  });

  test('--help is complete for every command; kiln login stores the token (mode 600)', async () => {
    for (const c of ['run', 'exec', 'logs', 'artifacts', 'env', 'login']) {
      const h = await kiln([c, '--help']);
      assert.equal(h.code, 0);
      assert.match(h.stdout, /^usage: kiln /);
    }
    const main = await kiln(['--help']);
    for (const c of ['run', 'exec', 'runs', 'status', 'logs', 'artifacts', 'cancel', 'envs', 'env show', 'env diff', 'env which', 'login'])
      assert.match(main.stdout, new RegExp(`\\n  ${c}`));
    const home = tmpDir('kiln-home-');
    const login = await kiln(['login', '--url', server.url, '--token', TEST_ADMIN_TOKEN], undefined, { HOME: home, KILN_TOKEN: '', KILN_URL: '' });
    assert.equal(login.code, 0, login.stderr);
    const file = path.join(home, '.config', 'kiln', 'config.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const after = await kiln(['runs'], undefined, { HOME: home, KILN_TOKEN: '', KILN_URL: '' });
    assert.equal(after.code, 0, after.stderr);
  });
});
