import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { visible } from './visible';

describe('visible', () => {
  it('escapes ESC, OSC 52, CR, BEL, DEL and C1 controls as \\xNN', () => {
    assert.equal(visible('\x1b[32m■ ok\r\x1b]52;c;cHduZWQ=\x07\x7f\x9b'), '\\x1b[32m■ ok\\x0d\\x1b]52;c;cHduZWQ=\\x07\\x7f\\x9b');
  });
  it('keeps tab, newline and printable unicode', () => {
    assert.equal(visible('a\tb\nc é ✓ 😀'), 'a\tb\nc é ✓ 😀');
  });
  it('escapes NUL', () => {
    assert.equal(visible('\0'), '\\x00');
  });
});
