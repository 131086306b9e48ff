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
      assert.throws(() => validateDto(Dto, { n }), (e: unknown) => e instanceof BadRequestException, JSON.stringify(n));
    }
  });
});
