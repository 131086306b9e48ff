import { Controller, Get, Header, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../auth/auth.guard';
import { Metrics } from '../common/metrics';

/** Prometheus text at /metrics (outside /api/v1, as scrapers expect). Aggregates only: public like health. */
@ApiExcludeController()
@Controller('metrics')
@Public()
export class MetricsController {
  constructor(private readonly metrics: Metrics) {}

  @Get()
  @Header('cache-control', 'no-store')
  async get(@Res() res: Response): Promise<void> {
    const { contentType, body } = await this.metrics.text();
    res.setHeader('content-type', contentType);
    res.send(body);
  }
}
