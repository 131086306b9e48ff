import { BadRequestException } from '@nestjs/common';
import { ClassConstructor, plainToInstance, Transform } from 'class-transformer';
import { validateSync } from 'class-validator';
import { reservedKeyPath } from './json-limits';

/** Validates a body against a DTO class as the global ValidationPipe would (for routes that take two shapes). */
export function validateDto<T extends object>(cls: ClassConstructor<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestException('the body must be a JSON object');
  // Multipart text fields are nested by their names (`platform[constructor]`): the same keys are refused as in JSON.
  const reserved = reservedKeyPath(body);
  if (reserved !== null)
    throw new BadRequestException(`the field at ${reserved} is not accepted: rename it (__proto__, constructor, toString and valueOf are reserved)`);
  const dto = plainToInstance(cls, body);
  const errors = validateSync(dto, { whitelist: true, forbidNonWhitelisted: true });
  if (errors.length) throw new BadRequestException(errors.flatMap((e) => Object.values(e.constraints ?? { [e.property]: `${e.property} is not valid` })));
  return dto;
}

/**
 * A number field that may come as text (a query or multipart field): a string of digits becomes the
 * number, anything else is left as it is for the validators to refuse. (class-transformer's
 * `@Type(() => Number)` calls Number() on whatever came, and an object with its own `toString` key
 * makes that throw: a 500.)
 */
export const NumberFromText = () => Transform(({ value }) => (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value));
