import { HttpException, HttpStatus } from '@nestjs/common';

/** 429 with a Retry-After header (set by ErrorsFilter) and a message naming the limit. */
export class QuotaExceededException extends HttpException {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super({ statusCode: 429, error: 'Too Many Requests', message, retryAfter: retryAfterSeconds }, HttpStatus.TOO_MANY_REQUESTS);
  }
}
