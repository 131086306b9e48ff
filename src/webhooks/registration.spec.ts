import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { fullNameProblem, labelMapProblem, MAX_FULL_NAME, MAX_LABEL_MAP_ENTRIES, signatureMatches } from './registration';

test('fullName: owner/name, at most 200 characters, no . or .. part', () => {
  for (const ok of ['octo/demo', 'Octo-Org/my.repo_1', `${'a'.repeat(99)}/${'b'.repeat(100)}`]) assert.equal(fullNameProblem(ok), null, ok);
  const bad: [unknown, RegExp][] = [
    ['', /owner\/name/],
    [undefined, /owner\/name/],
    [42, /owner\/name/],
    ['octo', /owner\/name/],
    ['a/b/c', /owner\/name/],
    ['a/b?x', /owner\/name/],
    [`${'a'.repeat(150)}/${'b'.repeat(51)}`, new RegExp(`is 202 characters long; the limit is ${MAX_FULL_NAME}`)],
    ['../..', /has a part '\.' or '\.\.'/],
    ['octo/..', /has a part/],
    ['./x', /has a part/],
  ];
  for (const [name, message] of bad) assert.match(fullNameProblem(name) ?? 'accepted', message, String(name));
});

test('labelMap: labels and environment names checked, entries capped, each refusal names the entry', () => {
  assert.equal(labelMapProblem(undefined), null);
  assert.equal(labelMapProblem({}), null);
  assert.equal(labelMapProblem({ 'ubuntu-latest': 'python-3.13', 'self-hosted': 'node-22', X64: 'python-3.11@20250101.1' }), null);
  const bad: [unknown, RegExp][] = [
    [[], /must be an object/],
    ['python', /must be an object/],
    [{ 'ubuntu latest': 'python-3.13' }, /the label "ubuntu latest" is not a runs-on label/],
    [{ '': 'python-3.13' }, /the label "" is not a runs-on label/],
    [{ constructor: 'python-3.13' }, /the label "constructor" .*Object property/],
    [{ toString: 'python-3.13' }, /the label "toString"/],
    [JSON.parse('{"__proto__": "python-3.13"}'), /the label "__proto__"/],
    [{ 'ubuntu-latest': 'Python 3' }, /the value for "ubuntu-latest" must be an environment name/],
    [{ 'ubuntu-latest': '../../etc' }, /the value for "ubuntu-latest"/],
    [{ 'ubuntu-latest': 42 }, /the value for "ubuntu-latest"/],
    [{ 'ubuntu-latest': { nested: 'x' } }, /the value for "ubuntu-latest"/],
    [{ 'ubuntu-latest': 'x'.repeat(101) }, /the value for "ubuntu-latest"/],
    [{ ['l'.repeat(101)]: 'python-3.13' }, /is not a runs-on label/],
    [Object.fromEntries(Array.from({ length: MAX_LABEL_MAP_ENTRIES + 1 }, (_, i) => [`l${i}`, 'python-3.13'])), /has 51 entries; the limit is 50/],
  ];
  for (const [map, message] of bad) assert.match(labelMapProblem(map) ?? 'accepted', message, JSON.stringify(map));
});

test('signatureMatches: HMAC-SHA256 over the raw bytes, sha256=<hex>', () => {
  const secret = 'a-webhook-secret-of-some-length';
  const raw = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]); // not valid UTF-8
  const good = `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
  assert.equal(signatureMatches(secret, raw, good), true);
  assert.equal(signatureMatches(secret, raw, good.toUpperCase().replace('SHA256=', 'sha256=')), true);
  assert.equal(signatureMatches('another-secret-of-some-length', raw, good), false);
  assert.equal(signatureMatches(secret, Buffer.concat([raw, Buffer.from(' ')]), good), false);
  for (const header of [undefined, '', 'sha256=', good.slice(0, -1), `sha1=${good.slice(7)}`, `${good}00`, 'sha256=' + '0'.repeat(64)]) {
    assert.equal(signatureMatches(secret, raw, header), false, String(header));
  }
});
