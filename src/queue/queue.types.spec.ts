import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fairPriority, labelOf, MAX_PRIORITY } from './queue.types';

test("fair share: the priority is the owner's jobs queued or running (1 goes first), bounded", () => {
  assert.equal(fairPriority(1), 1);
  assert.equal(fairPriority(3), 3);
  assert.ok(fairPriority(2) > fairPriority(1), 'an owner with more jobs active waits behind one with fewer');
  assert.equal(fairPriority(0), 1, 'never 0: Bull treats 0 as "no priority" and puts such jobs behind every prioritised one');
  assert.equal(fairPriority(-5), 1);
  assert.equal(fairPriority(1e12), MAX_PRIORITY);
  assert.equal(fairPriority(2.7), 2);
});

test("labelOf: an environment's label by its name, with or without a version", () => {
  assert.equal(labelOf('python-3.13@20260101.1', { 'python-3.13': 'runsc' }), 'runsc');
  assert.equal(labelOf('python-3.11', { 'python-3.13': 'runsc' }), null);
});
