import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkCondition,
  checkExpressions,
  conditionExpression,
  evaluate,
  evaluateCondition,
  evaluateTemplate,
  formatScalar,
  interpolate,
  splitTemplate,
  type ExprContext,
  type StatusFunctions,
} from './expressions';

const ctx: ExprContext = {
  github: { ref: 'refs/heads/main', sha: 'abc123', event: { head_commit: { message: 'Fix [skip ci]' } } },
  env: { GREETING: 'hello', COUNT: '3' },
  matrix: { os: 'linux', python: 3.1, versions: [3.9, 3.11], experimental: false },
  steps: { build: { outcome: 'success', outputs: { path: 'dist/app.whl' } } },
  secrets: { TOKEN: 's3cret' },
};

const status = (s: 'success' | 'failure' | 'cancelled'): StatusFunctions => ({
  success: () => s === 'success',
  failure: () => s === 'failure',
  cancelled: () => s === 'cancelled',
  always: () => true,
});

const interpolations: [string, string][] = [
  ['no expression ${ { here } }', 'no expression ${ { here } }'],
  ['ref=${{ github.ref }}', 'ref=refs/heads/main'],
  ['${{ env.GREETING }} ${{ matrix.os }}!', 'hello linux!'],
  ['${{ steps.build.outputs.path }}', 'dist/app.whl'],
  ['${{ steps.missing.outputs.path }}|', '|'], // null -> ''
  ['${{ matrix.python }}', '3.1'],
  ['${{ 1.50 }} ${{ 100 }}', '1.5 100'],
  ['${{ matrix.experimental }} ${{ true }}', 'false true'],
  ["${{ format('{0}-{1}', matrix.os, 'x') }}", 'linux-x'],
  ["${{ join(matrix.versions, '; ') }}", '3.9; 3.11'],
  ["${{ contains(github.event.head_commit.message, '[SKIP CI]') }}", 'true'],
  ["${{ startsWith(github.ref, 'refs/heads/') }}", 'true'],
  ["${{ endsWith(github.ref, 'main') }}", 'true'],
  ['${{ fromJSON(\'{"a":[1,2]}\').a[1] }}', '2'],
  ["${{ format('}}') }}", '}'],
  ["${{ 'it''s' }}", "it's"],
];

for (const [template, expected] of interpolations) {
  test(`interpolate ${JSON.stringify(template)}`, async () => {
    assert.equal(await interpolate(template, ctx), expected);
  });
}

test('interpolate prints objects and arrays as JSON, as toJSON does', async () => {
  assert.equal(await interpolate('${{ matrix.versions }}', ctx), '[\n  3.9,\n  3.11\n]');
  assert.equal(await interpolate('${{ toJSON(steps.build.outputs) }}', ctx), '{\n  "path": "dist/app.whl"\n}');
});

test('evaluate returns plain JSON values', async () => {
  assert.deepEqual(await evaluate('fromJSON(\'{"a":[1,true,null,"x"]}\')', ctx), { a: [1, true, null, 'x'] });
  assert.equal(await evaluate('env.COUNT == 3', ctx), true); // string/number coercion is GitHub's
  assert.equal(await evaluate("github.REF == 'REFS/HEADS/MAIN'", ctx), true); // case-insensitive names and string equality
  assert.equal(await evaluate('matrix.versions[1]', ctx), 3.11);
  assert.deepEqual(await evaluate('matrix.*', { matrix: { a: 1, b: 2 } }), [1, 2]);
  assert.equal(await evaluate('vars.missing', ctx), null); // known but absent contexts are empty
  assert.equal(await evaluate('success()', ctx), true); // without a status: a job running fine
});

test('evaluateTemplate keeps the value of a lone expression (arrays for matrices)', async () => {
  assert.deepEqual(await evaluateTemplate("${{ fromJSON('[1,2]') }}", {}), [1, 2]);
  assert.equal(await evaluateTemplate(' ${{ 1 }}', {}), ' 1');
  assert.equal(await evaluateTemplate('plain', {}), 'plain');
});

test('hashFiles parses; it is answered by the caller (the job runner), refused elsewhere', async () => {
  assert.deepEqual(await checkExpressions("${{ hashFiles('**/requirements.txt') }}", ['github']), []);
  await assert.rejects(interpolate("${{ hashFiles('x') }}", ctx), /hashFiles\(\) is only available in steps/);
  const seen: string[][] = [];
  const status = {
    success: () => true,
    failure: () => false,
    cancelled: () => false,
    always: () => true,
    hashFiles: (p: string[]) => {
      seen.push(p);
      return 'abc123';
    },
  };
  assert.equal(await interpolate("key-${{ hashFiles('a/**', '!a/skip') }}", ctx, status), 'key-abc123');
  assert.deepEqual(seen, [['a/**', '!a/skip']]);
});

test('evaluation errors are thrown', async () => {
  await assert.rejects(evaluate('matrix.os ==', ctx), /Unexpected end of expression/);
  await assert.rejects(evaluate("fromJSON('not json')", ctx), /fromJson/i);
  await assert.rejects(interpolate('${{ github.ref', ctx), /not closed/);
});

test('splitTemplate finds }} outside string literals only', () => {
  assert.deepEqual(splitTemplate("a ${{ '}}' }} b"), [
    { kind: 'text', text: 'a ' },
    { kind: 'expr', expr: " '}}' " },
    { kind: 'text', text: ' b' },
  ]);
});

// -------------------------------------------------------------------------------------------
// if: conditions
// -------------------------------------------------------------------------------------------

const conditions: [string | null, 'success' | 'failure' | 'cancelled', boolean][] = [
  [null, 'success', true],
  [null, 'failure', false],
  ['failure()', 'failure', true],
  ['failure()', 'success', false],
  ['always()', 'failure', true],
  ['always()', 'cancelled', true],
  ['${{ always() }}', 'failure', true],
  ['cancelled()', 'cancelled', true],
  ["github.ref == 'refs/heads/main'", 'success', true],
  ["github.ref == 'refs/heads/main'", 'failure', false], // implicit success() &&
  ["github.ref == 'refs/heads/dev'", 'success', false],
  ['${{ false }}', 'success', false],
  ['${{ true }}', 'failure', false],
  ['false', 'success', false],
  ["${{ github.ref == 'refs/heads/main' }}", 'success', true],
  ["failure() || github.ref == 'refs/heads/main'", 'success', true], // a status function: no implicit success()
  ["steps.build.outcome == 'success' && !cancelled()", 'success', true],
  ["contains(github.event.head_commit.message, 'skip ci')", 'success', true],
  ["'success()'", 'failure', false], // a string literal is not a status call
  ['matrix.versions', 'success', true], // arrays are truthy
  ['env.MISSING', 'success', false], // null is falsy
  ['0', 'success', false],
  ["''", 'success', false],
  // Text around ${{ }} makes a non-empty string, as on GitHub (the documented pitfall).
  ['${{ false }} && true', 'success', true],
];

for (const [cond, s, expected] of conditions) {
  test(`if: ${JSON.stringify(cond)} when ${s} -> ${expected}`, async () => {
    assert.equal(await evaluateCondition(cond, ctx, status(s)), expected);
  });
}

test('conditionExpression adds success() only when no status function is called', async () => {
  assert.equal(await conditionExpression(null), 'success()');
  assert.equal(await conditionExpression('a == b'), 'success() && (a == b)');
  assert.equal(await conditionExpression('${{ always() }}'), ' always() ');
  assert.equal(await conditionExpression("x ${{ a }} 'y' {z}"), "success() && (format('x {0} ''y'' {{z}}', ( a )))");
});

// -------------------------------------------------------------------------------------------
// Checking at submission
// -------------------------------------------------------------------------------------------

test('checkExpressions reports syntax errors, unknown contexts and functions', async () => {
  assert.deepEqual(await checkExpressions('plain text', []), []);
  assert.deepEqual(await checkExpressions('${{ matrix.os }} and ${{ github.ref }}', ['matrix', 'github']), []);
  const errors = await checkExpressions('${{ matrix.os ==  }} ${{ foo.bar }} ${{ nope() }} ${{ }}', ['matrix']);
  assert.equal(errors.length, 4);
  assert.match(errors[0], /Unexpected end of expression/);
  assert.match(errors[1], /Unrecognized named-value: 'foo'/);
  assert.match(errors[2], /Unrecognized function: 'nope'/);
  assert.match(errors[3], /an expression was expected/);
});

test('status functions are only allowed where asked (GitHub allows them in if: only)', async () => {
  assert.deepEqual(await checkExpressions('${{ success() }}', []), []);
  assert.match((await checkExpressions('${{ success() }}', [], { statusFunctions: false }))[0], /Unrecognized function: 'success'/);
  assert.deepEqual(await checkCondition("failure() && github.ref == 'x'", ['github']), []);
  assert.match((await checkCondition('secrets.X', ['github']))[0], /'secrets'/);
});

test('formatScalar prints YAML scalars as GitHub does', () => {
  assert.equal(formatScalar(true), 'true');
  assert.equal(formatScalar(3.1), '3.1');
  assert.equal(formatScalar(0.1 + 0.2), '0.3');
  assert.equal(formatScalar(null), '');
  assert.equal(formatScalar({ a: 1 }), '{"a":1}');
});
