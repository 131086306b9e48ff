import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { base64Forms, mask, maskList, maskSecrets, MIN_MASK_LENGTH, SecretMask } from './secret-mask';

const SECRET = 'hunter2-very-secret-value';

test('the raw value is masked wherever it stands, every time', () => {
  assert.equal(maskSecrets(`a ${SECRET} b ${SECRET}${SECRET}`, [SECRET]), 'a *** b ***');
  assert.equal(maskSecrets('nothing here', [SECRET]), 'nothing here');
  assert.equal(mask('anything', []), 'anything');
});

test('base64 of the secret is masked at every alignment, whatever surrounds it', () => {
  const m = new SecretMask([SECRET]);
  for (let prefix = 0; prefix < 9; prefix++) {
    for (let suffix = 0; suffix < 4; suffix++) {
      const encoded = Buffer.from('x'.repeat(prefix) + SECRET + 'y'.repeat(suffix)).toString('base64');
      const masked = m.apply(`token: ${encoded}`);
      assert.match(masked, /\*\*\*/, `prefix ${prefix}, suffix ${suffix}: ${masked}`);
      // What is left is the edges only: fewer than 2 characters of the secret's own bytes around the mask.
      const left = masked.replace('token: ', '').split('***');
      assert.equal(left.length, 2, masked);
      assert.ok(left[0].length <= Math.ceil(((prefix + 2) * 4) / 3) + 1, `prefix ${prefix}: '${left[0]}' is more than the prefix`);
      assert.ok(left[1].length <= Math.ceil(((suffix + 2) * 4) / 3) + 2, `suffix ${suffix}: '${left[1]}' is more than the suffix`);
    }
  }
  // The standalone encoding, padding and all.
  assert.equal(m.apply(Buffer.from(SECRET).toString('base64')), '***');
});

test('the three base64 forms are the characters a value alone decides', () => {
  const forms = base64Forms('abcdef');
  assert.equal(forms.length, 3);
  // Property: each form is inside the base64 of any text holding the value at that alignment.
  fc.assert(
    fc.property(fc.string({ minLength: 3, maxLength: 40 }), fc.uint8Array({ maxLength: 7 }), fc.uint8Array({ maxLength: 7 }), (value, before, after) => {
      const [f0, f1, f2] = base64Forms(value).length === 3 ? base64Forms(value) : [null, null, null];
      const shift = before.length % 3;
      const encoded = Buffer.concat([Buffer.from(before), Buffer.from(value), Buffer.from(after)]).toString('base64');
      const form = [f0, f1, f2][shift];
      if (form) assert.ok(encoded.includes(form), `${JSON.stringify(value)} at shift ${shift}: ${form} not in ${encoded}`);
    }),
    { numRuns: 300 },
  );
});

test('URL-encoded and hex forms are masked too', () => {
  const secret = 'p@ss word/with=signs';
  const m = new SecretMask([secret]);
  assert.equal(m.apply(`url?x=${encodeURIComponent(secret)}&y=1`), 'url?x=***&y=1');
  assert.equal(m.apply(`hex ${Buffer.from(secret).toString('hex')}`), 'hex ***');
  assert.equal(m.apply(`HEX ${Buffer.from(secret).toString('hex').toUpperCase()}`), 'HEX ***');
});

test('a multi-line secret is masked whole and line by line', () => {
  const key = '-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----';
  const m = new SecretMask([key]);
  assert.equal(m.apply(`key=${key}`), 'key=***');
  assert.equal(m.apply('line: MIIBOgIBAAJBAKj34GkxFhD9 end'), 'line: *** end');
  assert.equal(m.apply('-----END KEY-----'), '***');
});

test('overlapping secrets leave no fragment of either', () => {
  const m = new SecretMask(['abcdef', 'defghi']);
  assert.equal(m.apply('<abcdefghi>'), '<***>');
  assert.equal(m.apply('<defghiabcdef>'), '<***>');
});

test('a secret that is a substring of another: the longer is hidden whole', () => {
  const m = new SecretMask(['token', 'token-with-more']);
  assert.equal(m.apply('a token-with-more b token c'), 'a *** b *** c');
  assert.equal(new SecretMask(['token-with-more', 'token']).apply('xtoken-with-morex'), 'x***x');
});

test(`values shorter than ${MIN_MASK_LENGTH} characters are not masked; ${MIN_MASK_LENGTH} and more are`, () => {
  assert.equal(maskSecrets('ab is short', ['ab']), 'ab is short');
  assert.deepEqual(maskList(['ab', '']), []);
  assert.equal(maskSecrets('abc is not', ['abc']), '*** is not');
});

test('::add-mask:: values join the masks; *** itself is not a mask', () => {
  const m = new SecretMask([]);
  assert.ok(m.empty);
  m.add('generated-at-run-time');
  m.add('***');
  assert.equal(m.apply('x generated-at-run-time ***'), 'x *** ***');
  assert.ok(m.holds(Buffer.from('generated-at-run-time').toString('base64')));
  assert.ok(!m.holds('nothing'));
});

test('holds() sees any form (outputs and artifact names are refused on it)', () => {
  const m = new SecretMask([SECRET]);
  for (let prefix = 0; prefix < 3; prefix++) assert.ok(m.holds(Buffer.from('q'.repeat(prefix) + SECRET + 'z').toString('base64')), `prefix ${prefix}`);
  assert.ok(m.holds(`name-${SECRET}`));
  assert.ok(!m.holds('build-output'));
});

test('safeCut never splits a secret: it moves the cut before it, or after one that opens the text', () => {
  const m = new SecretMask([SECRET]);
  const text = 'a'.repeat(10) + SECRET + 'b'.repeat(10);
  for (let at = 1; at < text.length; at++) {
    const cut = m.safeCut(text, at);
    const [head, tail] = [text.slice(0, cut), text.slice(cut)];
    assert.equal(m.apply(head) + m.apply(tail), m.apply(text), `cut at ${at} -> ${cut}`);
  }
  assert.equal(m.safeCut(SECRET + 'rest', 5), SECRET.length);
  assert.equal(new SecretMask([]).safeCut('abcdef', 3), 3);
});
