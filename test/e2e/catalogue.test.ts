import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runKiln, startServer, tmpDir } from '../helpers';

/**
 * Runs a command inside an image the way a user would check it: plain docker, no network.
 * Asynchronous on purpose: blocking the event loop for seconds lets the server close an idle
 * keep-alive socket that fetch then reuses ("other side closed").
 */
async function inImage(image: string, script: string): Promise<string> {
  const { stdout } = await execFileAsync('docker', ['run', '--rm', '--network', 'none', image, 'sh', '-c', script], { encoding: 'utf8', timeout: 120_000 });
  return stdout.trim();
}

/** The environments' lines of `kiln images` (it also reports the egress gateway's image, which is not an environment). */
function parseImagesOutput(stdout: string): Map<string, { action: string; id: string }> {
  const out = new Map<string, { action: string; id: string }>();
  for (const line of stdout.trim().split('\n')) {
    const [env, action, , id] = line.split('\t');
    if (env.startsWith('egress-gateway@')) continue;
    out.set(env, { action, id });
  }
  return out;
}

interface Summary {
  name: string;
  latest: string;
  python: string;
  pypy: { python: string; version: string } | null;
  image: string;
  os: string;
  default: boolean;
}

describe('the published catalogue, measured in real images (real engine)', () => {
  const data = tmpDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  let first: Map<string, { action: string; id: string }>;

  before(async () => {
    const r = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    first = parseImagesOutput(r.stdout);
    server = await startServer({ KILN_DATA_DIR: data });
  });
  after(async () => server?.stop());

  test('kiln images publishes every environment version', () => {
    assert.deepEqual([...first.keys()].sort(), [
      'pypy-3.11@20261207.1',
      'pypy-3.9@20261207.1',
      'python-3.11@20261128.1',
      'python-3.11@20261207.1',
      'python-3.13@20261128.1',
      'python-3.13@20261207.1',
      'python-3.14@20261207.1',
      'python-3.9@20261128.1',
      'python-3.9@20261207.1',
    ]);
    for (const [env, o] of first) assert.ok(['built', 'probed'].includes(o.action), `${env}: a fresh catalogue measures every image (${o.action})`);
  });

  test('a second kiln images rebuilds and re-measures nothing', async () => {
    const r = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(r.code, 0, r.stderr);
    for (const [env, o] of parseImagesOutput(r.stdout)) {
      assert.equal(o.action, 'cached', `${env} cached`);
      assert.equal(o.id, first.get(env)!.id, `${env} same image`);
    }
  });

  test('GET /api/v1/environments: python (or PyPy) and numpy versions, and the workflow tools, equal what runs inside each image', async () => {
    const res = await fetch(`${server.url}/api/v1/environments`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { default: string; environments: Summary[] };
    assert.equal(body.default, 'python-3.11');
    const names = body.environments.map((e) => e.name).sort();
    assert.deepEqual(names, ['pypy-3.11', 'pypy-3.9', 'python-3.11', 'python-3.13', 'python-3.14', 'python-3.9']);
    const expectOs: Record<string, RegExp> = {
      'python-3.9': /Debian GNU\/Linux 11/,
      'python-3.11': /Debian GNU\/Linux 12/,
      'python-3.13': /Debian GNU\/Linux 13/,
      'python-3.14': /Debian GNU\/Linux forky/,
      'pypy-3.9': /Debian GNU\/Linux 12/,
      'pypy-3.11': /Debian GNU\/Linux 13/,
    };
    for (const env of body.environments) {
      const minor = env.name.replace(/^[a-z]+-/, '');
      assert.match(env.os, expectOs[env.name]);
      const tools = await inImage(env.image, 'tox --version >/dev/null && nox --version >/dev/null 2>&1 && pre-commit --version');
      assert.match(tools, /^pre-commit \d+\.\d+/, `${env.name}: tox, nox and pre-commit run`);
      if (env.name.startsWith('pypy-')) {
        assert.ok(env.pypy, `${env.name} reports its PyPy`);
        const measured = await inImage(env.image, `pypy3 -c 'import platform, sys; print(platform.python_version(), "%d.%d.%d" % sys.pypy_version_info[:3])'`);
        assert.equal(`${env.pypy.python} ${env.pypy.version}`, measured, `${env.name}: report vs pypy3`);
        assert.ok(env.pypy.python.startsWith(`${minor}.`), `${env.name} is PyPy for Python ${minor}`);
        continue;
      }
      assert.equal(env.pypy, null, `${env.name} has no PyPy`);
      const pyVersion = await inImage(env.image, 'python3 --version');
      assert.equal(`Python ${env.python}`, pyVersion, `${env.name}: report vs python3 --version`);
      assert.ok(env.python.startsWith(`${minor}.`), `${env.name} has Python ${minor}`);
      const report = (await (await fetch(`${server.url}/api/v1/environments/${env.name}/${env.latest}`)).json()) as {
        pythonPackages: { name: string; version: string }[];
        debPackages: { name: string }[];
      };
      const numpy = report.pythonPackages.find((p) => p.name === 'numpy');
      assert.ok(numpy, `${env.name} reports numpy`);
      assert.equal(numpy.version, await inImage(env.image, `python3 -c 'import numpy; print(numpy.__version__)'`), `${env.name}: numpy`);
      for (const mod of ['scipy', 'pandas', 'matplotlib', 'pytest', 'hypothesis']) {
        const reported = report.pythonPackages.find((p) => p.name.toLowerCase() === mod);
        assert.ok(reported, `${env.name} reports ${mod}`);
      }
      const dpkgCount = Number(await inImage(env.image, `dpkg-query -W -f='\${Status}\\n' | grep -c ' installed$'`));
      assert.equal(report.debPackages.length, dpkgCount, `${env.name}: every installed Debian package is reported`);
      assert.equal(await inImage(env.image, 'id -u'), '1001', `${env.name}: jobs run as a non-root user`);
    }
  });

  test('the Markdown report renders what was measured', async () => {
    const res = await fetch(`${server.url}/api/v1/environments/python-3.13/latest?format=md`);
    assert.equal(res.status, 200);
    const md = await res.text();
    assert.match(md, /^# python-3\.13 /);
    assert.match(md, /\*\*Python\*\*: 3\.13\./);
    assert.match(md, /\| numpy \| \d+\.\d+/);
  });

  test('health is 200 with the real engine, Redis and SQLite', async () => {
    const res = await fetch(`${server.url}/api/v1/health`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { checks: { engine: { detail: string } } };
    assert.match(body.checks.engine.detail, /^Docker \S+ \(API 1\.\d+\), runtimes (\S+, )*runc(, \S+)*; jobs run under runc$/);
  });
});

describe('building new environment versions (real engine)', () => {
  const envs = tmpDir('kiln-envs-');
  const data = tmpDir();
  const manifest = (name: string, version: string, apt: string[]) => {
    fs.mkdirSync(path.join(envs, name), { recursive: true });
    fs.writeFileSync(
      path.join(envs, name, `${version}.yaml`),
      `name: ${name}\nversion: "${version}"\nstatus: beta\nlabels: [${name}]\nbase: bookworm\napt: [${apt.join(', ')}]\n`,
    );
  };

  before(() => {
    // Start from no images, so the build path itself is exercised every run.
    for (const ref of ['kiln/e2e-tiny:20261128.1', 'kiln/e2e-tiny:20261128.2', 'kiln/e2e-broken:20261128.1']) {
      try {
        execFileSync('docker', ['image', 'rm', '-f', ref], { stdio: 'ignore' });
      } catch {
        /* absent */
      }
    }
  });

  test('two versions build, and the diff shows the package that was added', async () => {
    manifest('e2e-tiny', '20261128.1', ['make']);
    manifest('e2e-tiny', '20261128.2', ['make', 'jq']);
    const env = { KILN_DATA_DIR: data, KILN_ENVIRONMENTS_DIR: envs, KILN_LOG_LEVEL: 'warn' };
    const r = await runKiln(['images'], env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(
      [...parseImagesOutput(r.stdout)].map(([k, v]) => `${k} ${v.action}`),
      ['e2e-tiny@20261128.1 built', 'e2e-tiny@20261128.2 built'],
    );
    const again = await runKiln(['images'], env);
    assert.deepEqual(
      [...parseImagesOutput(again.stdout)].map(([k, v]) => `${k} ${v.action}`),
      ['e2e-tiny@20261128.1 cached', 'e2e-tiny@20261128.2 cached'],
    );

    const server = await startServer({ KILN_DATA_DIR: data, KILN_ENVIRONMENTS_DIR: envs, KILN_DEFAULT_ENVIRONMENT: 'e2e-tiny' });
    try {
      const res = await fetch(`${server.url}/api/v1/environments/e2e-tiny/diff?from=20261128.1&to=20261128.2`);
      assert.equal(res.status, 200);
      const d = (await res.json()) as { debPackages: { added: { name: string; version: string }[]; removed: unknown[] } };
      const added = d.debPackages.added.map((p) => p.name);
      assert.ok(added.includes('jq'), `jq added: ${added.join(', ')}`);
      assert.deepEqual(d.debPackages.removed, []);
      const jq = d.debPackages.added.find((p) => p.name === 'jq')!;
      assert.equal(jq.version, await inImage('kiln/e2e-tiny:20261128.2', `dpkg-query -W -f='\${Version}' jq`));
      const pkg = (await (await fetch(`${server.url}/api/v1/environments?package=jq`)).json()) as { environments: { name: string; latest: string }[] };
      assert.deepEqual(
        pkg.environments.map((e) => `${e.name}@${e.latest}`),
        ['e2e-tiny@20261128.2'],
      );
    } finally {
      await server.stop();
    }
  });

  test('a declared package that the image lacks fails the build, naming it, and is not published', async () => {
    // `libc-dev` is a virtual package with one provider: apt installs libc6-dev instead, so no
    // package named libc-dev exists in the image. Only the probe can tell.
    manifest('e2e-broken', '20261128.1', ['libc-dev']);
    const brokenOnly = tmpDir('kiln-envs-');
    fs.cpSync(path.join(envs, 'e2e-broken'), path.join(brokenOnly, 'e2e-broken'), { recursive: true });
    const brokenData = tmpDir();
    const r = await runKiln(['images'], { KILN_DATA_DIR: brokenData, KILN_ENVIRONMENTS_DIR: brokenOnly, KILN_LOG_LEVEL: 'warn' });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /e2e-broken\/20261128\.1\.yaml: the image kiln\/e2e-broken:20261128\.1 does not hold what the manifest declares: Debian package libc-dev is declared but not installed in the image/,
    );
    const server = await startServer({ KILN_DATA_DIR: brokenData, KILN_ENVIRONMENTS_DIR: brokenOnly });
    try {
      const res = await fetch(`${server.url}/api/v1/environments/e2e-broken`);
      assert.equal(res.status, 404);
    } finally {
      await server.stop();
    }
  });

  test('a bad manifest stops kiln images with the file and field named', async () => {
    const bad = tmpDir('kiln-envs-');
    fs.mkdirSync(path.join(bad, 'oops'));
    fs.writeFileSync(
      path.join(bad, 'oops', '20261128.1.yaml'),
      'name: oops\nversion: "20261128.1"\nstatus: ga\nlabels: [oops]\nbase: bookworm\napt: ["--force-yes"]\n',
    );
    const r = await runKiln(['images'], { KILN_DATA_DIR: tmpDir(), KILN_ENVIRONMENTS_DIR: bad, KILN_LOG_LEVEL: 'warn' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /oops\/20261128\.1\.yaml: apt: each apt entry must be a Debian package name/);
  });
});
