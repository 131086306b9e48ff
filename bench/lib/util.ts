/** Small helpers shared by every case: statistics, formatting, progress output. */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Median of the values (the mean of the two middle ones for an even count); NaN when empty. */
export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Linear-interpolated percentile (p in 0..100); NaN when empty. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = ((s.length - 1) * p) / 100;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

/** A figure: its median over the repetitions, and every repetition's value (kept in results.json). */
export interface Sample {
  median: number;
  min: number;
  max: number;
  n: number;
  values: number[];
}

export function sample(values: number[]): Sample {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length, values: values.map(round3) };
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export const MiB = 1024 * 1024;

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 10) return `${s.toFixed(2)} s`;
  return `${s.toFixed(1)} s`;
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MiB).toFixed(0)} MiB` : 'n/a';
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a';
}

const started = Date.now();

/** Progress on stderr, stamped with the seconds since the bench started; the table goes to stdout. */
export function say(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

export function elapsedSeconds(): number {
  return (Date.now() - started) / 1000;
}

/** Runs `fn` over `items` with at most `parallel` in flight; results in input order. */
export async function pool<T, R>(items: T[], parallel: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(parallel, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return out;
}
