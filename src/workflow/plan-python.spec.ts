import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowError, type PlanOptions, type RunPlan } from './model';
import { planFromYaml } from './plan';
import { testOptions } from '../../test/fixtures/plan-options';

/** actions/setup-python at submission: where a job lands, and what is refused. */

async function plan(text: string, files: Record<string, string> = {}, extra: Partial<PlanOptions> = {}): Promise<RunPlan> {
  return planFromYaml(text, { ...testOptions, readFile: async (p) => (Object.hasOwn(files, p) ? files[p] : null), ...extra });
}

/** The refusal of a strict submission (a job setup-python cannot place is otherwise kept as not runnable: plan.spec.ts). */
async function problems(text: string, files: Record<string, string> = {}): Promise<string[]> {
  try {
    await plan(text, files, { strict: true });
  } catch (e) {
    if (e instanceof WorkflowError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  assert.fail('the workflow planned');
}

const placed = (r: RunPlan) => r.jobs.map((j) => [j.key, j.environment.name, j.placement ?? null]);

test('a python-version matrix on ubuntu-latest lands each job on the environment with that Python, saying why', async () => {
  const r = await plan(`
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        python-version: ['3.9', '3.11', '3.13', '3.x']
    steps:
      - uses: actions/setup-python@v5
        with:
          python-version: \${{ matrix.python-version }}
      - run: python3 --version
`);
  assert.deepEqual(placed(r), [
    [
      'test (3.9)',
      'python-3.9',
      'actions/setup-python asks for python-version 3.9: the job runs on python-3.9 (Python 3.9.2); ubuntu-latest alone would be python-3.11',
    ],
    ['test (3.11)', 'python-3.11', null],
    [
      'test (3.13)',
      'python-3.13',
      'actions/setup-python asks for python-version 3.13: the job runs on python-3.13 (Python 3.13.5); ubuntu-latest alone would be python-3.11',
    ],
    ['test (3.x)', 'python-3.11', null],
  ]);
  // The job's image is the chosen environment's.
  assert.equal(r.jobs[0].environment.image, 'kiln/python-3.9:20261201.1');
});

test('every label of the map is routed; a named environment never is', async () => {
  const r = await plan(`
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '3.9' }
`);
  assert.deepEqual(placed(r), [
    ['a', 'python-3.9', 'actions/setup-python asks for python-version 3.9: the job runs on python-3.9 (Python 3.9.2); ubuntu-24.04 alone would be python-3.13'],
  ]);
  assert.deepEqual(
    await problems(`
jobs:
  b:
    runs-on: python-3.11
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '3.13' }
`),
    ['jobs.b.steps[0].with.python-version: python-version 3.13 is not available in python-3.11 (Python 3.11.2); environments with it: python-3.13 (3.13.5)'],
  );
});

test('a version no environment has is refused for that job, naming the Pythons there are', async () => {
  assert.deepEqual(
    await problems(`
jobs:
  t:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        py: ['3.11', '3.10']
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '\${{ matrix.py }}' }
`),
    [
      'jobs.t.steps[0].with.python-version: python-version 3.10 is not available in python-3.11 (Python 3.11.2) for t (3.10); no published environment has it (there are: python-3.9 (3.9.2), python-3.11 (3.11.2), python-3.13 (3.13.5), python-3.14 (3.14.8), pypy-3.9 (PyPy 7.3.11, Python 3.9.16))',
    ],
  );
});

test('python-version-file: .python-version and pyproject.toml from the submitted source', async () => {
  const workflow = (file: string) => `
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version-file: '${file}'
`;
  assert.deepEqual(placed(await plan(workflow('.python-version'), { '.python-version': '3.13\n' })), [
    [
      'j',
      'python-3.13',
      'actions/setup-python asks for python-version-file .python-version (3.13): the job runs on python-3.13 (Python 3.13.5); ubuntu-latest alone would be python-3.11',
    ],
  ]);
  const pyproject = '[project]\nname = "demo"\nrequires-python = ">=3.12"\n';
  assert.deepEqual(placed(await plan(workflow('./pyproject.toml'), { 'pyproject.toml': pyproject })), [
    [
      'j',
      'python-3.13',
      'actions/setup-python asks for python-version-file pyproject.toml (requires-python >=3.12): the job runs on python-3.13 (Python 3.13.5); ubuntu-latest alone would be python-3.11',
    ],
  ]);
  // The label's own environment answers ">=3.9,<3.12": the job stays.
  assert.deepEqual(placed(await plan(workflow('pyproject.toml'), { 'pyproject.toml': '[project]\nrequires-python = ">=3.9,<3.12"\n' })), [
    ['j', 'python-3.11', null],
  ]);
  assert.deepEqual(await problems(workflow('.python-version')), [
    'jobs.j.steps[1].with.python-version-file: python-version-file: .python-version is not in the submitted source (setup-python reads it from the workspace)',
  ]);
  assert.deepEqual(await problems(workflow('../outside/.python-version')), [
    'jobs.j.steps[1].with.python-version-file: python-version-file ../outside/.python-version must be a path inside the workspace',
  ]);
  assert.deepEqual(await problems(workflow('.python-version'), { '.python-version': 'three point nine\n' }), [
    'jobs.j.steps[1].with.python-version-file: python-version-file: .python-version names no Python version setup-python can read (three point nine)',
  ]);
});

test('python-version wins over python-version-file when both are given, as in setup-python', async () => {
  const r = await plan(
    `
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@v5
        with:
          python-version: '3.9'
          python-version-file: .python-version
`,
    { '.python-version': '3.13\n' },
  );
  assert.deepEqual(
    r.jobs.map((j) => j.environment.name),
    ['python-3.9'],
  );
});

test("setup-python's PyPy spellings route the job to the PyPy environment; its CPython answers no CPython request", async () => {
  const r = await plan(`
jobs:
  t:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        py: ['pypy3.9', 'pypy-3.9', 'pypy3.9-v7.3.x', '3.14']
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '\${{ matrix.py }}' }
`);
  assert.deepEqual(placed(r), [
    [
      't (pypy3.9)',
      'pypy-3.9',
      'actions/setup-python asks for python-version pypy3.9: the job runs on pypy-3.9 (PyPy 7.3.11, Python 3.9.16); ubuntu-latest alone would be python-3.11',
    ],
    [
      't (pypy-3.9)',
      'pypy-3.9',
      'actions/setup-python asks for python-version pypy-3.9: the job runs on pypy-3.9 (PyPy 7.3.11, Python 3.9.16); ubuntu-latest alone would be python-3.11',
    ],
    [
      't (pypy3.9-v7.3.x)',
      'pypy-3.9',
      'actions/setup-python asks for python-version pypy3.9-v7.3.x: the job runs on pypy-3.9 (PyPy 7.3.11, Python 3.9.16); ubuntu-latest alone would be python-3.11',
    ],
    [
      't (3.14)',
      'python-3.14',
      'actions/setup-python asks for python-version 3.14: the job runs on python-3.14 (Python 3.14.8); ubuntu-latest alone would be python-3.11',
    ],
  ]);
  assert.equal(r.jobs[0].environment.image, 'kiln/pypy-3.9:20261207.1');
  assert.deepEqual(
    await problems(`
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: pypy3.10 }
  b:
    runs-on: pypy-3.9
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: '3.11' }
  c:
    runs-on: pypy-3.9
    steps:
      - uses: actions/setup-python@v5
        with: { python-version: pypy3.9 }
`),
    [
      'jobs.a.steps[0].with.python-version: python-version pypy3.10 is not available in python-3.11 (Python 3.11.2); no published environment has it (there are: python-3.9 (3.9.2), python-3.11 (3.11.2), python-3.13 (3.13.5), python-3.14 (3.14.8), pypy-3.9 (PyPy 7.3.11, Python 3.9.16))',
      'jobs.b.steps[0].with.python-version: python-version 3.11 is not available in pypy-3.9 (PyPy 7.3.11, Python 3.9.16); environments with it: python-3.11 (3.11.2)',
    ],
  );
});
