import type { Logger } from '@nestjs/common';
import { backendUnreachable } from './unreachable';

/** How long a worker keeps retrying a record of a job it runs while the database (or Redis) is away. */
export const PATIENCE_MS = 10 * 60_000;

/**
 * Runs `fn`, retrying (0.5 s, doubling to 5 s) while it fails because the database or Redis is
 * unreachable, for up to `patienceMs`; any other error is thrown at once. A worker's job outlives a
 * brief outage this way instead of being failed, or re-run, for it.
 */
export async function patiently<T>(log: Logger, what: string, fn: () => Promise<T>, patienceMs = PATIENCE_MS): Promise<T> {
  const deadline = Date.now() + patienceMs;
  let delay = 500;
  let warned = false;
  for (;;) {
    try {
      const value = await fn();
      if (warned) log.log(`${what}: recorded after the outage`);
      return value;
    } catch (e) {
      const unreachable = backendUnreachable(e);
      if (!unreachable || Date.now() + delay > deadline) throw e;
      if (!warned) log.warn(`${what}: ${unreachable} (${(e as Error).message}); retrying for up to ${Math.round(patienceMs / 1000)} s`);
      warned = true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/**
 * The same object whose every asynchronous method is called patiently (for a worker's records of the
 * jobs it runs; the methods must be safe to call again, as compare-and-set updates are). A method that
 * returns a plain value is left as it is.
 */
export function patient<T extends object>(target: T, log: Logger, patienceMs = PATIENCE_MS): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const first = value.apply(obj, args);
        if (!(first && typeof (first as Promise<unknown>).then === 'function')) return first;
        let calls = 0;
        return patiently(
          log,
          `${obj.constructor.name}.${String(prop)}`,
          () => (calls++ === 0 ? first : value.apply(obj, args)) as Promise<unknown>,
          patienceMs,
        );
      };
    },
  });
}
