import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newId } from './ids';

test('ids: 16 alphanumerics, never an option-looking string, no repeats in 10 000', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newId();
    assert.match(id, /^[A-Za-z0-9]{16}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 10_000);
});
