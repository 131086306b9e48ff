import type { Logger } from '@nestjs/common';
import type { ContainerRuntime, JobSandboxLimits } from '../execution/backend';

/** What a pooled sandbox is made for: a job takes one only when its image, runtime and limits are these. */
export interface PoolTarget {
  image: string;
  runtime: ContainerRuntime;
  limits: JobSandboxLimits;
}

export function poolKey(t: PoolTarget): string {
  const limits = Object.keys(t.limits)
    .sort()
    .map((k) => `${k}=${t.limits[k as keyof JobSandboxLimits]}`)
    .join(',');
  return `${t.runtime}|${t.image}|${limits}`;
}

/** How the pool makes and removes a sandbox (DockerBackend, by SandboxLifecycle.create: the same create + start as a job's own). */
export interface PoolOps {
  create(t: PoolTarget): Promise<string>;
  destroy(id: string): Promise<void>;
}

const RETRY_MS = 30_000;

/**
 * Warm sandboxes: for each target, `size` containers created and started ahead of time, idle and
 * network-less, exactly as a job's own would be. A job takes one (used once, destroyed with the job)
 * and the pool refills in the background. Targets no longer wanted are emptied; a failed creation is
 * retried after 30 s (the engine may be away), never in a loop.
 */
export class WarmPool {
  private readonly idle = new Map<string, string[]>();
  private readonly pending = new Map<string, number>();
  private targets = new Map<string, PoolTarget>();
  private readonly retry = new Map<string, NodeJS.Timeout>();
  private readonly creating = new Set<Promise<void>>();
  private readonly deferred = new Map<string, { key: string; timer: NodeJS.Timeout }>();
  private stopped = false;
  hits = 0;
  misses = 0;
  /** Hits that waited for a sandbox being made. */
  waited = 0;
  private readonly waiters = new Map<string, ((id: string | null) => void)[]>();

  constructor(
    readonly size: number,
    private readonly ops: PoolOps,
    private readonly log: Logger,
  ) {}

  /** The targets to keep warm; idle sandboxes of any other target are removed. */
  setTargets(targets: PoolTarget[]): void {
    if (this.stopped || this.size <= 0) return;
    const next = new Map(targets.map((t) => [poolKey(t), t]));
    for (const [key, ids] of this.idle) {
      if (next.has(key)) continue;
      this.idle.delete(key);
      for (const id of ids) void this.ops.destroy(id).catch(() => undefined);
    }
    this.targets = next;
    for (const key of next.keys()) this.fill(key);
  }

  /**
   * An idle sandbox made for exactly this target (removed from the pool), or null. With `deferMs`, and
   * while another sandbox of the target is still idle, the pool refills only once the taker calls
   * started(id) or after deferMs, whichever is first: making a container costs CPU that, on a small
   * machine, the job's first step would otherwise share. A pool left empty refills at once (the next
   * job would wait for it).
   */
  take(t: PoolTarget, deferMs = 0): string | null {
    const key = poolKey(t);
    const id = this.idle.get(key)?.shift() ?? null;
    if (id) this.hits++;
    else this.misses++;
    if (!this.targets.has(key)) return id;
    if (id) this.refillAfterTake(key, id, deferMs);
    else this.fill(key);
    return id;
  }

  /**
   * take(); or, when nothing is idle but sandboxes of this target are being made that no other taker
   * waits for, the next of them as soon as it is ready: sooner, and cheaper, than making another.
   */
  async takeOrWait(t: PoolTarget, deferMs = 0): Promise<string | null> {
    const key = poolKey(t);
    const waiting = this.waiters.get(key) ?? [];
    if (this.idle.get(key)?.length || this.stopped || !this.targets.has(key) || (this.pending.get(key) ?? 0) <= waiting.length) return this.take(t, deferMs);
    const id = await new Promise<string | null>((resolve) => {
      waiting.push(resolve);
      this.waiters.set(key, waiting);
    });
    if (!id) return this.take(t, deferMs); // it could not be made: a miss, as usual
    this.hits++;
    this.waited++;
    this.refillAfterTake(key, id, deferMs);
    return id;
  }

  /** After `id` was handed out: refill now if the pool is left empty, else once its taker has started (see take). */
  private refillAfterTake(key: string, id: string, deferMs: number): void {
    if (deferMs <= 0 || !this.idle.get(key)?.length) {
      this.fill(key);
      return;
    }
    const timer = setTimeout(() => this.started(id), deferMs);
    timer.unref();
    this.deferred.set(id, { key, timer });
  }

  /** The taker of `id` is past its start (or done): the refill it deferred begins now. */
  started(id: string): void {
    const d = this.deferred.get(id);
    if (!d) return;
    clearTimeout(d.timer);
    this.deferred.delete(id);
    this.fill(d.key);
  }

  /** Idle sandboxes per target (for tests and metrics). */
  idleCount(t?: PoolTarget): number {
    if (t) return this.idle.get(poolKey(t))?.length ?? 0;
    return [...this.idle.values()].reduce((n, ids) => n + ids.length, 0);
  }

  /** Idle sandboxes ready to be taken, by runtime (the kiln_warm_pool_idle_sandboxes gauge). */
  idleByRuntime(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [key, t] of this.targets) out[t.runtime] = (out[t.runtime] ?? 0) + (this.idle.get(key)?.length ?? 0);
    return out;
  }

  /** Shutting down: no more filling; every idle sandbox is removed, and those being made when they are ready. */
  async drain(): Promise<void> {
    this.stopped = true;
    for (const t of this.retry.values()) clearTimeout(t);
    for (const d of this.deferred.values()) clearTimeout(d.timer);
    this.deferred.clear();
    for (const waiting of this.waiters.values()) for (const resolve of waiting.splice(0)) resolve(null);
    const ids = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all([...ids.map((id) => this.ops.destroy(id).catch(() => undefined)), ...this.creating]);
  }

  private fill(key: string): void {
    const target = this.targets.get(key);
    if (this.stopped || !target || this.retry.has(key)) return;
    while ((this.idle.get(key)?.length ?? 0) + (this.pending.get(key) ?? 0) < this.size) {
      this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
      // Counted as made before anyone is handed the sandbox: a taker's refill then sees the pool as it is.
      const settled = () => this.pending.set(key, (this.pending.get(key) ?? 1) - 1);
      const made: Promise<void> = this.ops
        .create(target)
        .then(
          async (id) => {
            settled();
            if (this.stopped || !this.targets.has(key)) {
              this.waiters.get(key)?.shift()?.(null);
              await this.ops.destroy(id).catch(() => undefined);
              return;
            }
            const waiter = this.waiters.get(key)?.shift();
            if (waiter) {
              waiter(id);
              return;
            }
            const ids = this.idle.get(key) ?? [];
            ids.push(id);
            this.idle.set(key, ids);
          },
          (e: Error) => {
            settled();
            this.waiters.get(key)?.shift()?.(null);
            this.log.warn(
              `warm pool: could not prepare a sandbox of ${target.image.slice(0, 19)} (${target.runtime}): ${e.message}; trying again in ${RETRY_MS / 1000} s`,
            );
            const timer = setTimeout(() => {
              this.retry.delete(key);
              this.fill(key);
            }, RETRY_MS);
            timer.unref();
            this.retry.set(key, timer);
          },
        )
        .finally(() => this.creating.delete(made));
      this.creating.add(made);
    }
  }
}
