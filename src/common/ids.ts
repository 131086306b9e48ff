import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * An unguessable id: 16 characters of [A-Za-z0-9] (about 95 random bits), unbiased (rejection
 * sampling). Never starts with '-', so it cannot be mistaken for an option on a command line.
 */
export function newId(length = 16): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHABET[b % 62];
    }
  }
  return out;
}
