import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestException } from '@nestjs/common';
import { IsInt, IsOptional } from 'class-validator';
import { NumberFromText, validateDto } from './validate';

class Dto {
  @IsOptional() @NumberFromText() @IsInt() n?: number;
}

describe('NumberFromText', () => {
  it('takes a number, or digits as text', () => {
    assert.equal(validateDto(Dto, { n: 5 }).n, 5);
    assert.equal(validateDto(Dto, { n: '7' }).n, 7);
  });
  it('leaves anything else to the validators: 400, never a TypeError', () => {
    for (const n of ['x', [{ toString: {} }], { valueOf: {}, toString: {} }, [], {}, true]) {
      assert.throws(
        () => validateDto(Dto, { n }),
        (e: unknown) => e instanceof BadRequestException,
        JSON.stringify(n),
      );
    }
  });
});

describe('validateDto', () => {
  it('refuses reserved keys at any depth (multipart fields nest by their names) with 400 naming where', () => {
    assert.throws(
      () => validateDto(Dto, { n: 1, platform: { constructor: 'x' } }),
      (e: unknown) => e instanceof BadRequestException && /platform\.constructor/.test(JSON.stringify(e.getResponse())),
    );
  });
});
