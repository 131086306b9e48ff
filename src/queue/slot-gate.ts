import type { Queue } from 'bull';

/**
 * A worker's job slots shared by the queues it consumes (its default queue and one per label). Bull
 * runs `concurrency` loops per queue, so a worker on two queues would run twice its slots: when every
 * slot is taken the gate pauses the worker's queues locally (no more fetching, so a free worker gets
 * the waiting entries) and resumes them when a slot frees. An entry fetched in the instant before the
 * pause waits here for a slot.
 */
export class SlotGate {
  private inUse = 0;
  private readonly waiters: (() => void)[] = [];
  private paused = false;
  private stopped = false;

  constructor(
    private readonly slots: number,
    private readonly queues: Queue[],
  ) {}

  get busy(): number {
    return this.inUse;
  }

  async acquire(): Promise<() => void> {
    while (this.inUse >= this.slots) await new Promise<void>((r) => this.waiters.push(r));
    this.inUse++;
    if (this.inUse >= this.slots && this.queues.length > 1 && !this.paused) {
      this.paused = true;
      await Promise.all(this.queues.map((q) => q.pause(true, true).catch(() => undefined)));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse--;
      this.waiters.shift()?.();
      if (this.paused && this.inUse < this.slots && !this.stopped) {
        this.paused = false;
        for (const q of this.queues) void q.resume(true).catch(() => undefined);
      }
    };
  }

  /** Shutting down: take nothing more, and never resume. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.queues.map((q) => q.pause(true, true).catch(() => undefined)));
  }
}
