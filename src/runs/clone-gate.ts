/** The gate is full: `running` tasks hold every place and `waiting` more wait for one. */
export class GateFull extends Error {
  constructor(
    readonly running: number,
    readonly waiting: number,
  ) {
    super(`${running} running and ${waiting} waiting`);
  }
}

/**
 * At most `concurrency` tasks at once; up to `maxWaiting` more wait their turn in arrival order, and
 * any beyond are refused at once (GateFull) instead of piling up. Used for the clones `{repo}`
 * submissions make inside their request (KILN_CLONE_CONCURRENCY, KILN_CLONE_QUEUE).
 */
export class CloneGate {
  private running = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxWaiting: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiters.length >= this.maxWaiting) throw new GateFull(this.running, this.waiters.length);
      // The place is handed over by the task that frees it (running is not decremented in between).
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.running--;
    }
  }
}
