/**
 * Egress through the gateway, end to end: a server whose operator allows one local package index
 * (started here, with a second index that is not allowed beside it, on a network this test makes).
 * pip installs through the gateway as on GitHub; the other index is refused and reported; a job that
 * asks for `egress: none` has no network at all; a workflow shaped like real projects' (a
 * setup-python matrix on ubuntu-latest, pip install -r requirements.txt, pytest) runs unchanged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { EgressReport } from '../../src/common/egress-rules';
import { makeTar } from '../fixtures/archives';
import { startUpstreams, type Upstreams } from '../fixtures/egress-upstreams';
import { runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client, containersOf } from './runs-helpers';

const run = promisify(execFile);

interface JobView {
  id: string;
  key: string;
  environment: string;
  conclusion: string | null;
  steps: { conclusion: string | null }[];
  egress: EgressReport | null;
}
interface Annotation {
  jobId: string;
  step: number;
  title: string | null;
  message: string;
}

/** The job's network and gateway are gone once it is over (allowing their removal 10 s). */
async function leftBehind(jobId: string): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { stdout: nets } = await run('docker', ['network', 'ls', '-q', '--filter', `name=kiln-net-${jobId}`], { encoding: 'utf8' });
    const { stdout: gws } = await run('docker', ['ps', '-aq', '--filter', `name=kiln-gw-${jobId}`], { encoding: 'utf8' });
    const left = [...nets.split('\n'), ...gws.split('\n')].filter(Boolean);
    if (!left.length || Date.now() > deadline) return [...left, ...(await containersOf(jobId))];
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('egress through the gateway', () => {
  let up: Upstreams;
  let kiln: Client;
  let stop: () => Promise<void>;
  let url: string;
  let output: () => string;

  before(async () => {
    up = await startUpstreams();
    const data = tmpDir('kiln-egress-');
    const images = await run(process.execPath, ['src/bin/kiln.js', 'images'], { env: { ...process.env, KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' } });
    assert.match(images.stdout, /egress-gateway@/);
    const server = await startServer({ KILN_DATA_DIR: data, KILN_WORKER_CONCURRENCY: '3', ...up.env });
    kiln = new Client(server.url);
    url = server.url;
    stop = server.stop;
    output = server.output;
  });

  after(async () => {
    await stop?.();
    await up?.close();
  });

  test('pip installs through the gateway; a host not on the list is refused, annotated and reported; the report holds exactly what the upstreams saw', async () => {
    const workflow = `on: push
jobs:
  install:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '3.11' }
      - run: pip install kilnpkgb==1.0 && python -c "import kilnpkga, kilnpkgb; print('installed', kilnpkga.__version__, kilnpkgb.hello())"
      - run: pip download --no-deps -d /tmp/dl --index-url http://${up.other.host}:8080/simple/ --trusted-host ${up.other.host} kilnpkga
        continue-on-error: true
`;
    const submitted = await kiln.accepted(kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const done = await kiln.waitFor(submitted.id);
    const job = (done.jobs as unknown as JobView[])[0];
    const log = await kiln.logs(done.id);
    assert.equal(job.conclusion, 'success', log);
    assert.deepEqual(
      job.steps.map((s) => s.conclusion),
      ['success', 'success', 'success'],
    );
    assert.match(log, /installed 2\.0 hello from kilnpkgb 1\.0/);
    assert.match(log, new RegExp(`network: egress gateway to ${up.allowed.host.replace(/\./g, '\\.')}:8080 \\(at most 2 GiB\\)`));

    const seen = await up.allowed.requests();
    assert.deepEqual(
      seen.map((r) => `${r.method} ${r.path} ${r.status}`),
      [
        'GET /simple/kilnpkgb/ 200',
        'GET /files/kilnpkgb-1.0-py3-none-any.whl 200',
        'GET /simple/kilnpkga/ 200',
        'GET /files/kilnpkga-2.0-py3-none-any.whl 200',
      ],
    );
    assert.deepEqual(await up.other.requests(), [], 'the host that is not on the list saw nothing');

    const egress = job.egress!;
    assert.deepEqual(egress.rules, [`${up.allowed.host}:8080`]);
    const allowed = egress.hosts.filter((h) => h.allowed);
    const refused = egress.hosts.filter((h) => !h.allowed);
    assert.deepEqual(
      allowed.map((h) => [h.host, h.port, h.requests]),
      [[up.allowed.host, 8080, seen.length]],
      'every request the allowed upstream logged, and nothing else',
    );
    const bodies = seen.reduce((a, r) => a + r.bytes, 0);
    assert.ok(allowed[0].bytesIn >= bodies && allowed[0].bytesIn < bodies + seen.length * 1024, `${allowed[0].bytesIn} bytes in for ${bodies} bytes of bodies`);
    assert.deepEqual(
      refused.map((h) => [h.host, h.port]),
      [[up.other.host, 8080]],
    );
    assert.ok(refused[0].requests >= 1);
    assert.deepEqual(egress.lookups, [up.allowed.host], 'only the allowed name was resolved');
    assert.equal(egress.capReached, false);
    assert.ok(egress.totalBytes >= bodies, `the gateway counted ${egress.totalBytes} bytes`);

    const notes = (done as unknown as { annotations: Annotation[] }).annotations.filter((a) => a.title === 'Egress refused');
    assert.equal(notes.length, 1);
    assert.equal(notes[0].step, 2);
    assert.equal(notes[0].message.split('. ')[0], `pip tried ${up.other.host}:8080: not on this server's egress list (it allows ${up.allowed.host}:8080)`);
    assert.deepEqual(await leftBehind(job.id), [], 'no gateway, network or sandbox of the job is left');

    // the CLI's view of the same report
    const cli = await runKiln(['status', done.id, '--egress'], { KILN_URL: url, KILN_TOKEN: TEST_ADMIN_TOKEN, HOME: tmpDir('kiln-home-'), NO_COLOR: '1' });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`install: may reach ${up.allowed.host.replace(/\./g, '\\.')}:8080`));
    assert.match(cli.stdout, new RegExp(`${up.allowed.host.replace(/\./g, '\\.')}:8080\\s+allowed\\s+${seen.length}\\s`));
    assert.match(cli.stdout, new RegExp(`${up.other.host.replace(/\./g, '\\.')}:8080\\s+refused\\s+${refused[0].requests}\\s`));
  });

  test('egress: none: no proxy variables, no name resolution, no way to the gateway; the report is null', async () => {
    const workflow = `on: push
jobs:
  sealed:
    runs-on: ubuntu-latest
    egress: none
    steps:
      - run: |
          env | grep -i -E 'proxy|pip_index' && exit 1
          python3 - <<'EOF'
          import socket
          try:
              socket.getaddrinfo('${up.allowed.host}', 8080)
              print('RESOLVED')
          except OSError as e:
              print('no resolution:', e)
          for a in ['${up.allowed.address}']:
              s = socket.socket()
              s.settimeout(3)
              try:
                  s.connect((a, 8080))
                  print('CONNECTED', a)
              except OSError as e:
                  print('no connection:', e)
          EOF
`;
    const submitted = await kiln.accepted(kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const done = await kiln.waitFor(submitted.id);
    const job = (done.jobs as unknown as JobView[])[0];
    const log = await kiln.logs(done.id);
    assert.equal(job.conclusion, 'success', log);
    assert.match(log, /timeout 60 min, network none/);
    assert.match(log, /no resolution:/);
    assert.match(log, /no connection:/);
    assert.doesNotMatch(log, /RESOLVED|CONNECTED/);
    assert.equal(job.egress, null);
  });

  test('a workflow as real projects write it runs unchanged: a python-version matrix on ubuntu-latest, pip install -r requirements.txt, pytest', async () => {
    const workflow = `name: CI
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        python-version: ['3.9', '3.11', '3.13']
    steps:
      - uses: actions/checkout@v4
      - name: Set up Python \${{ matrix.python-version }}
        uses: actions/setup-python@v5
        with:
          python-version: \${{ matrix.python-version }}
      - name: Install dependencies
        run: |
          pip install -r requirements.txt
      - name: Test with pytest
        run: |
          python -c "import sys; print('python', sys.version.split()[0])"
          python -m pytest -q tests
`;
    const files: [string, string][] = [
      ['.github/workflows/ci.yml', workflow],
      ['requirements.txt', 'kilnpkgb==1.0\n'],
      [
        'tests/test_pkg.py',
        "import kilnpkga, kilnpkgb\n\ndef test_versions():\n    assert kilnpkga.__version__ == '2.0'\n    assert kilnpkgb.hello() == 'hello from kilnpkgb 1.0'\n",
      ],
    ];
    const before = (await up.allowed.requests()).length;
    const submitted = await kiln.accepted(kiln.submitTarball(await makeTar(files)));
    const done = await kiln.waitFor(submitted.id, 400_000);
    const jobs = done.jobs as unknown as JobView[];
    const logs = await kiln.logs(done.id);
    assert.deepEqual(
      jobs.map((j) => [j.key, j.environment.split('@')[0], j.conclusion]),
      [
        ['test (3.9)', 'python-3.9', 'success'],
        ['test (3.11)', 'python-3.11', 'success'],
        ['test (3.13)', 'python-3.13', 'success'],
      ],
      logs,
    );
    for (const v of ['3.9', '3.11', '3.13'])
      assert.match(logs, new RegExp(`\\[test \\(${v.replace('.', '\\.')}\\)\\].*python ${v.replace('.', '\\.')}\\.\\d+`));
    assert.match(logs, /1 passed/);
    const seen = (await up.allowed.requests()).length - before;
    const reported = jobs.reduce((a, j) => a + j.egress!.hosts.filter((h) => h.allowed).reduce((b, h) => b + h.requests, 0), 0);
    assert.equal(reported, seen, 'the three reports hold every request the index saw during the run');
    assert.doesNotMatch(output(), /egress (report|activity) of/, 'every report was read');
  });
});
