import { DynamicModule, Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import { diskStorage } from 'multer';
import { scratchName } from '../storage/scratch';
import { ScratchSweeper } from '../storage/scratch-sweeper';
import { BLOB_STORE, LocalBlobStore } from '../storage/blob-store';
import { MetricsCollector } from '../metrics/metrics.collector';
import { CatalogueModule } from '../catalogue/catalogue.module';
import type { KilnConfig } from '../config/config';
import { ContainerReaper, DockerContainerReaper } from '../docker/container-reaper';
import { DockerBackend } from '../docker/docker-backend';
import { EXECUTION_BACKEND } from '../execution/backend';
import { JobRunner } from '../execution/job-runner';
import { QueueModule } from '../queue/queue.module';
import { FileStore } from '../storage/file-store';
import { SourceIntake } from '../sources/source-intake';
import { LogBus } from '../storage/log-bus';
import { LocalLogHub, LogStore } from '../storage/log-store';
import { AdmissionService } from './admission';
import { ArtifactReaper } from './artifact-reaper';
import { JobWorker } from './job-worker';
import { Reaper } from './reaper';
import { WarmPoolFeeder } from './warm-pool-feeder';
import { LogsService } from './logs.service';
import { RunEvents } from './run-events';
import { RunScheduler } from './run-scheduler';
import { RunSources } from './run-sources';
import { RunsController } from './runs.controller';
import { RunsRepository } from './runs.repository';
import { RunsService } from './runs.service';
import { PlanningOptions } from './planning-options';

/** Records, scheduling, the queue and stores: imported once (global), shared by the API and the worker. */
@Module({})
export class RunsCoreModule {
  static forConfig(config: KilnConfig): DynamicModule {
    return {
      module: RunsCoreModule,
      global: true,
      imports: [QueueModule.forConfig(config), CatalogueModule],
      providers: [
        RunsRepository,
        RunScheduler,
        PlanningOptions,
        RunSources,
        FileStore,
        SourceIntake,
        { provide: BLOB_STORE, useClass: LocalBlobStore },
        LocalLogHub,
        LogStore,
        ArtifactReaper,
        ScratchSweeper,
        MetricsCollector,
        AdmissionService,
        RunsService,
        RunEvents,
      ],
      exports: [
        RunsRepository,
        RunScheduler,
        RunSources,
        FileStore,
        SourceIntake,
        BLOB_STORE,
        LocalLogHub,
        LogStore,
        QueueModule,
        AdmissionService,
        RunsService,
        RunEvents,
      ],
    };
  }
}

/** The submission and read API. */
@Module({})
export class RunsApiModule {
  static forConfig(config: KilnConfig): DynamicModule {
    return {
      module: RunsApiModule,
      imports: [
        CatalogueModule,
        MulterModule.register({
          // Named for the owning process (scratch.ts): a sweeper removes them once it is gone.
          storage: diskStorage({ destination: new FileStore(config).uploadsDir(), filename: (_req, _file, cb) => cb(null, scratchName('multipart')) }),
          limits: { fileSize: config.uploadMaxBytes, files: 2, fields: 11, fieldSize: 512 * 1024, parts: 20 },
        }),
      ],
      controllers: [RunsController],
      providers: [LogsService, LogBus],
    };
  }
}

/** The queue consumer and the one execution backend. */
@Module({})
export class WorkerModule {
  static forConfig(): DynamicModule {
    return {
      module: WorkerModule,
      imports: [CatalogueModule],
      providers: [
        JobWorker,
        JobRunner,
        DockerBackend,
        { provide: EXECUTION_BACKEND, useExisting: DockerBackend },
        { provide: ContainerReaper, useClass: DockerContainerReaper },
        Reaper,
        WarmPoolFeeder,
      ],
    };
  }
}
