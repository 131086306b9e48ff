import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowError } from './model';
import { collectWorkflow, parseWorkflow } from './parse';
import { lineOf } from './safe-yaml';

const job = (extra = '') => `jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: echo hi\n${extra}`;

/** [what, text, expected problems as [path, line, message pattern]] */
const refused: [string, string, [string, number | null, RegExp][]][] = [
  ['a NUL character', 'jobs:\n  a:\n    runs-on: python-3.11\n    steps:\n      - run: "echo \\0"\n', [['jobs.a.steps[0].run', 5, /NUL character/]]],
  ['a __proto__ key', 'jobs:\n  __proto__:\n    runs-on: x\n', [['jobs.__proto__', 2, /'__proto__' is not allowed/]]],
  ['a list as a key', '? [a]\n: 1\njobs: {}\n', [['(workflow)', 1, /keys must be plain strings/]]],
  ['several documents', `${job()}---\n${job()}`, [['(workflow)', 6, /several documents/]]],
  ['an empty text', '', [['(workflow)', null, /empty/]]],
  ['only comments', '# nothing\n', [['(workflow)', null, /empty/]]],
  ['an unknown tag', 'jobs: !custom {}\n', [['(workflow)', 1, /Unresolved tag/]]],
  ['an alias without anchor', 'env: *nope\njobs: {}\n', [['(workflow)', null, /Unresolved alias/]]],
  [
    'a YAML syntax error (an error at the end points at the last line)',
    'jobs:\n  a:\n    runs-on: x\n   steps: [\n',
    [
      ['(workflow)', 4, /invalid YAML/],
      ['(workflow)', 4, /invalid YAML/],
    ],
  ],
  ['a list at the top', '- a\n', [['(workflow)', null, /must be a YAML mapping/]]],
  ['no jobs key', 'name: x\n', [['(workflow)', null, /needs 'jobs'/]]],
  ['empty jobs', 'jobs: {}\n', [['jobs', 1, /non-empty mapping/]]],
  ['a null job', 'jobs:\n  a:\n', [['jobs.a', 2, /must be a mapping/]]],
  ['a null step', 'jobs:\n  a:\n    runs-on: x\n    steps:\n      -\n', [['jobs.a.steps[0]', 5, /a step must be a mapping/]]],
  [
    'with on a run step, shell on a uses step',
    job('        with: {a: 1}\n      - uses: actions/checkout@v4\n        shell: bash\n'),
    [
      ['jobs.a.steps[0].with', 6, /'with' only applies to 'uses' steps/],
      ['jobs.a.steps[1].shell', 8, /'shell' only applies to 'run' steps/],
    ],
  ],
  [
    'an expression as env',
    "env: ${{ fromJSON('{}') }}\njobs: {}\n",
    [
      ['env', 1, /must be a mapping/],
      ['jobs', 2, /non-empty/],
    ],
  ],
  [
    'continue-on-error as a plain string',
    job('        continue-on-error: maybe\n'),
    [['jobs.a.steps[0].continue-on-error', 6, /true, false or a \$\{\{ \}\} expression/]],
  ],
  [
    'max-parallel 0 and fail-fast as string',
    'jobs:\n  a:\n    runs-on: x\n    strategy:\n      fail-fast: "no"\n      max-parallel: 0\n      matrix: {a: [1]}\n    steps: [{run: x}]\n',
    [
      ['jobs.a.strategy.fail-fast', 5, /must be true or false/],
      ['jobs.a.strategy.max-parallel', 6, /at least 1/],
    ],
  ],
];

for (const [what, text, expected] of refused) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => parseWorkflow(text),
      (e: unknown) => {
        assert.ok(e instanceof WorkflowError);
        const shown = JSON.stringify(e.problems, null, 2);
        assert.equal(e.problems.length, expected.length, shown);
        expected.forEach(([path, line, message], i) => {
          assert.equal(e.problems[i].path, path, shown);
          assert.equal(e.problems[i].line, line, shown);
          assert.match(e.problems[i].message, message);
        });
        return true;
      },
    );
  });
}

test('aliases within the limit, CRLF line ends and a BOM are fine', () => {
  const wf = parseWorkflow(
    '\ufeffdefaults: &d\r\n  run:\r\n    shell: sh\r\njobs:\r\n  a:\r\n    runs-on: x\r\n    defaults: *d\r\n    steps:\r\n      - run: echo\r\n',
  );
  assert.equal(wf.jobs[0].defaults.shell, 'sh');
  assert.equal(wf.lines['jobs.a.steps[0]'], 9);
});

test('the partial workflow keeps what could be read, so the planner can add its problems', () => {
  const { workflow, problems } = collectWorkflow(job('        shell: fish\n'));
  assert.equal(problems.length, 1);
  assert.equal(workflow?.jobs[0].steps.length, 1);
});

test('lineOf falls back to the nearest ancestor with a line', () => {
  const lines = { jobs: 1, 'jobs.a': 2, 'jobs.a.steps[0]': 5 };
  assert.equal(lineOf(lines, 'jobs.a.steps[0].with.path'), 5);
  assert.equal(lineOf(lines, 'jobs.b'), 1);
  assert.equal(lineOf(lines, 'name'), null);
});

test('scalars become strings as GitHub prints them; upload-artifact gets its defaults', () => {
  const wf = parseWorkflow(
    'env:\n  A: 3.10\n  B: true\n  C: 0x10\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/upload-artifact@v4\n        with:\n          path: out\n          retention-days: 7\n',
  );
  assert.deepEqual(wf.env, { A: '3.1', B: 'true', C: '16' });
  assert.deepEqual(wf.jobs[0].steps[0].with, { name: 'artifact', 'if-no-files-found': 'warn', path: 'out', 'retention-days': '7' });
});
