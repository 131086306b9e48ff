import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger, PayloadTooLargeException } from '@nestjs/common';
import type { Response } from 'express';
import { STATUS_CODES } from 'node:http';
import { EngineUnavailableError } from '../docker/docker-engine';
import { QuotaExceededException } from './quota';

/**
 * Every error leaves as JSON `{ statusCode, error, message }`. Infrastructure faults are 503 (retry
 * later); anything unexpected is a 500 whose details stay in the server log, never in the response.
 */
@Catch()
export class ErrorsFilter implements ExceptionFilter {
  private readonly log = new Logger('HTTP');

  /** uploadMaxBytes: named in the 413 for an upload that is too large (multer only says "File too large"). */
  constructor(private readonly uploadMaxBytes?: number) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) return;
    if (err instanceof HttpException) {
      const body = err.getResponse();
      if (err instanceof QuotaExceededException) res.set('Retry-After', String(err.retryAfterSeconds));
      if (err instanceof PayloadTooLargeException && err.message === 'File too large') {
        res.status(413).json({ statusCode: 413, error: 'Payload Too Large', message: `the upload is too large: the limit is ${this.uploadMaxBytes ?? 'set by KILN_UPLOAD_MAX'} bytes (KILN_UPLOAD_MAX)` });
        return;
      }
      res.status(err.getStatus()).json(typeof body === 'string' ? { statusCode: err.getStatus(), message: body } : body);
      return;
    }
    const e = err as { status?: number; message?: string; type?: string; limit?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json({ statusCode: 413, error: 'Payload Too Large', message: `the request body is too large: the limit is ${e.limit} bytes (send a project as a multipart tarball)` });
      return;
    }
    // body-parser errors (malformed JSON, too large) carry their own 4xx status.
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ statusCode: e.status, error: STATUS_CODES[e.status] ?? 'Client Error', message: e.message ?? 'bad request' });
      return;
    }
    if (err instanceof EngineUnavailableError) {
      res.status(HttpStatus.SERVICE_UNAVAILABLE).json({ statusCode: 503, error: 'Service Unavailable', message: err.message });
      return;
    }
    const unreachable = backendUnreachable(err);
    if (unreachable) {
      // Nothing was accepted: a submission records its run in one transaction, so a failed request left nothing behind.
      this.log.warn(`${unreachable}: ${(err as Error).message}`);
      res.status(HttpStatus.SERVICE_UNAVAILABLE).set('Retry-After', '5').json({ statusCode: 503, error: 'Service Unavailable', message: `${unreachable}; nothing was recorded, try again shortly` });
      return;
    }
    this.log.error(err instanceof Error ? err.stack ?? err.message : String(err));
    res.status(HttpStatus.INTERNAL_SERVER_ERROR).json({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the server log' });
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

/** Names the store that could not be reached when the error says so (PostgreSQL or Redis), else null. */
export function backendUnreachable(err: unknown): string | null {
  const e = err as { code?: string; message?: string; name?: string; constructor?: { name?: string } };
  const message = e?.message ?? '';
  // PostgreSQL: class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
  if (typeof e?.code === 'string' && (/^08/.test(e.code) || /^57P0[123]$/.test(e.code))) return 'the database is unreachable';
  if (/Connection terminated|connect ECONNREFUSED .*:5432|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(message)) return 'the database is unreachable';
  if (/Connection is closed|MaxRetriesPerRequestError|Reached the max retries per request|Stream isn't writeable|enableOfflineQueue/i.test(message)) return 'Redis is unreachable';
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return /6379|redis/i.test(message) ? 'Redis is unreachable' : 'a backing service is unreachable';
  return null;
}
