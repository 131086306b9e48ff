/**
 * Case 8: resident memory of `kiln serve` at rest: after start-up, and after one job once it has
 * settled (the median of samples over a few seconds).
 */
import { KilnServer } from '../lib/kiln';
import { memoryOf } from '../lib/proc';
import { median, MiB, say, sleep } from '../lib/util';

export interface IdleRss {
  afterStartBytes: number;
  afterOneJobBytes: number;
  settleSeconds: number;
}

async function rssMedian(pid: number, samples: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    xs.push(memoryOf(pid)?.rss ?? NaN);
    await sleep(1000);
  }
  return median(xs);
}

export async function idleRss(k: KilnServer, settleSeconds: number): Promise<IdleRss> {
  await sleep(settleSeconds * 1000);
  const afterStartBytes = await rssMedian(k.pid, 3);
  const v = await k.submitCommand('python3 -c pass');
  const done = await k.waitCompleted(v.id);
  if (done.conclusion !== 'success') throw new Error(`idle job ${v.id}: ${done.conclusion}`);
  await sleep(settleSeconds * 1000);
  const afterOneJobBytes = await rssMedian(k.pid, 5);
  say(`  RSS after start-up ${(afterStartBytes / MiB).toFixed(0)} MiB, after one job (settled ${settleSeconds} s) ${(afterOneJobBytes / MiB).toFixed(0)} MiB`);
  return { afterStartBytes, afterOneJobBytes, settleSeconds };
}
