import type { IncomingMessage } from 'node:http';

/**
 * Shape limits of a JSON request body, checked over its raw bytes before it is parsed: one pass,
 * linear in the body, so a body that would cost the validation (class-transformer is quadratic in
 * the keys of an object, and recursive in its depth) far more than its size is refused at the door,
 * before the rate limit, the guard or any pipe sees it.
 */
export interface JsonShapeLimits {
  /** Object keys plus array elements in the whole body. */
  maxItems: number;
  /** Objects and arrays nested in one another. */
  maxDepth: number;
}

/** Every API route: the quick form's `files` (1000 files) is the widest body a client sends. */
export const API_JSON_LIMITS: JsonShapeLimits = { maxItems: 10_000, maxDepth: 32 };
/**
 * Forge deliveries (parsed once, never given to class-transformer): a push of 2048 commits, each
 * with its author, committer and lists of files, stays well under it.
 */
export const WEBHOOK_JSON_LIMITS: JsonShapeLimits = { maxItems: 100_000, maxDepth: 64 };

/** A body over a shape limit: 413 (too many items) or 400 (too deep); the message names the limit. */
export class JsonShapeError extends Error {
  readonly type = 'entity.too.complex';
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

/**
 * Throws JsonShapeError when the JSON text has more items (object keys and array elements) or deeper
 * nesting than the limits allow. It does not validate the JSON (the parser does, afterwards): outside
 * strings it counts an item per `:`, per `,` inside an array and per array opened, and a level per
 * `{`/`[`. One pass, no allocation beyond a stack of maxDepth. Takes UTF-8 bytes (no byte of a
 * multi-byte character is ASCII) or a decoded string.
 */
export function checkJsonShape(body: Buffer | string, limits: JsonShapeLimits): void {
  const at = typeof body === 'string' ? (i: number) => body.charCodeAt(i) : (i: number) => body[i];
  const n = body.length;
  const inArray = new Uint8Array(limits.maxDepth + 1);
  const tooMany = () =>
    new JsonShapeError(413, `the JSON body has more than ${limits.maxItems} keys and array elements (the limit for this route is ${limits.maxItems} in all)`);
  let depth = 0;
  let items = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === COLON || (c === COMMA && inArray[depth] === 1)) {
      if (++items > limits.maxItems) throw tooMany();
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limits.maxDepth)
        throw new JsonShapeError(
          400,
          `the JSON body nests objects or arrays more than ${limits.maxDepth} deep (the limit for this route is depth ${limits.maxDepth})`,
        );
      inArray[depth] = c === OPEN_ARRAY ? 1 : 0;
      if (c === OPEN_ARRAY && ++items > limits.maxItems) throw tooMany();
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth > 0) depth--;
    }
  }
}

/**
 * body-parser's `verify` for JSON: keeps the raw bytes (webhook signatures are checked over them)
 * and refuses a body over the shape limits of its route. An error thrown here reaches the errors
 * filter with its status, and the body is never parsed.
 */
export function verifyJsonBody(
  req: IncomingMessage & { rawBody?: Buffer; path?: string; originalUrl?: string },
  _res: unknown,
  buf: Buffer,
  encoding: string,
): void {
  req.rawBody = buf;
  const url = req.originalUrl ?? req.url ?? '';
  const limits = /^\/api\/v1\/webhooks\//.test(url) ? WEBHOOK_JSON_LIMITS : API_JSON_LIMITS;
  const utf8 = !encoding || /^utf-?8$/i.test(encoding);
  let text: Buffer | string = buf;
  if (!utf8) {
    try {
      text = new TextDecoder(encoding).decode(buf);
    } catch {
      throw new JsonShapeError(415, `unsupported charset "${encoding}": send JSON as UTF-8`);
    }
  }
  checkJsonShape(text, limits);
}

/**
 * Keys class-transformer cannot take: it drops `__proto__` and `constructor` silently (a file of the
 * quick form named so would be lost) and, on a nested object, takes a `constructor` value for the
 * class to build (a 500); an object whose own `toString`/`valueOf` is not a function throws wherever
 * it is turned into text or a number. Refused with 400, wherever they are in the body.
 */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'toString', 'valueOf']);

/** The path of the first reserved key in a parsed body (depth and size already bounded), or null. */
export function reservedKeyPath(body: unknown): string | null {
  const stack: [unknown, string][] = [[body, '']];
  while (stack.length) {
    const [value, at] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      value.forEach((v, i) => stack.push([v, `${at}[${i}]`]));
      continue;
    }
    for (const key of Object.keys(value)) {
      const here = at ? `${at}.${key}` : key;
      if (RESERVED_KEYS.has(key)) return here;
      stack.push([(value as Record<string, unknown>)[key], here]);
    }
  }
  return null;
}

/** Middleware after the body parsers: a body holding a reserved key is 400 (the webhook route takes any payload). */
export function refuseReservedKeys(req: IncomingMessage & { body?: unknown; originalUrl?: string }, _res: unknown, next: (err?: unknown) => void): void {
  if (req.body === null || typeof req.body !== 'object' || /^\/api\/v1\/webhooks\//.test(req.originalUrl ?? req.url ?? '')) return next();
  const at = reservedKeyPath(req.body);
  if (at === null) return next();
  next(new JsonShapeError(400, `the key at ${at} is not accepted in a request body: rename it (__proto__, constructor, toString and valueOf are reserved)`));
}
