import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandMatrix, matrixJobKey, MatrixError } from './matrix';

// The examples are those of GitHub's documentation, "Running variations of jobs in a workflow".

test('GitHub docs: include (fruit/animal) — merged where no original value changes, else a new combination', () => {
  const result = expandMatrix({
    fruit: ['apple', 'pear'],
    animal: ['cat', 'dog'],
    include: [
      { color: 'green' },
      { color: 'pink', animal: 'cat' },
      { fruit: 'apple', shape: 'circle' },
      { fruit: 'banana' },
      { fruit: 'banana', animal: 'cat' },
    ],
  });
  assert.deepEqual(result, [
    { fruit: 'apple', animal: 'cat', color: 'pink', shape: 'circle' },
    { fruit: 'apple', animal: 'dog', color: 'green', shape: 'circle' },
    { fruit: 'pear', animal: 'cat', color: 'pink' },
    { fruit: 'pear', animal: 'dog', color: 'green' },
    { fruit: 'banana' },
    { fruit: 'banana', animal: 'cat' },
  ]);
  // Key order inside each combination is the matrix order, then the order values were added.
  assert.deepEqual(Object.keys(result[0]), ['fruit', 'animal', 'color', 'shape']);
});

test('GitHub docs: exclude (os/version/environment) — a partial match excludes every combination containing it', () => {
  const result = expandMatrix({
    os: ['macos-latest', 'windows-latest'],
    version: [12, 14, 16],
    environment: ['staging', 'production'],
    exclude: [
      { os: 'macos-latest', version: 12, environment: 'production' },
      { os: 'windows-latest', version: 16 },
    ],
  });
  assert.equal(result.length, 9);
  assert.deepEqual(
    result.map((c) => `${c.os}/${c.version}/${c.environment}`),
    [
      'macos-latest/12/staging',
      'macos-latest/14/staging',
      'macos-latest/14/production',
      'macos-latest/16/staging',
      'macos-latest/16/production',
      'windows-latest/12/staging',
      'windows-latest/12/production',
      'windows-latest/14/staging',
      'windows-latest/14/production',
    ],
  );
});

test('GitHub docs: include extends one combination (os/node/npm)', () => {
  const result = expandMatrix({
    os: ['windows-latest', 'ubuntu-latest'],
    node: [14, 16],
    include: [{ os: 'windows-latest', node: 16, npm: 6 }],
  });
  assert.deepEqual(result, [
    { os: 'windows-latest', node: 14 },
    { os: 'windows-latest', node: 16, npm: 6 },
    { os: 'ubuntu-latest', node: 14 },
    { os: 'ubuntu-latest', node: 16 },
  ]);
});

test('GitHub docs: include-only matrix — the entries are the combinations', () => {
  const result = expandMatrix({
    include: [
      { site: 'production', datacenter: 'site-a' },
      { site: 'staging', datacenter: 'site-b' },
    ],
  });
  assert.deepEqual(result, [
    { site: 'production', datacenter: 'site-a' },
    { site: 'staging', datacenter: 'site-b' },
  ]);
});

test('include runs after exclude, so it can add an excluded combination back', () => {
  const result = expandMatrix({ os: ['a', 'b'], exclude: [{ os: 'b' }], include: [{ os: 'b', extra: 1 }] });
  assert.deepEqual(result, [{ os: 'a' }, { os: 'b', extra: 1 }]);
});

test('an include may overwrite a value added by an earlier include, never an original one', () => {
  const result = expandMatrix({ v: [1, 2], include: [{ tag: 'x' }, { tag: 'y', v: 2 }, { v: 3, tag: 'z' }] });
  assert.deepEqual(result, [
    { v: 1, tag: 'x' },
    { v: 2, tag: 'y' },
    { v: 3, tag: 'z' },
  ]);
});

test('the first key varies slowest; values compare by deep equality', () => {
  const result = expandMatrix({ a: [1, 2], cfg: [{ x: 1 }, { x: 2 }], exclude: [{ cfg: { x: 2 }, a: 1 }] });
  assert.deepEqual(result, [
    { a: 1, cfg: { x: 1 } },
    { a: 2, cfg: { x: 1 } },
    { a: 2, cfg: { x: 2 } },
  ]);
});

test('combinations do not share objects with the matrix or each other', () => {
  const cfg = { x: 1 };
  const result = expandMatrix({ a: [1, 2], cfg: [cfg], include: [{ extra: { y: 1 } }] });
  (result[0].extra as { y: number }).y = 99;
  (result[0].cfg as { x: number }).x = 99;
  assert.equal((result[1].extra as { y: number }).y, 1);
  assert.equal(cfg.x, 1);
});

const invalid: [string, Record<string, unknown>, RegExp, string | null][] = [
  ['a scalar value', { os: 'linux' }, /matrix key 'os' must be a list/, 'os'],
  ['an empty list', { os: [] }, /matrix key 'os' has no values/, 'os'],
  ['an empty matrix', {}, /produced no jobs/, null],
  ['everything excluded', { os: ['a'], exclude: [{ os: 'a' }] }, /produced no jobs/, null],
  ['an exclude key not in the matrix', { os: ['a'], exclude: [{ arch: 'x' }] }, /exclude key 'arch' does not match any key/, 'exclude'],
  ['include not a list', { os: ['a'], include: { os: 'b' } }, /'include' must be a list/, 'include'],
  ['an include entry not a mapping', { include: ['x'] }, /'include\[0\]' must be a mapping/, 'include'],
];
for (const [what, matrix, message, key] of invalid) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => expandMatrix(matrix),
      (e: unknown) => e instanceof MatrixError && message.test(e.message) && e.key === key && !e.tooMany,
    );
  });
}

test('the job limit is enforced before expanding further', () => {
  assert.equal(expandMatrix({ a: [1, 2, 3], b: [1, 2, 3] }, 9).length, 9);
  assert.throws(
    () => expandMatrix({ a: [1, 2, 3], b: [1, 2, 3] }, 8),
    (e: unknown) => e instanceof MatrixError && e.tooMany,
  );
  assert.throws(
    () => expandMatrix({ include: [{ a: 1 }, { a: 2 }] }, 1),
    (e: unknown) => e instanceof MatrixError && e.tooMany,
  );
  // A product far beyond any limit fails without being generated.
  const huge = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, Array.from({ length: 10 }, (_, j) => j)]));
  assert.throws(
    () => expandMatrix(huge, 256),
    (e: unknown) => e instanceof MatrixError && e.tooMany,
  );
});

test('job keys list the matrix values in key order, objects as JSON', () => {
  assert.equal(matrixJobKey('test', { os: 'linux', python: 3.1, cfg: { a: true }, on: false }), 'test (linux, 3.1, {"a":true}, false)');
});
