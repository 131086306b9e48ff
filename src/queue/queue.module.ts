import { BullModule, getQueueToken } from '@nestjs/bull';
import { DynamicModule, Module } from '@nestjs/common';
import type { Queue } from 'bull';
import type { KilnConfig } from '../config/config';
import { JobQueue, QUEUES, Queues } from './job-queue';
import { QueueHandlers } from './queue-handlers';
import { queueLabels, queueName } from './queue.types';

/** Bull on Redis; the queues' keys carry KILN_QUEUE_PREFIX. One queue by default, one more per worker label. */
@Module({})
export class QueueModule {
  static forConfig(config: KilnConfig): DynamicModule {
    const url = new URL(config.redisUrl);
    const redis = {
      host: url.hostname,
      port: Number(url.port || 6379),
      password: url.password ? decodeURIComponent(url.password) : undefined,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined,
      tls: url.protocol === 'rediss:' ? {} : undefined,
    };
    const labels = queueLabels(config);
    const names = labels.map(queueName);
    return {
      module: QueueModule,
      imports: [
        BullModule.forRoot({ redis, prefix: config.queuePrefix }),
        ...names.map((name) =>
          BullModule.registerQueue({
            name,
            // A killed worker stops renewing its lock; after queueLockSeconds another worker takes the entry over
            // (Bull's stalled check) and JobWorker decides: run again (no step had started) or fail as 'worker lost'.
            settings: { lockDuration: config.queueLockSeconds * 1000, stalledInterval: Math.max(1000, config.queueLockSeconds * 500), maxStalledCount: 10 },
          }),
        ),
      ],
      providers: [
        {
          provide: QUEUES,
          inject: names.map((n) => getQueueToken(n)),
          useFactory: (...queues: Queue[]): Queues => new Map(labels.map((l, i) => [l, queues[i]])),
        },
        JobQueue,
        QueueHandlers,
      ],
      exports: [JobQueue, QUEUES, QueueHandlers, BullModule],
    };
  }
}
