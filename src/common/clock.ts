/**
 * What a service reads the time from, in milliseconds since the epoch. Services that decide by the
 * time (rate limits, token expiry, job deadlines) take it as an optional `@Inject(CLOCK)`: the
 * system clock in Kiln, a spec's own clock in a unit test.
 */
export const CLOCK = Symbol('CLOCK');
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
