/**
 * Table-driven tests over test/fixtures/workflows: each `name.yml` is planned with a fake environment
 * resolver and compared with `name.expected.json`, which holds either
 *   { "plan": <summary> }                              for a workflow that plans, or
 *   { "problems": [{ path, line, message }] }          where message is a substring of the actual one;
 * optionally with "options" (PlanOptions overrides) and "padBytes" (comment bytes appended to the text).
 * KILN_UPDATE_FIXTURES=1 rewrites the expected files from the actual results (review the diff!).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../config/config';
import { WorkflowError, type PlanOptions, type RunPlan, type WorkflowProblem } from './model';
import { testOptions } from '../../test/fixtures/plan-options';
import { parseWorkflow } from './parse';
import { defaultStepName, planFromYaml, planWorkflow } from './plan';
import { WORKFLOW_LIMITS } from './safe-yaml';
import { parseRules } from '../common/egress-rules';

const FIXTURES = path.join(process.env.KILN_ROOT ?? projectRoot(), 'test', 'fixtures', 'workflows');

/** The parts of a plan the fixtures pin down; defaults are left out to keep the files readable. */
function summarize(plan: RunPlan): unknown {
  return {
    workflowName: plan.workflowName,
    jobs: plan.jobs.map((j) => ({
      key: j.key,
      ...(j.name !== j.key && { name: j.name }),
      environment: `${j.environment.name}@${j.environment.version}`,
      ...(j.needs.length > 0 && { needs: j.needs }),
      ...(j.matrix && { matrix: j.matrix }),
      ...(j.strategy && { strategy: j.strategy }),
      ...(j.if !== null && { if: j.if }),
      ...(Object.keys(j.env).length > 0 && { env: j.env }),
      ...(j.timeoutMinutes !== testOptions.defaultTimeoutMinutes && { timeoutMinutes: j.timeoutMinutes }),
      ...(j.continueOnError && { continueOnError: true }),
      ...(Object.keys(j.limits).length > 0 && { limits: j.limits }),
      ...(j.verdict && { verdict: j.verdict }),
      ...(j.deferred && { deferred: { job: (j.deferred.job as { id: string }).id, lines: Object.keys(j.deferred.lines).length } }),
      steps: j.steps.map((s) => ({
        name: s.name,
        shell: s.shell,
        ...(s.uses && { uses: s.uses }),
        ...(s.id !== null && { id: s.id }),
        ...(Object.keys(s.with).length > 0 && { with: s.with }),
        ...(s.workingDirectory !== null && { workingDirectory: s.workingDirectory }),
        ...(Object.keys(s.env).length > 0 && { env: s.env }),
        ...(s.if !== null && { if: s.if }),
        ...(s.continueOnError !== false && { continueOnError: s.continueOnError }),
        ...(s.timeoutMinutes !== null && { timeoutMinutes: s.timeoutMinutes }),
      })),
    })),
  };
}

interface Expected {
  plan?: unknown;
  problems?: WorkflowProblem[];
  options?: Partial<PlanOptions>;
  padBytes?: number;
}

async function outcome(text: string, options: PlanOptions): Promise<{ plan?: unknown; problems?: WorkflowProblem[] }> {
  try {
    return { plan: summarize(await planFromYaml(text, options)) };
  } catch (e) {
    if (!(e instanceof WorkflowError)) throw e;
    return { problems: e.problems };
  }
}

function pad(text: string, bytes: number | undefined): string {
  if (!bytes) return text;
  const line = `# ${'x'.repeat(98)}\n`;
  return text + line.repeat(Math.ceil(bytes / line.length));
}

const files = fs
  .readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.yml'))
  .sort();

test('there are at least 30 workflow fixtures, each with its expected result', () => {
  assert.ok(files.length >= 30, `only ${files.length} fixtures`);
  for (const f of files) assert.ok(fs.existsSync(path.join(FIXTURES, f.replace(/\.yml$/, '.expected.json'))), `${f} has no .expected.json`);
});

for (const file of files) {
  const expectedFile = path.join(FIXTURES, file.replace(/\.yml$/, '.expected.json'));
  test(`fixture ${file}`, async () => {
    const expected: Expected = fs.existsSync(expectedFile) ? JSON.parse(fs.readFileSync(expectedFile, 'utf8')) : {};
    const text = pad(fs.readFileSync(path.join(FIXTURES, file), 'utf8'), expected.padBytes);
    const actual = await outcome(text, { ...testOptions, ...expected.options });
    if (process.env.KILN_UPDATE_FIXTURES) {
      const { plan: _p, problems: _q, ...rest } = expected;
      fs.writeFileSync(expectedFile, `${JSON.stringify({ ...rest, ...actual }, null, 2)}\n`);
      return;
    }
    if (expected.plan !== undefined) {
      assert.deepEqual(actual.problems, undefined, `unexpected problems:\n${JSON.stringify(actual.problems, null, 2)}`);
      assert.deepEqual(actual.plan, expected.plan);
    } else {
      assert.ok(expected.problems, `${expectedFile} has neither plan nor problems`);
      assert.ok(actual.problems, `expected problems, got a plan:\n${JSON.stringify(actual.plan, null, 2)}`);
      assertProblems(actual.problems, expected.problems);
    }
  });
}

/** Same count and order; path and line exact; the expected message is a substring of the actual one. */
function assertProblems(actual: WorkflowProblem[], expected: WorkflowProblem[]): void {
  const shown = JSON.stringify(actual, null, 2);
  assert.equal(actual.length, expected.length, `expected ${expected.length} problems, got:\n${shown}`);
  expected.forEach((e, i) => {
    assert.equal(actual[i].path, e.path, `problem ${i} path; all:\n${shown}`);
    assert.equal(actual[i].line, e.line, `problem ${i} line; all:\n${shown}`);
    assert.ok(actual[i].message.includes(e.message), `problem ${i}: '${actual[i].message}' does not contain '${e.message}'`);
  });
}

// ---------------------------------------------------------------------------------------------
// A few direct tests of the API around the fixtures
// ---------------------------------------------------------------------------------------------

test('parseWorkflow returns the typed workflow with lines, and planWorkflow plans it', async () => {
  const wf = parseWorkflow('jobs:\n  a:\n    runs-on: python-3.9\n    steps:\n      - run: echo hi\n');
  assert.equal(wf.jobs[0].id, 'a');
  assert.equal(wf.jobs[0].runsOn, 'python-3.9');
  assert.equal(wf.lines['jobs.a.steps[0]'], 5);
  const plan = await planWorkflow(wf, testOptions);
  assert.deepEqual(plan.jobs[0].environment, { name: 'python-3.9', version: '20261201.1', image: 'kiln/python-3.9:20261201.1' });
  assert.equal(plan.jobs[0].steps[0].index, 0);
  assert.equal(plan.workflowName, 'workflow');
});

test('parseWorkflow throws a WorkflowError whose message lists path, line and what to fix', () => {
  assert.throws(
    () => parseWorkflow('jobs:\n  a:\n    runs-on: python-3.9\n    steps:\n      - run: echo hi\n        shell: fish\n'),
    (e: unknown) =>
      e instanceof WorkflowError && /jobs\.a\.steps\[0\]\.shell \(line 6\): unsupported shell 'fish': use one of bash, sh, python/.test(e.message),
  );
});

test('the size limit is checked before parsing', () => {
  const text = `jobs: {}\n${'#'.repeat(WORKFLOW_LIMITS.maxBytes)}`;
  assert.throws(
    () => parseWorkflow(text),
    (e: unknown) => e instanceof WorkflowError && e.problems.length === 1 && /more than the 262144 allowed/.test(e.message),
  );
});

test('hundreds of kilobytes of nesting are refused before the YAML parser recurses into them', () => {
  for (const text of ['['.repeat(200_000), '- '.repeat(100_000) + 'x', `a: ${'{b: '.repeat(50_000)}`]) {
    assert.throws(
      () => parseWorkflow(text),
      (e: unknown) => e instanceof WorkflowError && /nested deeper than 64 levels/.test(e.message),
    );
  }
});

test('default step names are as GitHub shows them', () => {
  assert.equal(defaultStepName({ run: '\n  make test  \nmore', usesRef: null }), 'Run make test');
  assert.equal(defaultStepName({ run: null, usesRef: 'actions/checkout@v4' }), 'Run actions/checkout@v4');
});

test('runs-on, uses and keys named like Object.prototype members are names, not properties', async () => {
  for (const label of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const yaml = `jobs:\n  a:\n    runs-on: ${label}\n    steps:\n      - run: echo hi\n`;
    await assert.rejects(planFromYaml(yaml, testOptions), (e: unknown) => {
      assert.ok(e instanceof WorkflowError, `${label}: ${String(e)}`);
      assert.match(e.message, new RegExp(`jobs\\.a\\.runs-on.*no environment or label named '${label}'`));
      return true;
    });
  }
  const uses = 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - uses: constructor@v1\n';
  await assert.rejects(planFromYaml(uses, testOptions), (e: unknown) => e instanceof WorkflowError && /constructor@v1/.test(e.message));
  const key = 'jobs:\n  a:\n    runs-on: python-3.11\n    constructor: 1\n    steps:\n      - run: echo\n';
  await assert.rejects(
    planFromYaml(key, testOptions),
    (e: unknown) => e instanceof WorkflowError && /jobs\.a\.constructor \(line 4\): unknown key 'constructor'/.test(e.message),
  );
  const top = 'toString: 1\njobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo\n';
  await assert.rejects(
    planFromYaml(top, testOptions),
    (e: unknown) => e instanceof WorkflowError && /^toString \(line 1\): unknown key 'toString'/.test(e.message),
  );
});

test("egress: a job may ask for none or for part of the server's list, never for more; bad entries are named", async () => {
  const egress = { allow: parseRules('pypi.org:443,*.pythonhosted.org:443', 'X'), internal: [] };
  const yaml = (value: string) => `on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    egress: ${value}\n    steps:\n      - run: pip install x\n`;
  const plan = async (value: string) => planFromYaml(yaml(value), { ...testOptions, egress });
  assert.equal((await plan('none')).jobs[0].egress, 'none');
  assert.deepEqual((await plan('[files.pythonhosted.org:443, PyPI.org:443]')).jobs[0].egress, ['files.pythonhosted.org:443', 'pypi.org:443']);
  assert.equal((await planFromYaml(yaml('none').replace('    egress: none\n', ''), { ...testOptions, egress })).jobs[0].egress, undefined);
  const problems = async (value: string) => {
    try {
      await plan(value);
    } catch (e) {
      if (e instanceof WorkflowError) return e.problems.map((p) => `${p.path}: ${p.message}`);
      throw e;
    }
    assert.fail(`egress: ${value} was accepted`);
  };
  assert.deepEqual(await problems('[evil.example.org:443]'), [
    "jobs.t.egress: evil.example.org:443 is not on this server's egress list (it allows pypi.org:443, *.pythonhosted.org:443)",
  ]);
  assert.deepEqual(await problems('[pypi.org]'), ['jobs.t.egress[0]: "pypi.org" has no port: write host:port, e.g. pypi.org:443']);
  assert.match((await problems('all'))[0], /^jobs\.t\.egress: 'egress' must be none or a list of host:port entries/);
});
