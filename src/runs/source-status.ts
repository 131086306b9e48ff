import { BadRequestException, HttpException, ServiceUnavailableException } from '@nestjs/common';
import { GitSourceError, type GitSourceErrorCode } from '../sources/git-policy';
import type { ArchiveError, ArchiveErrorCode } from '../sources/tar-safety';

/** A refused source: an archive (upload, clone, quick-form files) or a git repository. */
export type SourceError = ArchiveError | GitSourceError;

/**
 * An archive refusal is the submitter's to fix: 400 for every code. 413 answers a request body over
 * its byte limit, before any archive is read (KILN_UPLOAD_MAX, the JSON body limit); a limit inside
 * an archive (a file, all files, what a gzip expands to, a name's length) is 400.
 */
const ARCHIVE_STATUS: Record<ArchiveErrorCode, 400> = {
  invalid: 400,
  empty: 400,
  'unsafe-path': 400,
  'path-conflict': 400,
  'unsupported-type': 400,
  'too-many-entries': 400,
  'too-deep': 400,
  'name-too-long': 400,
  'too-large': 400,
};

/** Bad input is 400; a failure that may pass when tried again (the network, the server) is 503. */
const GIT_STATUS: Record<GitSourceErrorCode, 400 | 503> = {
  'invalid-url': 400,
  'invalid-ref': 400,
  'private-host': 400,
  'ref-not-found': 400,
  'ambiguous-ref': 400,
  'repo-not-found': 400,
  'auth-required': 400,
  redirected: 400,
  tls: 400,
  'not-a-repository': 400,
  'unsafe-tree': 400,
  timeout: 400,
  'too-large': 400,
  unreachable: 503,
  'git-failed': 503,
};

/** The HTTP status of a refused source, from its code: the one place it is decided, never from the message. */
export function sourceErrorStatus(e: SourceError): 400 | 503 {
  return e instanceof GitSourceError ? GIT_STATUS[e.code] : ARCHIVE_STATUS[e.code];
}

/** The exception to answer a refused source with: its status, its message after `prefix` (e.g. 'source: '). */
export function sourceHttpException(e: SourceError, prefix = ''): HttpException {
  const message = `${prefix}${e.message}`;
  return sourceErrorStatus(e) === 503 ? new ServiceUnavailableException(message) : new BadRequestException(message);
}
