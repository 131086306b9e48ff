import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config';

test('defaults: SQLite under ./data, local Redis, port 3000, python-3.11', () => {
  const c = loadConfig({}, '/srv/kiln');
  assert.equal(c.port, 3000);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.dataDir, '/srv/kiln/data');
  assert.deepEqual(c.database, { kind: 'sqlite', file: '/srv/kiln/data/kiln.sqlite' });
  assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(c.defaultEnvironment, 'python-3.11');
});

test('DATABASE_URL selects PostgreSQL', () => {
  const c = loadConfig({ DATABASE_URL: 'postgres://kiln@db/kiln' });
  assert.deepEqual(c.database, { kind: 'postgres', url: 'postgres://kiln@db/kiln' });
});

const bad: [Record<string, string>, string, RegExp][] = [
  [{ KILN_PORT: 'abc' }, 'KILN_PORT', /KILN_PORT="abc": .*integer/],
  [{ KILN_PORT: '70000' }, 'KILN_PORT', /KILN_PORT="70000": .*65535/],
  [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', /DATABASE_URL="mysql:\/\/x": must be a postgres/],
  [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL', /REDIS_URL="localhost:6379": must be a redis/],
  [{ KILN_LOG_LEVEL: 'loud' }, 'KILN_LOG_LEVEL', /KILN_LOG_LEVEL="loud"/],
  [{ KILN_DEFAULT_ENVIRONMENT: 'Python 3' }, 'KILN_DEFAULT_ENVIRONMENT', /KILN_DEFAULT_ENVIRONMENT="Python 3": must be an environment name/],
  [{ KILN_RUNTIME: 'kata' }, 'KILN_RUNTIME', /KILN_RUNTIME="kata": must be runc .* or runsc/],
  [{ KILN_RUNSC_ENVIRONMENTS: 'python-3.13;rm' }, 'KILN_RUNSC_ENVIRONMENTS', /KILN_RUNSC_ENVIRONMENTS=.*comma-separated list/],
  [{ KILN_WORKER_LABELS: 'runsc,GPU' }, 'KILN_WORKER_LABELS', /KILN_WORKER_LABELS=.*comma-separated list of labels/],
  [{ KILN_ENVIRONMENT_LABELS: 'python-3.13' }, 'KILN_ENVIRONMENT_LABELS', /KILN_ENVIRONMENT_LABELS=.*environment=label pairs/],
  [{ KILN_ENVIRONMENT_LABELS: 'python-3.13=runsc,python-3.13=gpu' }, 'KILN_ENVIRONMENT_LABELS', /python-3\.13 is given two labels \(runsc, gpu\)/],
];
for (const [env, variable, message] of bad) {
  test(`a bad ${variable} stops start-up naming the variable`, () => {
    assert.throws(
      () => loadConfig(env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
    );
  });
}

test('every bad variable is named at once', () => {
  assert.throws(
    () => loadConfig({ KILN_PORT: 'x', REDIS_URL: 'y' }),
    (e: unknown) => {
      const m = (e as Error).message;
      return m.includes('KILN_PORT') && m.includes('REDIS_URL');
    },
  );
});

test('ubuntu-latest follows the default environment; KILN_LABEL_MAP adds or overrides', () => {
  assert.equal(loadConfig({ KILN_DEFAULT_ENVIRONMENT: 'python-3.13' }).labelMap['ubuntu-latest'], 'python-3.13');
  const c = loadConfig({ KILN_LABEL_MAP: 'ubuntu-latest=python-3.9,py=python-3.11' });
  assert.equal(c.labelMap['ubuntu-latest'], 'python-3.9');
  assert.equal(c.labelMap.py, 'python-3.11');
});

test('job limits: sizes parse, and a default above its maximum stops start-up', () => {
  assert.equal(loadConfig({ KILN_JOB_MEMORY: '512m' }).jobs.memoryBytes, 512 * 1024 * 1024);
  assert.throws(() => loadConfig({ KILN_JOB_MEMORY: '16g' }), /KILN_JOB_MEMORY: the default is above KILN_JOB_MEMORY_MAX/);
  assert.throws(() => loadConfig({ KILN_JOB_WORKSPACE: 'lots' }), /KILN_JOB_WORKSPACE="lots": must be a size/);
});

test('runtime: runc by default; KILN_RUNTIME for all jobs, KILN_RUNSC_ENVIRONMENTS for some', () => {
  assert.equal(loadConfig({}).runtime, 'runc');
  assert.deepEqual(loadConfig({}).runscEnvironments, []);
  const c = loadConfig({ KILN_RUNTIME: 'runsc', KILN_RUNSC_ENVIRONMENTS: 'python-3.13,python-3.9' });
  assert.equal(c.runtime, 'runsc');
  assert.deepEqual(c.runscEnvironments, ['python-3.13', 'python-3.9']);
});

test('worker labels: none by default; KILN_WORKER_LABELS and KILN_ENVIRONMENT_LABELS parse', () => {
  assert.deepEqual(loadConfig({}).workerLabels, []);
  assert.deepEqual(loadConfig({}).environmentLabels, {});
  const c = loadConfig({ KILN_WORKER_LABELS: 'runsc,gpu,runsc', KILN_ENVIRONMENT_LABELS: 'python-3.13=runsc,python-3.9=old' });
  assert.deepEqual(c.workerLabels, ['runsc', 'gpu']);
  assert.deepEqual(c.environmentLabels, { 'python-3.13': 'runsc', 'python-3.9': 'old' });
  assert.equal(loadConfig({ KILN_SWEEP_SECONDS: '3' }).sweepSeconds, 3);
  assert.equal(loadConfig({}).sweepSeconds, 300);
});

test('outbound policy: https and public hosts by default; KILN_OUTBOUND_* or their former names KILN_GIT_*', () => {
  assert.deepEqual(loadConfig({}).outbound, { allowedSchemes: ['https'], allowPrivateHosts: false });
  const now = loadConfig({ KILN_OUTBOUND_SCHEMES: 'https,http', KILN_OUTBOUND_ALLOW_PRIVATE: 'true' });
  assert.deepEqual(now.outbound, { allowedSchemes: ['https', 'http'], allowPrivateHosts: true });
  assert.equal(now.git, now.outbound, 'git clones follow the same policy');
  assert.deepEqual(loadConfig({ KILN_GIT_SCHEMES: 'https,http', KILN_GIT_ALLOW_PRIVATE: 'true' }).outbound, {
    allowedSchemes: ['https', 'http'],
    allowPrivateHosts: true,
  });
  assert.deepEqual(loadConfig({ KILN_GIT_SCHEMES: 'https,http', KILN_OUTBOUND_SCHEMES: 'https,http' }).outbound.allowedSchemes, ['https', 'http']);
  assert.throws(
    () => loadConfig({ KILN_GIT_ALLOW_PRIVATE: 'true', KILN_OUTBOUND_ALLOW_PRIVATE: 'false' }),
    /KILN_OUTBOUND_ALLOW_PRIVATE="false" and its former name KILN_GIT_ALLOW_PRIVATE="true" disagree; set only KILN_OUTBOUND_ALLOW_PRIVATE/,
  );
  assert.throws(() => loadConfig({ KILN_OUTBOUND_SCHEMES: 'https,ssh' }), /KILN_OUTBOUND_SCHEMES="https,ssh": must be a comma-separated list of https, http/);
});

test('KILN_QUOTA_REPOSITORIES: 100 by default', () => {
  assert.equal(loadConfig({}).quota.repositories, 100);
  assert.equal(loadConfig({ KILN_QUOTA_REPOSITORIES: '3' }).quota.repositories, 3);
  assert.throws(() => loadConfig({ KILN_QUOTA_REPOSITORIES: 'many' }), /KILN_QUOTA_REPOSITORIES="many"/);
});

test("fair share: unset, a user may run the worker's slots but one at once (at least 1); set, the variable wins", () => {
  assert.equal(loadConfig({}).quota.concurrentJobs, 1, 'the default worker has 2 slots: one user holds at most 1');
  assert.equal(loadConfig({ KILN_WORKER_CONCURRENCY: '1' }).quota.concurrentJobs, 1);
  assert.equal(loadConfig({ KILN_WORKER_CONCURRENCY: '8' }).quota.concurrentJobs, 7);
  assert.equal(loadConfig({ KILN_WORKER_CONCURRENCY: '8', KILN_QUOTA_CONCURRENT_JOBS: '8' }).quota.concurrentJobs, 8);
  assert.equal(loadConfig({ KILN_QUOTA_CONCURRENT_JOBS: '5' }).quota.concurrentJobs, 5);
});

test('egress: nothing by default (no network); the operator lists host:port rules; a bad rule or an internal wildcard is refused at start', () => {
  const none = loadConfig({}).egress;
  assert.deepEqual([none.allow, none.internal, none.networks, none.pipIndexUrl, none.runscRuntime], [[], [], [], null, 'runsc-egress']);
  assert.equal(none.maxBytes, 2 * 1024 ** 3);
  const c = loadConfig({
    KILN_EGRESS_ALLOW: 'pypi.org:443,*.pythonhosted.org:443',
    KILN_EGRESS_ALLOW_INTERNAL: 'devpi.corp:3141',
    KILN_EGRESS_MAX_BYTES: '512m',
    KILN_EGRESS_NETWORKS: 'mirrors,other',
    KILN_PIP_INDEX_URL: 'http://devpi.corp:3141/root/pypi/+simple/',
  }).egress;
  assert.deepEqual(
    c.allow.map((r) => `${r.kind} ${r.host}:${r.port}`),
    ['name pypi.org:443', 'wildcard pythonhosted.org:443'],
  );
  assert.deepEqual(
    c.internal.map((r) => r.host),
    ['devpi.corp'],
  );
  assert.equal(c.maxBytes, 512 * 1024 ** 2);
  assert.deepEqual(c.networks, ['mirrors', 'other']);
  assert.throws(() => loadConfig({ KILN_EGRESS_ALLOW: 'pypi.org' }), /KILN_EGRESS_ALLOW: "pypi.org" has no port/);
  assert.throws(() => loadConfig({ KILN_EGRESS_ALLOW_INTERNAL: '*.corp.example:443' }), /KILN_EGRESS_ALLOW_INTERNAL: \*\.corp\.example is a wildcard/);
  assert.throws(() => loadConfig({ KILN_PIP_INDEX_URL: 'https://user:pw@pypi.example/simple/' }), /KILN_PIP_INDEX_URL.*without credentials/);
});
