// packFiles (tar-pack.ts): the quick form's files packed clean, or refused with a code and the entry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRefusedAt, limits, readTar, workDir, type Refusal } from '../../test/fixtures/tar-specs';
import { packFiles } from './tar-pack';
import type { ArchiveErrorCode, TarLimits } from './tar-safety';

const work = workDir();
const assertRefused = (run: (out: string) => Promise<unknown>, expected: Refusal) => assertRefusedAt(work.out(), run, expected);

describe('packFiles', () => {
  test('builds a clean tar with parent directories', async () => {
    const out = work.out();
    const res = await packFiles({ 'src/lib/util.h': '#pragma once\n', './README.md': '# hi\n', 'src/main.c': 'int main;\n', 'empty.txt': '' }, out, limits());
    const expected = ['README.md', 'empty.txt', 'src', 'src/lib', 'src/lib/util.h', 'src/main.c'];
    assert.deepEqual(res.paths, expected);
    assert.equal(res.files, 4);
    assert.equal(res.entries, 6);
    assert.equal(res.totalBytes, 13 + 5 + 10);
    const back = await readTar(out);
    assert.deepEqual(
      back.map((e) => [e.header.name.replace(/\/$/, ''), e.header.type, e.header.mode, e.header.uid, e.body.toString()]),
      [
        ['README.md', 'file', 0o644, 1001, '# hi\n'],
        ['empty.txt', 'file', 0o644, 1001, ''],
        ['src', 'directory', 0o755, 1001, ''],
        ['src/lib', 'directory', 0o755, 1001, ''],
        ['src/lib/util.h', 'file', 0o644, 1001, '#pragma once\n'],
        ['src/main.c', 'file', 0o644, 1001, 'int main;\n'],
      ],
    );
  });

  const bad: Array<{ name: string; code: ArchiveErrorCode; files: Record<string, string>; over?: Partial<TarLimits>; entry?: string; part: string }> = [
    {
      name: 'traversal',
      code: 'unsafe-path',
      files: { 'a.txt': 'x', '../x': 'y' },
      entry: '../x',
      part: "file '../x': path leaves the workspace ('..' is not allowed)",
    },
    { name: 'absolute', code: 'unsafe-path', files: { '/etc/cron.d/x': 'y' }, entry: '/etc/cron.d/x', part: 'absolute paths are not allowed' },
    { name: 'backslash', code: 'unsafe-path', files: { 'a\\b': 'y' }, entry: 'a\\b', part: 'backslashes are not allowed' },
    { name: 'control character', code: 'unsafe-path', files: { 'a\rb': 'y' }, entry: 'a\\x0db', part: 'control characters' },
    { name: 'duplicate after normalization', code: 'path-conflict', files: { a: '1', './a': '2' }, entry: './a', part: 'duplicate name' },
    { name: 'file used as a directory', code: 'path-conflict', files: { a: '1', 'a/b': '2' }, entry: 'a/b', part: "its parent 'a' is a regular file" },
    { name: 'empty name', code: 'invalid', files: { '': 'x' }, entry: '', part: 'the name is empty' },
    { name: 'root as a file', code: 'invalid', files: { './': 'x' }, entry: './', part: 'empty name' },
    {
      name: 'file over maxFileBytes',
      code: 'too-large',
      files: { 'big.txt': 'x'.repeat(2000) },
      over: { maxFileBytes: 1024 },
      entry: 'big.txt',
      part: 'over the limit of 1 KiB per file',
    },
    {
      name: 'total over maxTotalBytes',
      code: 'too-large',
      files: { a: 'x'.repeat(600), b: 'y'.repeat(600) },
      over: { maxTotalBytes: 1000 },
      entry: 'b',
      part: 'add up to more than 1000 bytes',
    },
    {
      name: 'entries (with parent dirs) over maxEntries',
      code: 'too-many-entries',
      files: { 'd/a': '', 'd/b': '' },
      over: { maxEntries: 2 },
      entry: 'd/b',
      part: 'more than 2 entries',
    },
    { name: 'no files at all', code: 'empty', files: {}, part: 'no files were given' },
    {
      name: 'content not a string',
      code: 'invalid',
      files: { 'a.txt': 1 as unknown as string },
      entry: 'a.txt',
      part: "file 'a.txt': content must be a string",
    },
  ];
  for (const c of bad) {
    test(`refuses: ${c.name}`, async () => {
      await assertRefused((out) => packFiles(c.files, out, limits(c.over)), { code: c.code, entry: c.entry, parts: [c.part] });
    });
  }
});
