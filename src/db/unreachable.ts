/** What a database or Redis client error says about which backing store is away (for 503 answers and retries). */

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

export interface BackendAddresses {
  /** `host:port` of PostgreSQL (DATABASE_URL), when used. */
  database?: string;
  /** `host:port` of Redis (REDIS_URL). */
  redis?: string;
}

/** `host:port` of a postgres:// or redis:// URL, with the scheme's default port. */
export function addressOf(url: string, defaultPort: number): string | undefined {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || defaultPort}`;
  } catch {
    return undefined;
  }
}

/** Names the store that could not be reached when the error says so (PostgreSQL or Redis), else null. */
export function backendUnreachable(err: unknown, addresses: BackendAddresses = {}): string | null {
  const e = err as { code?: string; message?: string; name?: string; constructor?: { name?: string } };
  const message = e?.message ?? '';
  // PostgreSQL: class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
  if (typeof e?.code === 'string' && (/^08/.test(e.code) || /^57P0[123]$/.test(e.code))) return 'the database is unreachable';
  if (/Connection terminated|connect ECONNREFUSED .*:5432|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(message))
    return 'the database is unreachable';
  if (/Connection is closed|MaxRetriesPerRequestError|Reached the max retries per request|Stream isn't writeable|enableOfflineQueue/i.test(message))
    return 'Redis is unreachable';
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) {
    // A refused connection names the address it tried: compare it with the configured ones.
    const to = /(\S+:\d+)\s*$/.exec(message)?.[1];
    if (to && addresses.database && sameAddress(to, addresses.database)) return 'the database is unreachable';
    if (to && addresses.redis && sameAddress(to, addresses.redis)) return 'Redis is unreachable';
    return /6379|redis/i.test(message) ? 'Redis is unreachable' : 'a backing service is unreachable';
  }
  return null;
}

/** localhost and 127.0.0.1 (as a refused connection reports it) are the same host. */
function sameAddress(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/^localhost:/, '127.0.0.1:').replace(/^\[?::1\]?:/, '127.0.0.1:');
  return norm(a) === norm(b);
}
