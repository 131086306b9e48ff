import {
  BadRequestException,
  Controller,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  StreamableFile,
  UploadedFiles,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { ApiBearerAuth, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ListRunsQuery, LogsQuery, SubmitRunDto, SubmitUploadDto } from './runs.dto';
import { LogsService } from './logs.service';
import { RunsRepository } from './runs.repository';
import { RunsService } from './runs.service';
import { validateDto } from '../http/validate';
import { visible } from '../common/visible';
import { CurrentPrincipal } from '../auth/auth.guard';
import type { Principal } from '../auth/auth.types';

const ID = /^[A-Za-z0-9_-]{1,64}$/;

@ApiTags('runs')
@ApiBearerAuth()
@Controller('runs')
export class RunsController {
  constructor(
    private readonly runs: RunsService,
    private readonly logService: LogsService,
    private readonly repo: RunsRepository,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiConsumes('application/json', 'multipart/form-data')
  @ApiOperation({
    summary: 'Submit a run: JSON {repo, ref, workflow?} or {command, environment?, files?}, or multipart with a `source` tarball (+ optional `workflow`)',
  })
  @UseInterceptors(
    FileFieldsInterceptor([
      { name: 'source', maxCount: 1 },
      { name: 'workflow', maxCount: 1 },
    ]),
  )
  async submit(
    @CurrentPrincipal() p: Principal,
    @Req() req: Request,
    @UploadedFiles() files: { source?: Express.Multer.File[]; workflow?: Express.Multer.File[] } | undefined,
  ) {
    if (files?.source?.length || req.is('multipart/form-data'))
      return this.runs.submitUpload(p, validateDto(SubmitUploadDto, req.body ?? {}), files?.source?.[0], files?.workflow?.[0]);
    return this.runs.submitJson(p, validateDto(SubmitRunDto, req.body));
  }

  @Get()
  @ApiOperation({ summary: 'Recent runs' })
  list(@CurrentPrincipal() p: Principal, @Query() q: ListRunsQuery) {
    return this.runs.list(p, q.limit ?? 50);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A run with its jobs, steps and artifacts' })
  get(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    return this.runs.view(checkId(id), p);
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel a queued or running run' })
  cancel(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    return this.runs.cancel(checkId(id), p);
  }

  @Get(':id/logs')
  @ApiOperation({
    summary:
      'Logs: text (default; control characters shown as \\xNN), ?download=1 (the raw text as an attachment), ?format=json (JSON lines), or ?follow=1 (server-sent events from the start, live)',
  })
  async logs(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Query() q: LogsQuery, @Req() req: Request, @Res() res: Response) {
    await this.runs.requireRun(checkId(id), p);
    if (q.follow === '1' || q.follow === 'true') return this.logService.follow(id, q.job, q.step, req, res);
    const lines = await this.logService.all(id, q.job, q.step);
    if (q.format === 'json') res.type('application/x-ndjson').send(lines.map((l) => JSON.stringify(l)).join('\n') + (lines.length ? '\n' : ''));
    // The bytes as the job wrote them only as a file to save; shown as text, control characters are \xNN.
    else if (q.download === '1' || q.download === 'true') {
      res
        .type('text/plain; charset=utf-8')
        .set('Content-Disposition', `attachment; filename="${logFileName(id, q.job, q.step)}"`)
        .send(LogsService.text(lines));
    } else res.type('text/plain; charset=utf-8').send(visible(LogsService.text(lines)));
  }

  @Get(':id/artifacts')
  @ApiOperation({ summary: 'Artifacts of a run' })
  async artifacts(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    return (await this.runs.view(checkId(id), p)).artifacts;
  }

  @Get(':id/artifacts/:name')
  @ApiOperation({ summary: 'Download an artifact (a tar of the collected files)' })
  async artifact(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Param('name') name: string, @Res({ passthrough: true }) res: Response) {
    await this.runs.requireRun(checkId(id), p);
    const a = (await this.repo.artifacts(id)).find((x) => x.name === name);
    if (!a) throw new NotFoundException(`run ${id} has no artifact named '${name}'`);
    const blob = await this.runs.artifactBlob(id, a.id);
    if (!blob) throw new NotFoundException(`artifact '${name}' has expired`);
    res.set({
      'Content-Type': 'application/x-tar',
      'Content-Disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}.tar"`,
      'Content-Length': String(blob.size),
    });
    return new StreamableFile(blob.stream);
  }
}

/** `<run>[-<job>][-step<N>].log`: the id and job are checked names (letters, digits, - and _). */
function logFileName(id: string, job?: string, step?: number): string {
  return `${id}${job ? `-${job}` : ''}${step !== undefined ? `-step${step}` : ''}.log`;
}

function checkId(id: string): string {
  if (!ID.test(id)) throw new BadRequestException('a run id is 1 to 64 letters, digits, - or _');
  return id;
}
