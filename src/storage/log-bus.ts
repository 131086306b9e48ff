import { Inject, Injectable, Logger, OnApplicationShutdown, Optional } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { REDIS } from '../db/redis';
import { LocalLogHub } from './log-store';
import { decodeLogMessage, logChannel, LogMessage } from './log-wire';

export type LogHandler = (message: LogMessage) => void;

interface Channel {
  handlers: Set<LogHandler>;
  /** Settles when Redis has confirmed the SUBSCRIBE. */
  ready: Promise<void>;
}

/** The part of an ioredis connection the bus uses (a fake in unit tests). */
export type Subscriber = Pick<Redis, 'subscribe' | 'unsubscribe' | 'on' | 'disconnect' | 'status'>;

/**
 * The live side of the logs: what writers on any node publish (LogStore.writer) reaches the
 * followers on this node. One subscriber connection per process, opened on the first follower and
 * shared by all: a run's channel is subscribed while at least one follower of the run is here.
 * Delivery is best effort (pub/sub keeps nothing): followers also read the files and poll.
 */
@Injectable()
export class LogBus implements OnApplicationShutdown {
  private readonly log = new Logger(LogBus.name);
  private sub: Subscriber | null = null;
  private readonly channels = new Map<string, Channel>();
  private shutDown = false;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: Pick<KilnConfig, 'queuePrefix'>,
    /** The subscriber connection is a duplicate() of it: same server and options. */
    @Inject(REDIS) private readonly redis: { duplicate(): Subscriber },
    /** This process's writers: their batches come from here, and their copies on Redis are dropped. */
    // Named: a union type's metadata is Object, which Nest cannot resolve (it would quietly pass null).
    @Optional() @Inject(LocalLogHub) private readonly hub: LocalLogHub | null = null,
  ) {
    hub?.listen((name, message) => this.hand(name, message));
  }

  /** True while the subscriber connection is up (when it is not, followers poll more often). */
  get live(): boolean {
    return this.sub?.status === 'ready';
  }

  /**
   * Calls `handler` with every message published for the run from the moment this resolves (Redis
   * confirmed the subscription) until the returned function is called. Rejects when Redis does not
   * confirm the subscription (then nothing is delivered to this handler).
   */
  async subscribe(runId: string, handler: LogHandler): Promise<() => void> {
    if (this.shutDown) throw new Error('the log bus is shut down');
    const sub = this.connection();
    const name = logChannel(this.config.queuePrefix, runId);
    let channel = this.channels.get(name);
    if (!channel) {
      channel = { handlers: new Set(), ready: sub.subscribe(name).then(() => undefined) };
      this.channels.set(name, channel);
    }
    const ch = channel;
    ch.handlers.add(handler);
    try {
      await ch.ready;
    } catch (e) {
      ch.handlers.delete(handler);
      // The next follower tries again.
      if (this.channels.get(name) === ch) this.channels.delete(name);
      throw e;
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      ch.handlers.delete(handler);
      if (ch.handlers.size || this.channels.get(name) !== ch) return;
      this.channels.delete(name);
      // Commands on one connection run in order: a SUBSCRIBE by a later follower comes after this.
      if (this.sub === sub) sub.unsubscribe(name).catch(() => undefined);
    };
  }

  /** How many followers are attached per channel (for tests and diagnostics). */
  followers(runId: string): number {
    return this.channels.get(logChannel(this.config.queuePrefix, runId))?.handlers.size ?? 0;
  }

  onApplicationShutdown(): void {
    this.shutDown = true;
    this.channels.clear();
    this.sub?.disconnect();
    this.sub = null;
  }

  private connection(): Subscriber {
    if (this.sub) return this.sub;
    const sub = this.redis.duplicate();
    let down = false;
    // ioredis reconnects by itself and subscribes the channels again; what was published meanwhile
    // is lost to pub/sub, and followers fill it from the files.
    sub.on('error', (e: Error) => {
      if (down) return;
      down = true;
      this.log.warn(`live log subscriber: ${e.message} (followers fall back to polling the files)`);
    });
    sub.on('ready', () => {
      down = false;
    });
    // As Buffers: this node's own messages (back from Redis) are dropped on their header, never decoded whole.
    sub.on('messageBuffer', (name: Buffer, data: Buffer) => this.deliver(name.toString(), data));
    this.sub = sub;
    return sub;
  }

  private deliver(name: string, data: Buffer): void {
    const channel = this.channels.get(name);
    if (!channel?.handlers.size) return;
    const message = decodeLogMessage(data, this.hub?.origin);
    if (message) this.hand(name, message);
  }

  private hand(name: string, message: LogMessage): void {
    const channel = this.channels.get(name);
    if (!channel?.handlers.size) return;
    for (const handler of [...channel.handlers]) {
      try {
        handler(message);
      } catch (e) {
        this.log.warn(`a live log follower failed on a message: ${(e as Error).message}`);
      }
    }
  }
}
