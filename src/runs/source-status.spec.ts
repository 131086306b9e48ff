import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestException, ServiceUnavailableException } from '@nestjs/common';
import { GitSourceError, type GitSourceErrorCode } from '../sources/git-policy';
import { ArchiveError, type ArchiveErrorCode } from '../sources/tar-safety';
import { sourceErrorStatus, sourceHttpException } from './source-status';

const archiveCodes: ArchiveErrorCode[] = [
  'invalid',
  'empty',
  'unsafe-path',
  'path-conflict',
  'unsupported-type',
  'too-many-entries',
  'too-deep',
  'name-too-long',
  'too-large',
];
const gitCodes: GitSourceErrorCode[] = [
  'invalid-url',
  'invalid-ref',
  'private-host',
  'ref-not-found',
  'ambiguous-ref',
  'repo-not-found',
  'auth-required',
  'redirected',
  'tls',
  'not-a-repository',
  'unsafe-tree',
  'timeout',
  'too-large',
  'unreachable',
  'git-failed',
];

test('every archive refusal is 400', () => {
  for (const code of archiveCodes) assert.equal(sourceErrorStatus(new ArchiveError(code, 'x')), 400, code);
});

test('git: bad input is 400, a failure that may pass when tried again is 503, as `permanent` says', () => {
  for (const code of gitCodes) {
    const e = new GitSourceError(code, 'x');
    assert.equal(sourceErrorStatus(e), ['unreachable', 'git-failed'].includes(code) ? 503 : 400, code);
    assert.equal(sourceErrorStatus(e) === 400, e.permanent, code);
  }
});

test('the status follows the code, never the words', () => {
  // Words the old rule read as 413 ("limit" with "bytes") and as retryable ("try again later").
  assert.equal(sourceErrorStatus(new ArchiveError('name-too-long', "entry 'a': path is 2011 bytes long, over the limit of 1024; shorten it")), 400);
  assert.equal(sourceErrorStatus(new ArchiveError('too-large', "entry 'b': file is 900 bytes, over the limit of 512 bytes per file; leave it out")), 400);
  assert.equal(sourceErrorStatus(new GitSourceError('timeout', 'the clone took longer than 2 s; try again later')), 400);
  assert.equal(sourceErrorStatus(new GitSourceError('git-failed', 'checked out a instead of b')), 503);
});

test('the exception carries the status and the message after its prefix', () => {
  const refused = sourceHttpException(new ArchiveError('empty', 'the archive is empty'), 'source: ');
  assert.ok(refused instanceof BadRequestException);
  assert.deepEqual(refused.getResponse(), { statusCode: 400, error: 'Bad Request', message: 'source: the archive is empty' });
  const later = sourceHttpException(new GitSourceError('unreachable', "could not fetch from 'h'; try again later"), 'repo: ');
  assert.ok(later instanceof ServiceUnavailableException);
  assert.equal(later.getStatus(), 503);
  assert.equal(later.message, "repo: could not fetch from 'h'; try again later");
  assert.equal(sourceHttpException(new ArchiveError('invalid', 'not a tar')).message, 'not a tar');
});
