import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { makeTar, readTar } from '../fixtures/archives';
import { makeRepo, startGitServer, GitServer } from '../fixtures/git-server';
import { runKiln, startServer, tmpDir } from '../helpers';
import { Client, containersOf, followLines, RunView } from './runs-helpers';

const PROJECT: [string, string][] = [
  ['calc.py', 'def add(a, b):\n    return a + b\n'],
  ['test_calc.py', 'import numpy\nfrom calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\ndef test_numpy():\n    assert numpy.add(2, 3) == 5\n'],
];

const MATRIX_WORKFLOW = `
name: ci
on: push
jobs:
  test:
    strategy:
      matrix:
        python: ['3.9', '3.11', '3.13']
    runs-on: python-\${{ matrix.python }}
    steps:
      - uses: actions/checkout@v4
      - run: python3 --version
      - name: pytest
        run: python3 -m pytest -q
      - name: write an artifact
        run: |
          mkdir -p out
          head -c 200000 /dev/urandom > out/blob.bin
          sha256sum out/blob.bin
      - uses: actions/upload-artifact@v4
        with:
          name: blob-\${{ matrix.python }}
          path: out/
`;

describe('running jobs (real engine, real images, real Redis)', () => {
  const data = tmpDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  let git: GitServer;
  const gitRoot = tmpDir('kiln-git-');
  let kiln: Client;

  before(async () => {
    const images = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({
      KILN_DATA_DIR: data,
      KILN_QUEUE_PREFIX: `e2e-${process.pid}`,
      KILN_WORKER_CONCURRENCY: '2',
      KILN_GIT_SCHEMES: 'https,http',
      KILN_GIT_ALLOW_PRIVATE: 'true',
      KILN_LOG_LEVEL: 'warn',
    });
    kiln = new Client(server.url);
    git = await startGitServer(gitRoot);
  });
  after(async () => {
    await server?.stop();
    await git?.close();
  });

  test('a tarball with a 3-python pytest matrix succeeds; its artifacts download byte for byte', async () => {
    const run = await kiln.accepted(kiln.submitTarball(await makeTar([...PROJECT, ['.github/workflows/ci.yml', MATRIX_WORKFLOW]])));
    // Recorded before the response; a worker may already have taken it.
    assert.ok(['queued', 'in_progress'].includes(run.status), run.status);
    assert.deepEqual(
      run.jobs.map((j) => j.key),
      ['test (3.9)', 'test (3.11)', 'test (3.13)'],
    );
    const done = await kiln.waitFor(run.id);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    assert.deepEqual(
      done.jobs.map((j) => j.environment.split('@')[0]),
      ['python-3.9', 'python-3.11', 'python-3.13'],
    );
    for (const job of done.jobs) {
      const minor = job.key.match(/\((.+)\)/)![1];
      const log = await kiln.logs(run.id, job.id);
      assert.match(log, new RegExp(`#1  \\| Python ${minor.replace('.', '\\.')}\\.\\d+`), `${job.key} ran Python ${minor}`);
      assert.match(log, /#2  \| 2 passed/, `${job.key} pytest passed`);
      const sha = /#3  \| ([0-9a-f]{64}) {2}out\/blob\.bin/.exec(log)?.[1];
      assert.ok(sha, `${job.key} logged the blob's sha256`);
      const artifact = done.artifacts.find((a) => a.name === `blob-${minor}`);
      assert.ok(artifact, `artifact blob-${minor}`);
      const res = await kiln.fetch(artifact.url);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-tar');
      const files = await readTar(Buffer.from(await res.arrayBuffer()));
      const blob = files.get('blob.bin');
      assert.ok(blob, `blob.bin (out/ is the artifact's root) in ${[...files.keys()].join(', ')}`);
      assert.equal(blob.length, 200000);
      assert.equal(createHash('sha256').update(blob).digest('hex'), sha, 'the downloaded bytes are what the job wrote');
      assert.deepEqual(await containersOf(job.id), [], 'no container left');
    }
  });

  test('upload-artifact reads from the host while nothing of the job runs, by tar in the sandbox otherwise: the same bytes either way', async () => {
    const workflow = `jobs:
  both:
    runs-on: python-3.11
    steps:
      - run: |
          mkdir -p out/sub && echo one > out/a.txt && : > out/empty
          head -c 300000 /dev/urandom > out/sub/b.bin && chmod 755 out/sub/b.bin
          ln -s /etc/passwd out/link && ln -s out outlink
      - uses: actions/upload-artifact@v4
        with: { name: from-host, path: "out/\\nmissing.txt" }
      - uses: actions/upload-artifact@v4
        with: { name: through-link, path: outlink/a.txt }
      - run: setsid sleep 60 > /dev/null 2>&1 &
      - uses: actions/upload-artifact@v4
        with: { name: by-tar, path: "out/\\nmissing.txt" }
`;
    const collections = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const n = (how: string) => Number(new RegExp(`^kiln_artifact_collections_total\\{how="${how}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      return { host: n('host'), exec: n('exec') };
    };
    const before = await collections();
    const run = await kiln.accepted(kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const done = await kiln.waitFor(run.id);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    const after = await collections();
    assert.deepEqual(
      { host: after.host - before.host, exec: after.exec - before.exec },
      { host: 1, exec: 2 },
      'from-host read from the host; through-link (a path through a symlink) and by-tar (a process left running) by tar',
    );
    const download = async (name: string) => {
      const a = done.artifacts.find((x) => x.name === name);
      assert.ok(a, `artifact ${name}`);
      const res = await kiln.fetch(a.url);
      assert.equal(res.status, 200);
      return Buffer.from(await res.arrayBuffer());
    };
    const fromHost = await download('from-host');
    assert.ok(fromHost.equals(await download('by-tar')), 'the two routes wrote the same tar');
    const files = await readTar(fromHost);
    // Two paths: their common folder, the workspace, is the root.
    assert.deepEqual([...files.keys()].sort(), ['out/a.txt', 'out/empty', 'out/sub/b.bin']);
    assert.equal(files.get('out/a.txt')?.toString(), 'one\n');
    assert.equal(files.get('out/sub/b.bin')?.length, 300000);
    assert.deepEqual(
      [...(await readTar(await download('through-link'))).entries()].map(([f, c]) => [f, c.toString()]),
      [['a.txt', 'one\n']],
      'one file alone: stored without its folder',
    );
    const log = await kiln.logs(run.id, done.jobs[0].id);
    for (const step of [1, 4]) {
      assert.match(
        log,
        new RegExp(`#${step} ## warning: (tar: )?missing\\.txt: Cannot stat: No such file or directory`),
        `step ${step} names the missing path`,
      );
      assert.match(log, new RegExp(`#${step} ## warning: 1 symbolic link\\(s\\) were left out of the artifact`));
      assert.match(log, new RegExp(`#${step} ## artifact '(from-host|by-tar)' uploaded: 3 file\\(s\\), 300004 bytes`));
    }
  });

  test("a failing test fails the run, with pytest's output in the step log", async () => {
    const failing: [string, string][] = [PROJECT[0], ['test_calc.py', 'from calc import add\n\ndef test_add():\n    assert add(2, 2) == 5\n']];
    const workflow = 'jobs:\n  test:\n    runs-on: python-3.11\n    steps:\n      - run: python3 -m pytest -q\n      - run: echo never\n';
    const run = await kiln.accepted(kiln.submitTarball(await makeTar([...failing, ['.kiln.yml', workflow]])));
    const done = await kiln.waitFor(run.id);
    assert.equal(done.conclusion, 'failure');
    const [job] = done.jobs;
    assert.equal(job.steps[0].conclusion, 'failure');
    assert.equal(job.steps[0].exitCode, 1);
    assert.equal(job.steps[1].conclusion, 'skipped');
    const log = await kiln.logs(run.id, job.id);
    assert.match(log, /assert 4 == 5/);
    assert.match(log, /1 failed/);
  });

  test('a repository URL runs at the requested commit sha', async () => {
    const kilnYml = 'jobs:\n  show:\n    runs-on: python-3.11\n    steps:\n      - run: cat version.txt; echo "sha=$GITHUB_SHA"\n';
    const { shas } = await makeRepo(gitRoot, 'demo', [{ 'version.txt': 'first commit\n', '.kiln.yml': kilnYml }, { 'version.txt': 'second commit\n' }]);
    const run = await kiln.accepted(kiln.submitJson({ repo: git.repoUrl('demo'), ref: shas[0] }));
    const done = await kiln.waitFor(run.id);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    const log = await kiln.logs(run.id);
    assert.match(log, /\| first commit/);
    assert.doesNotMatch(log, /second commit/);
    assert.match(log, new RegExp(`sha=${shas[0]}`));
  });

  test('hostile steps are stopped and reported as such; the API stays responsive; no container remains', async () => {
    const workflow = `
jobs:
  forever:
    runs-on: python-3.11
    steps:
      - run: while true; do :; done
        timeout-minutes: 0.05
  memory:
    runs-on: python-3.11
    steps:
      - run: python3 -c "b = bytearray(10 * 1024 ** 3)"
  forkbomb:
    runs-on: python-3.11
    steps:
      - run: ':(){ :|:& };:'
      - run: echo unreachable
  disk:
    runs-on: python-3.11
    steps:
      - run: head -c 1073741824 /dev/zero > /workspace/big
      - run: echo "the step above failed"
        if: failure()
`;
    const run = await kiln.accepted(kiln.submitJson({ command: 'true' }));
    await kiln.waitFor(run.id);
    const hostile = await kiln.accepted(kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    // While the hostile jobs run, the API keeps answering.
    let answered = 0;
    let done: RunView | undefined;
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      const t0 = Date.now();
      const health = await fetch(`${server.url}/api/v1/health`, { signal: AbortSignal.timeout(5000) });
      assert.ok(health.status === 200, `health answered ${health.status} after ${Date.now() - t0} ms`);
      answered++;
      done = await kiln.run(hostile.id);
      if (done.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(done && done.status === 'completed', 'the hostile run finished');
    assert.ok(answered > 3, 'the API was polled while the jobs ran');
    assert.equal(done.conclusion, 'failure');
    const job = (id: string) => done!.jobs.find((j) => j.key === id)!;
    assert.equal(job('forever').steps[0].reason, 'timeout');
    assert.equal(job('forever').steps[0].conclusion, 'failure');
    assert.equal(job('memory').steps[0].reason, 'oom-killed');
    assert.equal(job('forkbomb').steps[0].reason, 'pids-limit');
    assert.equal(job('forkbomb').steps[1].conclusion, 'skipped');
    assert.equal(job('disk').steps[0].conclusion, 'failure');
    assert.equal(job('disk').steps[1].conclusion, 'success');
    const diskLog = await kiln.logs(hostile.id, job('disk').id);
    assert.match(diskLog, /No space left on device/);
    assert.match(await kiln.logs(hostile.id, job('memory').id), /killed for lack of memory/);
    assert.match(await kiln.logs(hostile.id, job('forever').id), /exceeded its time limit of 3 s/);
    for (const j of done.jobs) assert.deepEqual(await containersOf(j.id), [], `no container left for ${j.key}`);
  });

  test('cancel stops a running run within seconds', async () => {
    const run = await kiln.accepted(kiln.submitJson({ command: 'echo started; sleep 300' }));
    await kiln.waitFor(run.id, 60_000, (r) => r.jobs[0].steps[0].outcome === null && r.jobs[0].status === 'in_progress');
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const res = await kiln.fetch(`/api/v1/runs/${run.id}/cancel`, { method: 'POST' });
    assert.equal(res.status, 202);
    const done = await kiln.waitFor(run.id, 30_000);
    const took = Date.now() - t0;
    assert.equal(done.conclusion, 'cancelled');
    assert.equal(done.jobs[0].conclusion, 'cancelled');
    assert.equal(done.jobs[0].steps[0].reason, 'cancelled');
    assert.ok(took < 15_000, `cancelled within seconds (${took} ms)`);
    assert.deepEqual(await containersOf(done.jobs[0].id), []);
  });

  test('logs stream live to followers; a late follower gets everything from the start', async () => {
    const run = await kiln.accepted(kiln.submitJson({ command: 'for i in 1 2 3 4 5 6; do echo line-$i; sleep 1; done' }));
    const early = followLines(kiln, `/api/v1/runs/${run.id}/logs?follow=1`);
    const firstSeen = await early.waitFor('line-1', 60_000);
    const statusThen = (await kiln.run(run.id)).status;
    assert.equal(statusThen, 'in_progress', 'line-1 arrived while the job was still running');
    void firstSeen;
    const late = followLines(kiln, `/api/v1/runs/${run.id}/logs?follow=1`);
    const [a, b] = await Promise.all([early.all, late.all]);
    for (const lines of [a, b]) {
      assert.deepEqual(
        lines.filter((l) => l.startsWith('line-')),
        ['line-1', 'line-2', 'line-3', 'line-4', 'line-5', 'line-6'],
      );
    }
  });

  test('bad input is refused with 4xx naming what to fix, and nothing is queued', async () => {
    const before = (await (await kiln.fetch('/api/v1/runs?limit=500')).json()) as unknown[];
    const traversal = await kiln.submitTarball(
      await makeTar([
        ['../../etc/evil', 'x'],
        ['.kiln.yml', 'jobs: {}'],
      ]),
    );
    assert.equal(traversal.status, 400);
    assert.match(((await traversal.json()) as { message: string }).message, /entry '\.\.\/\.\.\/etc\/evil': path leaves the workspace/);
    const uses = await kiln.submitTarball(await makeTar([['.kiln.yml', 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - uses: docker://alpine\n']]));
    assert.equal(uses.status, 400);
    const body = (await uses.json()) as { message: string; problems: { path: string; line: number }[] };
    assert.match(body.message, /docker:\/\/alpine/);
    assert.deepEqual(
      body.problems.map((p) => [p.path, p.line]),
      [
        ['(workflow)', null],
        ['jobs.a.steps[0].uses', 5],
      ],
    );
    const noWorkflow = await kiln.submitTarball(await makeTar([['a.py', 'print(1)']]));
    assert.equal(noWorkflow.status, 400);
    assert.match(((await noWorkflow.json()) as { message: string }).message, /no \.kiln\.yml or \.github\/workflows/);
    const unknownEnv = await kiln.submitJson({ command: 'true', environment: 'ruby-3' });
    assert.equal(unknownEnv.status, 400);
    assert.match(((await unknownEnv.json()) as { message: string }).message, /no environment or label named 'ruby-3'/);
    const badRepo = await kiln.submitJson({ repo: '--upload-pack=touch /tmp/pwned', ref: 'main' });
    assert.equal(badRepo.status, 400);
    const garbage = await kiln.submitTarball(Buffer.from('this is not a tarball at all'));
    assert.equal(garbage.status, 400);
    // workflow_dispatch inputs: their shape (before any clone), then against the workflow.
    const inputsRefused = async (res: Promise<Response>, re: RegExp) => {
      const r = await res;
      const b = (await r.json()) as { message: string | string[] };
      assert.equal(r.status, 400, JSON.stringify(b));
      assert.match(String(b.message), re);
    };
    const repo = 'https://git.invalid/team/project.git';
    await inputsRefused(kiln.submitJson({ repo, ref: 'main', inputs: { '1st': 'x' } }), /inputs: '1st' is not an input name/);
    await inputsRefused(kiln.submitJson({ repo, ref: 'main', inputs: { a: { b: 1 } } }), /inputs\.a: give a string, number or boolean/);
    await inputsRefused(kiln.submitJson({ repo, ref: 'main', inputs: { a: 'x'.repeat(64 * 1024 + 1) } }), /inputs\.a: at most 64 KiB/);
    await inputsRefused(kiln.submitJson({ command: 'true', inputs: { a: 'x' } }), /inputs do not go with command/);
    const declared = await makeTar([
      [
        '.kiln.yml',
        'on:\n  workflow_dispatch:\n    inputs:\n      n: { type: number }\njobs:\n  a:\n    runs-on: python-3.11\n    steps: [ { run: "true" } ]\n',
      ],
    ]);
    await inputsRefused(kiln.submitTarball(declared, { inputs: 'n=1' }), /the multipart field holds a JSON object/);
    const typed = await kiln.submitTarball(declared, { inputs: JSON.stringify({ n: 'ten', m: '1' }) });
    const typedBody = (await typed.json()) as { message: string; problems: { path: string }[] };
    assert.equal(typed.status, 400);
    assert.match(typedBody.message, /^the inputs do not fit the workflow \.kiln\.yml:\ninputs\.m: the workflow declares no input 'm' \(its inputs: n\)/);
    assert.deepEqual(
      typedBody.problems.map((p) => p.path),
      ['inputs.m', 'inputs.n'],
    );
    const afterRuns = (await (await kiln.fetch('/api/v1/runs?limit=500')).json()) as unknown[];
    assert.equal(afterRuns.length, before.length, 'no run was recorded for bad input');
  });
});
