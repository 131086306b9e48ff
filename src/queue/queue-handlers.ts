import { Injectable } from '@nestjs/common';
import type { Job as BullJob } from 'bull';
import { QUEUE_JOB_NAMES, QueueJobName, QueuePayloads } from './queue.types';

export type QueueHandler<K extends QueueJobName> = (job: BullJob<QueuePayloads[K]>) => Promise<void>;

/**
 * Who handles each queue job name. Each module registers its own handlers (in onModuleInit); the worker
 * looks them up when an entry comes in, and refuses to start (onApplicationBootstrap, after every
 * module's init) while a name of the registry in queue.types.ts has none.
 */
@Injectable()
export class QueueHandlers {
  private readonly handlers = new Map<QueueJobName, (job: BullJob) => Promise<void>>();

  register<K extends QueueJobName>(name: K, handler: QueueHandler<K>): void {
    if (this.handlers.has(name)) throw new Error(`queue job '${name}' has a handler already`);
    this.handlers.set(name, handler as (job: BullJob) => Promise<void>);
  }

  /** The handler of a name read off a queue entry (undefined: a name this Kiln does not know, or one with no handler). */
  get(name: string): ((job: BullJob) => Promise<void>) | undefined {
    return this.handlers.get(name as QueueJobName);
  }

  /** The names of the registry that no module handles. */
  missing(): QueueJobName[] {
    return QUEUE_JOB_NAMES.filter((n) => !this.handlers.has(n));
  }
}
