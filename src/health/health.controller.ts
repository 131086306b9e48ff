import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { Public } from '../auth/auth.guard';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { HealthService } from './health.service';

@ApiTags('health')
@Controller('health')
@Public()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @ApiOperation({ summary: 'Engine, Redis and database reachable or not (503 when any is not)' })
  async get(@Res({ passthrough: true }) res: Response) {
    const h = await this.health.check();
    res.status(h.status === 'ok' ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return h;
  }
}
