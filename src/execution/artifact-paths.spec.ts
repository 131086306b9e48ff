import { test } from 'node:test';
import assert from 'node:assert/strict';
import { artifactPaths, commonAncestor, searchPath, searchPaths, selectArtifactFiles } from './artifact-paths';

const W = '/workspace';
const select = (lines: string, matched: string[][], opts: { excluded?: string[]; hidden?: boolean } = {}) =>
  selectArtifactFiles(artifactPaths(lines.split('\n'), opts.hidden ?? false), { matched, excluded: opts.excluded ?? [] }, W);

test("a pattern's search path is its part before the first wildcard", () => {
  assert.equal(searchPath('dist/', W), '/workspace/dist');
  assert.equal(searchPath('dist/**/*.js', W), '/workspace/dist');
  assert.equal(searchPath('*.txt', W), '/workspace');
  assert.equal(searchPath('./out/report.xml', W), '/workspace/out/report.xml');
  assert.equal(searchPath('/tmp/a?/x', W), '/tmp');
  assert.equal(searchPath('/*', W), '/');
  assert.equal(searchPath('../other/[ab]', W), '/other');
});

test('search paths under another are dropped, as @actions/glob does; the least common ancestor is by whole names', () => {
  assert.deepEqual(searchPaths(['dist/', 'dist/sub/x.txt', 'build/*.o', 'dist/'], W), ['/workspace/dist', '/workspace/build']);
  assert.equal(commonAncestor(['/workspace/dist', '/workspace/build']), '/workspace');
  assert.equal(commonAncestor(['/workspace/dist-a', '/workspace/dist-b/x']), '/workspace');
  assert.equal(commonAncestor(['/etc/x', '/tmp/y']), '/');
});

test('`!` lines are exclusions; blank lines are dropped', () => {
  assert.deepEqual(artifactPaths(['dist/', '', ' !dist/*.map ', '!'], true), { include: ['dist/'], exclude: ['dist/*.map'], includeHidden: true });
});

test("a folder is the artifact's root: its files are stored without it", () => {
  const s = select('dist/', [['dist/app.txt', 'dist/sub/b.txt']]);
  assert.deepEqual(s, { root: '/workspace/dist', files: ['app.txt', 'sub/b.txt'], hidden: 0 });
});

test('a glob under a folder: the folder before the wildcard is the root', () => {
  assert.deepEqual(select('dist/**/*.js', [['dist/a.js', 'dist/x/b.js']]).files, ['a.js', 'x/b.js']);
});

test('several paths: their least common ancestor is the root', () => {
  const s = select('dist/a.txt\nbuild/b.txt', [['dist/a.txt'], ['build/b.txt']]);
  assert.deepEqual([s.root, s.files], ['/workspace', ['dist/a.txt', 'build/b.txt']]);
  const deeper = select('out/x/a.txt\nout/y/', [['out/x/a.txt'], ['out/y/b.txt']]);
  assert.deepEqual([deeper.root, deeper.files], ['/workspace/out', ['x/a.txt', 'y/b.txt']]);
});

test('one pattern naming one file: the file alone, at the root', () => {
  assert.deepEqual(select('out/report.xml', [['out/report.xml']]), { root: '/workspace/out', files: ['report.xml'], hidden: 0 });
  // A wildcard that happens to match one file keeps the folders below its search path.
  assert.deepEqual(select('out/*/report.xml', [['out/a/report.xml']]).files, ['a/report.xml']);
});

test('hidden files and folders are left out below the search path unless include-hidden-files', () => {
  const matched = [['dist/a.txt', 'dist/.env', 'dist/.cache/x', 'dist/sub/.keep']];
  assert.deepEqual(select('dist/', matched), { root: '/workspace/dist', files: ['a.txt'], hidden: 3 });
  assert.deepEqual(select('dist/', matched, { hidden: true }).files, ['a.txt', '.env', '.cache/x', 'sub/.keep']);
  // The search path itself counts (a `.next/` folder), a hidden folder above it does not.
  assert.deepEqual(select('.next/', [['.next/a']]).files, []);
  assert.deepEqual(select('.github/workflows', [['.github/workflows/ci.yml']]).files, ['ci.yml']);
});

test('an exclusion leaves out what it matches and everything under it; a file matched twice is stored once', () => {
  const s = select('out/\nout/a.txt\n!out/skip.txt\n!out/tmp', [['out/a.txt', 'out/skip.txt', 'out/tmp/x', 'out/tmpx'], ['out/a.txt']], {
    excluded: ['out/skip.txt', 'out/tmp'],
  });
  assert.deepEqual([s.root, s.files], ['/workspace/out', ['a.txt', 'tmpx']]);
});

test('absolute paths: the root may be outside the workspace', () => {
  const s = select('/tmp/logs/\nout/r.xml', [['/tmp/logs/a.log'], ['out/r.xml']]);
  assert.deepEqual([s.root, s.files], ['/', ['tmp/logs/a.log', 'workspace/out/r.xml']]);
});

test('nothing matched: no files', () => {
  assert.deepEqual(select('dist/', [[]]).files, []);
});
