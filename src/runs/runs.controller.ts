import { BadRequestException, Controller, Get, HttpCode, NotFoundException, Param, Post, Query, Req, Res, StreamableFile, UploadedFiles, UseInterceptors } from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import * as fs from 'node:fs';
import { ListRunsQuery, LogsQuery, SubmitRunDto, SubmitUploadDto } from './runs.dto';
import { LogsService } from './logs.service';
import { RunsRepository } from './runs.repository';
import { RunsService } from './runs.service';
import { validateDto } from '../http/validate';

const ID = /^[A-Za-z0-9_-]{1,64}$/;

@ApiTags('runs')
@Controller('runs')
export class RunsController {
  constructor(private readonly runs: RunsService, private readonly logService: LogsService, private readonly repo: RunsRepository) {}

  @Post()
  @HttpCode(201)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiOperation({ summary: 'Submit a run: JSON {repo, ref, workflow?} or {command, environment?, files?}, or multipart with a `source` tarball (+ optional `workflow`)' })
  @UseInterceptors(FileFieldsInterceptor([{ name: 'source', maxCount: 1 }, { name: 'workflow', maxCount: 1 }]))
  async submit(@Req() req: Request, @UploadedFiles() files: { source?: Express.Multer.File[]; workflow?: Express.Multer.File[] } | undefined) {
    if (files?.source?.length || req.is('multipart/form-data')) return this.submitUpload(req, files);
    return this.runs.submitJson(validateDto(SubmitRunDto, req.body));
  }

  private async submitUpload(req: Request, files: { source?: Express.Multer.File[]; workflow?: Express.Multer.File[] } | undefined) {
    return this.runs.submitUpload(validateDto(SubmitUploadDto, req.body ?? {}), files?.source?.[0], files?.workflow?.[0]);
  }

  @Get()
  @ApiOperation({ summary: 'Recent runs' })
  list(@Query() q: ListRunsQuery) {
    return this.runs.list(q.limit ?? 50);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A run with its jobs, steps and artifacts' })
  get(@Param('id') id: string) {
    return this.runs.view(checkId(id));
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel a queued or running run' })
  cancel(@Param('id') id: string) {
    return this.runs.cancel(checkId(id));
  }

  @Get(':id/logs')
  @ApiOperation({ summary: 'Logs: text (default), ?format=json (JSON lines), or ?follow=1 (server-sent events from the start, live)' })
  async logs(@Param('id') id: string, @Query() q: LogsQuery, @Req() req: Request, @Res() res: Response) {
    await this.runs.requireRun(checkId(id));
    if (q.follow === '1' || q.follow === 'true') return this.logService.follow(id, q.job, q.step, req, res);
    const lines = await this.logService.all(id, q.job, q.step);
    if (q.format === 'json') res.type('application/x-ndjson').send(lines.map((l) => JSON.stringify(l)).join('\n') + (lines.length ? '\n' : ''));
    else res.type('text/plain; charset=utf-8').send(LogsService.text(lines));
  }

  @Get(':id/artifacts')
  @ApiOperation({ summary: 'Artifacts of a run' })
  async artifacts(@Param('id') id: string) {
    return (await this.runs.view(checkId(id))).artifacts;
  }

  @Get(':id/artifacts/:name')
  @ApiOperation({ summary: 'Download an artifact (a tar of the collected files)' })
  async artifact(@Param('id') id: string, @Param('name') name: string, @Res({ passthrough: true }) res: Response) {
    await this.runs.requireRun(checkId(id));
    const a = (await this.repo.artifacts(id)).find((x) => x.name === name);
    if (!a) throw new NotFoundException(`run ${id} has no artifact named '${name}'`);
    const file = this.runs.artifactFile(id, a.id);
    if (!fs.existsSync(file)) throw new NotFoundException(`artifact '${name}' has expired`);
    res.set({ 'Content-Type': 'application/x-tar', 'Content-Disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}.tar"`, 'Content-Length': String(fs.statSync(file).size) });
    return new StreamableFile(fs.createReadStream(file));
  }
}

function checkId(id: string): string {
  if (!ID.test(id)) throw new BadRequestException('a run id is 1 to 64 letters, digits, - or _');
  return id;
}
