import Redis from 'ioredis';
import type { KilnConfig } from '../config/config';

export const REDIS = Symbol('REDIS');

/** A Redis connection that never crashes the process while Redis is away; callers see errors per call. */
export function openRedis(config: Pick<KilnConfig, 'redisUrl'>): Redis {
  const client = new Redis(config.redisUrl, {
    lazyConnect: true,
    // A command issued while (re)connecting waits briefly instead of failing at once; a Redis that
    // stays away fails it within the command timeout.
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    commandTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  client.on('error', () => undefined);
  client.connect().catch(() => undefined);
  return client;
}
