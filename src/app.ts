import { ConsoleLogger, DynamicModule, INestApplication, LogLevel, Module, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { CatalogueApiModule, CatalogueModule } from './catalogue/catalogue.module';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig, projectRoot, Role } from './config/config';
import { CoreModule } from './core.module';
import { HealthModule } from './health/health.module';
import { AuthApiModule, AuthCoreModule } from './auth/auth.module';
import { RunsApiModule, RunsCoreModule, WorkerModule } from './runs/runs.module';
import { WebhooksModule } from './webhooks/webhooks.module';
import { ErrorsFilter } from './http/errors.filter';
import { addressOf } from './db/unreachable';
import { refuseReservedKeys, verifyJsonBody } from './http/json-limits';
import { securityHeaders } from './http/security-headers';

export const API_PREFIX = 'api/v1';

/** The modules each role loads. `serve` = api + worker in one process. */
@Module({})
export class AppModule {
  static forRole(config: KilnConfig, role: Role): DynamicModule {
    const http = role === 'serve' || role === 'api';
    const worker = role === 'serve' || role === 'worker';
    return {
      module: AppModule,
      imports: [
        CoreModule.forConfig(config),
        CatalogueModule,
        ...(http || worker ? [AuthCoreModule, RunsCoreModule.forConfig(config)] : []),
        ...(http ? [AuthApiModule, CatalogueApiModule, HealthModule, RunsApiModule.forConfig(config)] : []),
        ...(worker ? [WorkerModule.forConfig()] : []),
        // Last: its controller's routes come after the runs API's, as when it was registered there.
        ...(http || worker ? [WebhooksModule.forRole({ http, worker })] : []),
      ],
    };
  }
}

export function logLevels(level: KilnConfig['logLevel']): LogLevel[] {
  const order: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];
  return order.slice(0, order.indexOf(level) + 1);
}

/** Kiln's logger: the configured levels; text (colours only on a terminal) or one JSON object per line. */
export function makeLogger(config: KilnConfig): ConsoleLogger {
  if (config.logFormat === 'json') return new ConsoleLogger({ logLevels: logLevels(config.logLevel), json: true, colors: false });
  return new ConsoleLogger({ logLevels: logLevels(config.logLevel), colors: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR });
}

/** Applies what every HTTP instance of Kiln has: prefix, validation, error shape, OpenAPI docs. */
export function configureHttp(app: INestApplication): void {
  app.setGlobalPrefix(API_PREFIX, { exclude: ['metrics'] });
  app.use(securityHeaders);
  // JSON bodies carry the quick form's files (4 MiB in all); tarballs come as multipart, capped by multer.
  // Their shape (keys, depth) is checked over the raw bytes before parsing (src/http/json-limits.ts), which
  // also keeps the raw bytes for webhook signatures. Registered here, Nest's own JSON parser is left out.
  // (The adapter is called directly: the application's useBodyParser would replace `verify` with Nest's rawBody one.)
  (app.getHttpAdapter() as ExpressAdapter).useBodyParser('json', false, { limit: '6mb', verify: verifyJsonBody });
  app.use(refuseReservedKeys);
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }));
  const config = app.get<KilnConfig>(KILN_CONFIG, { strict: false });
  app.useGlobalFilters(
    new ErrorsFilter(config.uploadMaxBytes, {
      database: config.database.kind === 'postgres' ? addressOf(config.database.url, 5432) : undefined,
      redis: addressOf(config.redisUrl, 6379),
    }),
  );
  (app as NestExpressApplication).disable?.('x-powered-by');
  const doc = new DocumentBuilder()
    .setTitle('Kiln')
    .setDescription('Published runner environments and hardened job execution for untrusted code')
    .setVersion('1')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('api/docs', app, () => SwaggerModule.createDocument(app, doc));
  // The web pages: plain files from src/ui/ (no CDN, no build tool), at /.
  (app as NestExpressApplication).useStaticAssets(path.join(projectRoot(), 'src', 'ui'), { index: 'index.html', maxAge: 0 });
}

export async function createHttpApp(config: KilnConfig, role: Role): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRole(config, role), {
    logger: makeLogger(config),
    bodyParser: true,
    rawBody: true, // webhook signatures are checked over the exact bytes
  });
  configureHttp(app);
  app.enableShutdownHooks();
  return app;
}
