import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickEnvironment, pypySatisfies, pypySpec, pythonSatisfies, validPythonSpec, versionsFromFile, type EnvironmentPythons } from './python-versions';

const PY: Record<string, EnvironmentPythons> = {
  'python-3.9': { python: '3.9.2' },
  'python-3.11': { python: '3.11.2' },
  'python-3.13': { python: '3.13.5' },
  'no-python': { python: null },
};

test('python-version as setup-python reads it (semver ranges)', () => {
  const cases: [string, string, boolean][] = [
    ['3.11', '3.11.2', true],
    ['3.11', '3.1.0', false],
    ['3.1', '3.11.2', false],
    ['3.11.2', '3.11.2', true],
    ['3.11.3', '3.11.2', false],
    ['3.x', '3.13.5', true],
    ['3', '3.9.2', true],
    ['v3.9', '3.9.2', true],
    ['>=3.9 <3.12', '3.11.2', true],
    ['>=3.9 <3.12', '3.13.5', false],
    ['~3.11', '3.11.2', true],
    ['^3.9', '3.13.5', true],
    ['pypy3.9', '3.9.2', false],
    ['3.13t', '3.13.5', false],
    ['not a version', '3.11.2', false],
  ];
  for (const [spec, have, expected] of cases) assert.equal(pythonSatisfies(spec, have), expected, `${spec} vs ${have}`);
  assert.equal(pythonSatisfies('3.11', null), false);
});

test('requires-python as PEP 440 specifiers', () => {
  const cases: [string, string, boolean][] = [
    ['>=3.10', '3.11.2', true],
    ['>=3.10', '3.9.2', false],
    ['~=3.10', '3.13.5', true],
    ['>=3.8,<3.11', '3.11.2', false],
    ['>=3.8, <3.12', '3.11.2', true],
    ['==3.9.*', '3.9.2', true],
    ['!=3.11.*', '3.11.2', false],
  ];
  for (const [spec, have, expected] of cases) assert.equal(pythonSatisfies(spec, have, 'pep440'), expected, `${spec} vs ${have}`);
  assert.equal(validPythonSpec('>=3.9', 'pep440'), true);
  assert.equal(validPythonSpec('three', 'pep440'), false);
  assert.equal(validPythonSpec('3.x', 'semver'), true);
});

test('the environment picked is the one with the highest Python the spec allows', () => {
  assert.deepEqual(pickEnvironment('3.x', 'semver', PY), { name: 'python-3.13', python: '3.13.5', said: 'Python 3.13.5' });
  assert.deepEqual(pickEnvironment('3.9', 'semver', PY), { name: 'python-3.9', python: '3.9.2', said: 'Python 3.9.2' });
  assert.deepEqual(pickEnvironment('>=3.9,<3.12', 'pep440', PY), { name: 'python-3.11', python: '3.11.2', said: 'Python 3.11.2' });
  assert.equal(pickEnvironment('3.10', 'semver', PY), null);
  assert.equal(pickEnvironment('pypy3.10', 'semver', PY), null);
});

const WITH_PYPY: Record<string, EnvironmentPythons> = {
  ...PY,
  'python-3.14': { python: '3.14.8', beta: true },
  // A PyPy environment's CPython (which its tox and nox run on) never answers a CPython request.
  'pypy-3.9': { python: '3.11.2', pypy: { python: '3.9.16', version: '7.3.11' } },
  'pypy-3.11': { python: '3.13.5', pypy: { python: '3.11.11', version: '7.3.19' } },
};

test('a beta environment gets a range only when no GA one answers it; a PyPy environment only PyPy requests', () => {
  assert.equal(pickEnvironment('3.x', 'semver', WITH_PYPY)?.name, 'python-3.13');
  assert.equal(pickEnvironment('>=3.12', 'pep440', WITH_PYPY)?.name, 'python-3.13');
  assert.equal(pickEnvironment('3.14', 'semver', WITH_PYPY)?.name, 'python-3.14');
  assert.equal(pickEnvironment('3.11', 'semver', WITH_PYPY)?.name, 'python-3.11');
  assert.equal(pickEnvironment('>=3.10,<3.12', 'pep440', WITH_PYPY)?.name, 'python-3.11');
  assert.deepEqual(pickEnvironment('pypy3.9', 'semver', WITH_PYPY), { name: 'pypy-3.9', python: '3.9.16', said: 'PyPy 7.3.11, Python 3.9.16' });
  assert.equal(pickEnvironment('pypy-3.11', 'semver', WITH_PYPY)?.name, 'pypy-3.11');
  assert.equal(pickEnvironment('pypy3.10', 'semver', WITH_PYPY), null);
  assert.equal(pickEnvironment('pypy3.9', 'semver', PY), null);
});

test('PyPy spellings as setup-python reads them: pypyX.Y or pypy-X.Y, then a PyPy version, range or nightly', () => {
  assert.deepEqual(pypySpec('pypy3.9'), { python: '3.9', pypy: null });
  assert.deepEqual(pypySpec('pypy-3.10'), { python: '3.10', pypy: null });
  assert.deepEqual(pypySpec('pypy3.9-v7.3.x'), { python: '3.9', pypy: '>=7.3.0 <7.4.0-0' });
  assert.deepEqual(pypySpec('pypy3.9-nightly'), { python: '3.9', pypy: '' });
  for (const bad of ['pypy3', 'pypy', 'pypy-3', 'pypy3.9-v7..3', '3.9', 'python3.9', 'pypy3.9.1']) assert.equal(pypySpec(bad), null, bad);
  const have = { python: '3.9.16', version: '7.3.11' };
  const cases: [string, boolean][] = [
    ['pypy3.9', true],
    ['pypy-3.9', true],
    ['pypy3.9-v7.3.x', true],
    ['pypy-3.9-7.3.11', true],
    ['pypy3.9-v7.3.12', false],
    ['pypy3.9-nightly', false],
    ['pypy3.10', false],
    ['3.9', false],
  ];
  for (const [spec, expected] of cases) assert.equal(pypySatisfies(spec, have), expected, spec);
  assert.equal(pypySatisfies('pypy3.9', null), false);
  assert.equal(pythonSatisfies('pypy3.9', '3.9.16'), false);
  assert.equal(validPythonSpec('pypy3.9', 'semver'), true);
  assert.equal(validPythonSpec('pypy3', 'semver'), false);
});

test('python-version-file: .python-version, .tool-versions and pyproject.toml as setup-python reads them', () => {
  assert.deepEqual(versionsFromFile('.python-version', '# the project Python\n3.12\n\n'), { specs: ['3.12'], kind: 'semver', said: '3.12' });
  assert.deepEqual(versionsFromFile('ci/.python-version', '3.9\n3.13\n'), { specs: ['3.9', '3.13'], kind: 'semver', said: '3.9 3.13' });
  assert.deepEqual(versionsFromFile('.tool-versions', 'nodejs 20.1.0\npython 3.11.2 3.9.2\n'), {
    specs: ['3.11.2', '3.9.2'],
    kind: 'semver',
    said: '3.11.2 3.9.2',
  });
  const pyproject = '[build-system]\nrequires = ["setuptools"]\n\n[project]\nname = "demo"\nrequires-python = ">=3.10"\n';
  assert.deepEqual(versionsFromFile('pyproject.toml', pyproject), { specs: ['>=3.10'], kind: 'pep440', said: 'requires-python >=3.10' });
  const poetry = '[tool.poetry]\nname = "demo"\n\n[tool.poetry.dependencies]\npython = "^3.10"\n';
  assert.deepEqual(versionsFromFile('pyproject.toml', poetry), { specs: ['^3.10'], kind: 'semver', said: 'requires-python ^3.10' });
  // A requires-python outside [project] is not the project's.
  assert.equal(versionsFromFile('pyproject.toml', '[tool.other]\nrequires-python = ">=3.9"\n'), null);
  assert.equal(versionsFromFile('.python-version', '\n# nothing\n'), null);
});
