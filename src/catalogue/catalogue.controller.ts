import { Authenticated, CurrentPrincipal, Public } from '../auth/auth.guard';
import { AuthService } from '../auth/auth.service';
import type { Principal } from '../auth/auth.types';
import { PublishService } from './publish.service';
import { Body, Controller, Get, Header, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsIn, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import type { Response } from 'express';
import { CatalogueService } from './catalogue.service';
import { diffToMarkdown, reportToMarkdown } from './markdown';

const VERSION = /^(\d{8}\.\d{1,3}|latest)$/;

export class PublishDto {
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(50)
  @Matches(/^[a-z0-9][a-z0-9.-]{0,62}$/, { each: true, message: 'each name must be an environment name' })
  names?: string[];
}

export class ListQuery {
  @IsOptional()
  @IsString()
  @MaxLength(200)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, { message: 'package must be a package name such as numpy' })
  package?: string;
}

export class ReportQuery {
  @IsOptional()
  @IsIn(['json', 'md'], { message: 'format must be json or md' })
  format?: 'json' | 'md';
}

export class DiffQuery extends ReportQuery {
  @IsNotEmpty({ message: 'from is required: the older version, e.g. ?from=20261128.1' })
  @Matches(VERSION, { message: 'from must be a version YYYYMMDD.N or latest' })
  from!: string;

  @IsNotEmpty({ message: 'to is required: the newer version, e.g. ?to=20261201.1' })
  @Matches(VERSION, { message: 'to must be a version YYYYMMDD.N or latest' })
  to!: string;
}

@ApiTags('environments')
@Controller('environments')
@Public()
export class CatalogueController {
  constructor(
    private readonly catalogue: CatalogueService,
    private readonly publisher: PublishService,
    private readonly auth: AuthService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Published environments at their latest version; ?package=NAME shows which carry it, at what version' })
  @ApiQuery({ name: 'package', required: false })
  list(@Query() q: ListQuery) {
    return this.catalogue.list(q.package);
  }

  @Post('publish')
  @HttpCode(202)
  @Authenticated()
  @ApiOperation({ summary: 'Admin: build, probe and publish environments from the manifests (all, or `names`), in the background' })
  publish(@CurrentPrincipal() p: Principal, @Body() body: PublishDto) {
    this.auth.assertAdmin(p);
    return this.publisher.start(body.names ?? []);
  }

  @Get('publish')
  @Authenticated()
  @ApiOperation({ summary: 'Admin: the state of the last publish' })
  publishStatus(@CurrentPrincipal() p: Principal) {
    this.auth.assertAdmin(p);
    return this.publisher.status();
  }

  @Get(':name')
  @ApiOperation({ summary: 'One environment (name or label) and its versions' })
  environment(@Param('name') name: string) {
    return this.catalogue.environment(name);
  }

  @Get(':name/diff')
  @ApiOperation({ summary: 'Added / Removed / Updated packages between two versions' })
  @ApiProduces('application/json', 'text/markdown')
  async diff(@Param('name') name: string, @Query() q: DiffQuery, @Res({ passthrough: true }) res: Response) {
    const d = await this.catalogue.diff(name, q.from, q.to);
    return q.format === 'md' ? markdown(res, diffToMarkdown(d)) : d;
  }

  @Get(':name/:version')
  @ApiOperation({ summary: 'The full software report measured in the image; ?format=md for Markdown' })
  @ApiProduces('application/json', 'text/markdown')
  @ApiOkResponse({ description: 'the software report' })
  @Header('Cache-Control', 'no-cache')
  async report(@Param('name') name: string, @Param('version') version: string, @Query() q: ReportQuery, @Res({ passthrough: true }) res: Response) {
    const r = await this.catalogue.report(name, version);
    return q.format === 'md' ? markdown(res, reportToMarkdown(r)) : r;
  }
}

function markdown(res: Response, text: string): string {
  res.type('text/markdown; charset=utf-8');
  return text;
}
