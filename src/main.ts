import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule, createHttpApp, makeLogger } from './app';
import { CatalogueBuilder } from './catalogue/catalogue.builder';
import { GatewayImageBuilder } from './catalogue/gateway.builder';
import { ConfigError, loadConfig, Role } from './config/config';
import { Metrics } from './common/metrics';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

const USAGE = `usage: kiln <command>

  serve            API and worker in one process (default); http://KILN_HOST:KILN_PORT
  api              the HTTP API only
  worker           the queue worker only
  images [NAME..]  build the runner images of environments/ (cached), probe them and publish
                   their software reports; with names, only those environments

Configuration comes from environment variables (see README.md): KILN_HOST, KILN_PORT,
KILN_DATA_DIR, DATABASE_URL, REDIS_URL, KILN_DEFAULT_ENVIRONMENT, KILN_DEBIAN_MIRROR, ...
`;

export async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  if (!['serve', 'api', 'worker', 'images'].includes(command)) {
    process.stderr.write(`kiln: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`kiln: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const role = command as Role;
  const log = new Logger('Kiln');

  if (role === 'images') {
    const ctx = await NestFactory.createApplicationContext(AppModule.forRole(config, role), { logger: makeLogger(config) });
    try {
      // The egress gateway's image is built with the environments (or alone: `kiln images egress-gateway`).
      const envs = rest.filter((n) => n !== 'egress-gateway');
      const outcomes = rest.length && !envs.length ? [] : await ctx.get(CatalogueBuilder).buildAll(envs);
      if (!rest.length || rest.includes('egress-gateway')) outcomes.push(await ctx.get(GatewayImageBuilder).build());
      for (const o of outcomes) process.stdout.write(`${o.name}@${o.version}\t${o.action}\t${o.seconds.toFixed(1)} s\t${o.imageId.slice(7, 19)}\n`);
    } finally {
      await ctx.close();
    }
    return;
  }

  if (role === 'worker') {
    const ctx = await NestFactory.createApplicationContext(AppModule.forRole(config, role), { logger: makeLogger(config) });
    ctx.enableShutdownHooks();
    if (config.metricsPort !== null) {
      const metrics = ctx.get(Metrics);
      const server = http.createServer((req, res) => {
        if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
          res.writeHead(404).end('only GET /metrics here\n');
          return;
        }
        void metrics.text().then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body),
          (e: Error) => res.writeHead(500).end(e.message),
        );
      });
      await new Promise<void>((resolve) => server.listen(config.metricsPort!, config.host, resolve));
      server.unref();
      log.log(`worker metrics on http://${config.host}:${(server.address() as AddressInfo).port}/metrics`);
    }
    log.log('worker started');
    return;
  }

  const app = await createHttpApp(config, role);
  await app.listen(config.port, config.host);
  log.log(`${role} listening on http://${config.host}:${config.port} (API /api/v1, docs /api/docs, data ${config.dataDir}, database ${config.database.kind})`);
}
