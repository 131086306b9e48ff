import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize } from './size';

test('parseSize reads Docker-style sizes in binary units', () => {
  assert.equal(parseSize('512m'), 512 * 1024 ** 2);
  assert.equal(parseSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('256MiB'), 256 * 1024 ** 2);
  assert.equal(parseSize('1.5k'), 1536);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ['lots', '-1m', '0', 0, 1.5, '1x', null]) assert.equal(parseSize(bad), null, String(bad));
  assert.equal(parseSize('0', { zero: true }), 0);
  assert.equal(parseSize(0, { zero: true }), 0);
  assert.equal(parseSize('1 g'), 1024 ** 3);
  assert.equal(parseSize(`${2 ** 60}t`), null, 'past the safe integers');
});
