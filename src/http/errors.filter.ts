import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger, PayloadTooLargeException } from '@nestjs/common';
import type { Response } from 'express';
import { STATUS_CODES } from 'node:http';
import { EngineUnavailableError } from '../docker/docker-engine';
import { QuotaExceededException } from '../common/quota';
import { BackendAddresses, backendUnreachable } from '../db/unreachable';

/**
 * Every error leaves as JSON `{ statusCode, error, message }`. Infrastructure faults are 503 (retry
 * later); anything unexpected is a 500 whose details stay in the server log, never in the response.
 */
@Catch()
export class ErrorsFilter implements ExceptionFilter {
  private readonly log = new Logger('HTTP');

  /**
   * uploadMaxBytes: named in the 413 for an upload that is too large (multer only says "File too large").
   * addresses: `host:port` of the database and Redis, to name the one a refused connection was to.
   */
  constructor(
    private readonly uploadMaxBytes?: number,
    private readonly addresses: BackendAddresses = {},
  ) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) return;
    if (err instanceof HttpException) {
      const body = err.getResponse();
      if (err instanceof QuotaExceededException) res.set('Retry-After', String(err.retryAfterSeconds));
      // Every "unavailable" answer says when to come back (Redis or the engine away, a catalogue not built yet).
      else if (err.getStatus() === HttpStatus.SERVICE_UNAVAILABLE && !res.getHeader('Retry-After')) res.set('Retry-After', '5');
      if (err instanceof PayloadTooLargeException && err.message === 'File too large') {
        res.status(413).json({
          statusCode: 413,
          error: 'Payload Too Large',
          message: `the upload is too large: the limit is ${this.uploadMaxBytes ?? 'set by KILN_UPLOAD_MAX'} bytes (KILN_UPLOAD_MAX)`,
        });
        return;
      }
      res.status(err.getStatus()).json(typeof body === 'string' ? { statusCode: err.getStatus(), message: body } : body);
      return;
    }
    const e = err as { status?: number; message?: string; type?: string; limit?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json({
        statusCode: 413,
        error: 'Payload Too Large',
        message: `the request body is too large: the limit is ${e.limit} bytes (send a project as a multipart tarball)`,
      });
      return;
    }
    // body-parser errors (malformed JSON, too large) carry their own 4xx status.
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ statusCode: e.status, error: STATUS_CODES[e.status] ?? 'Client Error', message: e.message ?? 'bad request' });
      return;
    }
    if (err instanceof EngineUnavailableError) {
      res.status(HttpStatus.SERVICE_UNAVAILABLE).set('Retry-After', '5').json({ statusCode: 503, error: 'Service Unavailable', message: err.message });
      return;
    }
    const unreachable = backendUnreachable(err, this.addresses);
    if (unreachable) {
      // Nothing was accepted: a submission records its run in one transaction, so a failed request left nothing behind.
      this.log.warn(`${unreachable}: ${(err as Error).message}`);
      res
        .status(HttpStatus.SERVICE_UNAVAILABLE)
        .set('Retry-After', '5')
        .json({ statusCode: 503, error: 'Service Unavailable', message: `${unreachable}; nothing was recorded, try again shortly` });
      return;
    }
    this.log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    res.status(HttpStatus.INTERNAL_SERVER_ERROR).json({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the server log' });
  }
}
