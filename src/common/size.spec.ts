import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, parseSize } from './size';

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

test('formatBytes words sizes in binary units, one decimal unless whole', () => {
  assert.equal(formatBytes(0), '0 bytes');
  assert.equal(formatBytes(1023), '1023 bytes');
  assert.equal(formatBytes(1024), '1 KiB');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(100 * 1024 ** 2), '100 MiB');
  assert.equal(formatBytes(3.25 * 1024 ** 3), '3.3 GiB');
  assert.equal(formatBytes(2048 * 1024 ** 4), '2048 TiB', 'TiB is the largest unit');
});
