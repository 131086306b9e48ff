import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesList, pushTrigger } from './triggers';

const push = (ref: string, changedPaths: string[] = ['src/a.py']) => ({ ref, changedPaths });

const table: [string, string, ReturnType<typeof push>, boolean][] = [
  ['on: push', 'on: push\njobs: {}', push('refs/heads/main'), true],
  ['on: [push, pull_request]', 'on: [push, pull_request]\njobs: {}', push('refs/heads/x'), true],
  ['on: pull_request only', 'on: pull_request\njobs: {}', push('refs/heads/main'), false],
  ['branches match', 'on:\n  push:\n    branches: [main, "releases/**"]\njobs: {}', push('refs/heads/releases/v1/x'), true],
  ['branches miss', 'on:\n  push:\n    branches: [main]\njobs: {}', push('refs/heads/feature'), false],
  ['branch negation', 'on:\n  push:\n    branches: ["releases/**", "!releases/**-alpha"]\njobs: {}', push('refs/heads/releases/2-alpha'), false],
  ['branches-ignore', 'on:\n  push:\n    branches-ignore: ["dependabot/**"]\njobs: {}', push('refs/heads/dependabot/npm/x'), false],
  ['tags only, branch push', 'on:\n  push:\n    tags: ["v*"]\njobs: {}', push('refs/heads/main'), false],
  ['tags only, tag push', 'on:\n  push:\n    tags: ["v*"]\njobs: {}', push('refs/tags/v1.2'), true],
  ['paths match', 'on:\n  push:\n    paths: ["src/**"]\njobs: {}', push('refs/heads/main', ['README.md', 'src/x/y.py']), true],
  ['paths miss', 'on:\n  push:\n    paths: ["src/**"]\njobs: {}', push('refs/heads/main', ['docs/a.md']), false],
  ['paths-ignore all ignored', 'on:\n  push:\n    paths-ignore: ["docs/**", "*.md"]\njobs: {}', push('refs/heads/main', ['docs/a.md', 'README.md']), false],
  ['paths-ignore some not', 'on:\n  push:\n    paths-ignore: ["docs/**"]\njobs: {}', push('refs/heads/main', ['docs/a.md', 'src/b.py']), true],
  ['.kiln.yml without on', 'jobs: {}', push('refs/heads/any'), true],
];

for (const [name, yaml, facts, runs] of table) {
  test(`push trigger: ${name}`, () => {
    assert.equal(pushTrigger(yaml, facts, !yaml.includes('on:')).runs, runs);
  });
}

test('a workflow without on (not .kiln.yml) does not run on push', () => {
  assert.equal(pushTrigger('jobs: {}', push('refs/heads/main'), false).runs, false);
});

test('concurrency: string or mapping with cancel-in-progress', () => {
  assert.deepEqual(pushTrigger('on: push\nconcurrency: ci-${{ github.ref }}\njobs: {}', push('refs/heads/main'), false).concurrency, {
    group: 'ci-${{ github.ref }}',
    cancelInProgress: false,
  });
  assert.deepEqual(pushTrigger('on: push\nconcurrency:\n  group: g\n  cancel-in-progress: true\njobs: {}', push('refs/heads/main'), false).concurrency, {
    group: 'g',
    cancelInProgress: true,
  });
});

test('filter lists: * stops at /, ** does not; later negations win', () => {
  assert.equal(matchesList('feature/x', ['*']), false);
  assert.equal(matchesList('feature/x', ['**']), true);
  assert.equal(matchesList('main', ['*', '!main']), false);
});

test("a workflow that is not valid YAML still runs (the run then shows the parser's message)", () => {
  assert.equal(pushTrigger('on: push\njobs: [\n', push('refs/heads/main'), false).runs, true);
  assert.equal(pushTrigger('on: push\non: pull_request\njobs: {}\n', push('refs/heads/main'), false).runs, true);
});

test('an empty workflow, or one of only comments, reads as one without on', () => {
  for (const text of ['', '# nothing\n']) {
    assert.equal(pushTrigger(text, push('refs/heads/main'), false).runs, false);
    assert.equal(pushTrigger(text, push('refs/heads/main'), true).runs, true);
  }
});
