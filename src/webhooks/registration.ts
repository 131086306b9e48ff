/**
 * Checks on what a repository registration carries (pure: no database, no network), and the
 * webhook signature check. Each refusal says what to fix.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Longest `fullName` (owner/name) accepted: GitHub's own limits are 39 + 100. */
export const MAX_FULL_NAME = 200;
/** Most entries of a repository's labelMap. */
export const MAX_LABEL_MAP_ENTRIES = 50;

const FULL_NAME = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
/** A runs-on label, as the `platform` option of a submission accepts it. */
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** An environment name (optionally @version), as the `platform` option accepts it. */
const ENVIRONMENT = /^[a-z0-9][a-z0-9.@-]{0,99}$/;

/** Returns null when fine, else the reason (for a 400). */
export function fullNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'fullName must be owner/name as the forge sends it';
  if (name.length > MAX_FULL_NAME) return `fullName is ${name.length} characters long; the limit is ${MAX_FULL_NAME}`;
  if (!FULL_NAME.test(name)) return 'fullName must be owner/name as the forge sends it (letters, digits, _ . -)';
  if (name.split('/').some((part) => part === '.' || part === '..')) return `fullName '${name}' has a part '.' or '..'; give owner/name as the forge sends it`;
  return null;
}

/** Returns null when fine, else the reason naming the bad entry (for a 400). */
export function labelMapProblem(map: unknown): string | null {
  if (map === undefined || map === null) return null;
  if (typeof map !== 'object' || Array.isArray(map)) return 'labelMap must be an object of runs-on label -> environment name';
  const entries = Object.entries(map as Record<string, unknown>);
  if (entries.length > MAX_LABEL_MAP_ENTRIES) return `labelMap has ${entries.length} entries; the limit is ${MAX_LABEL_MAP_ENTRIES}`;
  for (const [label, environment] of entries) {
    const shown = JSON.stringify(label.slice(0, 100));
    if (!LABEL.test(label) || label in Object.prototype) {
      return `labelMap: the label ${shown} is not a runs-on label (letters, digits, . _ -, at most 100, not an Object property name such as constructor)`;
    }
    if (typeof environment !== 'string' || !ENVIRONMENT.test(environment)) {
      return `labelMap: the value for ${shown} must be an environment name such as python-3.11 (lower-case letters, digits, . @ -, at most 100)`;
    }
  }
  return null;
}

/**
 * true when header is `sha256=<hex of HMAC-SHA256(secret, raw)>`. The HMAC is taken over the raw
 * bytes and compared in constant time; the same work is done for a missing or malformed header.
 */
export function signatureMatches(secret: string, raw: Buffer, header: string | undefined): boolean {
  const expected = createHmac('sha256', secret).update(raw).digest();
  const hex = /^sha256=([0-9a-fA-F]{64})$/.exec(header ?? '')?.[1];
  const given = hex ? Buffer.from(hex, 'hex') : Buffer.alloc(expected.length);
  return timingSafeEqual(expected, given) && hex !== undefined;
}
