import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from './config/config';
import { DATABASE, Database, openDatabase } from './db/database';
import { openRedis, REDIS } from './db/redis';
import { DockerEngine } from './docker/docker-engine';
import { Metrics } from './common/metrics';

/** Configuration, database, Redis and the Docker engine: shared by every role. */
@Global()
@Module({})
export class CoreModule implements OnApplicationShutdown {
  constructor(
    @Inject(DATABASE) private readonly db: Database,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  static forConfig(config: KilnConfig): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        { provide: KILN_CONFIG, useValue: config },
        { provide: DATABASE, useFactory: () => openDatabase(config) },
        { provide: REDIS, useFactory: () => openRedis(config) },
        DockerEngine,
        Metrics,
      ],
      exports: [KILN_CONFIG, DATABASE, REDIS, DockerEngine, Metrics],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
    await this.db.close();
  }
}
