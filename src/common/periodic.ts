import { Logger } from '@nestjs/common';

/**
 * A sweep run at start-up and then every `everyMs` until stopped: the timer boilerplate shared by the
 * container reaper, the artifact retention sweep and the scratch sweeper. A failing pass is logged and
 * the next one runs on time; passes never overlap.
 */
export class Periodic {
  private timer?: NodeJS.Timeout;
  private busy = false;

  constructor(
    private readonly log: Logger,
    private readonly what: string,
    private readonly everyMs: number,
    private readonly pass: () => unknown,
  ) {}

  start(): void {
    const tick = async () => {
      if (this.busy) return;
      this.busy = true;
      try {
        await this.pass();
      } catch (e) {
        this.log.warn(`${this.what}: ${(e as Error).message}`);
      } finally {
        this.busy = false;
      }
    };
    void tick();
    this.timer = setInterval(() => void tick(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
