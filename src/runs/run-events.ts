import { Injectable, Logger } from '@nestjs/common';
import type { Conclusion } from '../execution/job';
import type { Run } from './runs.types';

/**
 * What runs/ tells the rooms above it (webhooks/ sends commit statuses on these): runs/ emits, they
 * subscribe on module init, and runs/ never names them. Listeners are called synchronously and not
 * awaited: one that has slow work to do starts it and returns (a run's conclusion never waits on it).
 */
export interface RunEventPayloads {
  /** A run was marked completed (once per run). `run` is the record as read just before it was concluded. */
  'run-concluded': { run: Run; conclusion: Conclusion };
}

export type RunEventName = keyof RunEventPayloads;
export type RunEventListener<K extends RunEventName> = (payload: RunEventPayloads[K]) => void;

@Injectable()
export class RunEvents {
  private readonly log = new Logger('RunEvents');
  private readonly listeners = new Map<RunEventName, ((payload: unknown) => void)[]>();

  on<K extends RunEventName>(name: K, listener: RunEventListener<K>): void {
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), listener as (payload: unknown) => void]);
  }

  /** Every listener is called; one that throws is logged and does not stop the others or the emitter. */
  emit<K extends RunEventName>(name: K, payload: RunEventPayloads[K]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        listener(payload);
      } catch (e) {
        this.log.warn(`${name} listener: ${(e as Error).message}`);
      }
    }
  }
}
