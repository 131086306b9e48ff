import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnvFile, parsePathFile } from './env-files';

test('NAME=value lines and NAME<<DELIM blocks, as GitHub writes them', () => {
  const r = parseEnvFile('A=1\nB=x=y\nMULTI<<EOF\nline one\nline two\nEOF\nC=\n', 'GITHUB_ENV');
  assert.deepEqual(r.values, { A: '1', B: 'x=y', MULTI: 'line one\nline two', C: '' });
  assert.deepEqual(r.problems, []);
});

test('bad lines are reported, not applied', () => {
  const r = parseEnvFile('no-equals-sign\n1BAD=x\nOPEN<<END\nnever closed\n', 'GITHUB_ENV');
  assert.deepEqual(r.values, {});
  assert.deepEqual(r.problems, [
    'GITHUB_ENV: line 1 is neither NAME=value nor NAME<<DELIMITER',
    "GITHUB_ENV: '1BAD' is not a valid name",
    'GITHUB_ENV: OPEN<<END has no closing END line',
  ]);
});

test('GITHUB_PATH: one directory a line; lines with : are refused (they would splice PATH)', () => {
  assert.deepEqual(parsePathFile('/opt/a/bin\n\n  /opt/b  \n/x:/y\n'), ['/opt/a/bin', '/opt/b']);
});
