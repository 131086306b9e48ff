import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { IsObject, IsOptional, IsString, Matches, MaxLength, MinLength, IsArray, ArrayMaxSize } from 'class-validator';
import type { Request, Response } from 'express';
import { CurrentPrincipal, Public } from '../auth/auth.guard';
import type { Principal } from '../auth/auth.types';
import { MAX_FULL_NAME } from './registration';
import { RepositoriesRepository } from './repositories.repository';
import { WebhooksService } from './webhooks.service';

class RegisterRepositoryDto {
  @IsString()
  @MaxLength(MAX_FULL_NAME, { message: `fullName must be at most ${MAX_FULL_NAME} characters` })
  @Matches(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, { message: 'fullName must be owner/name as the forge sends it' })
  fullName!: string;
  @IsString() @MaxLength(2048) cloneUrl!: string;
  @IsString() @MinLength(16, { message: 'secret must be at least 16 characters (the webhook secret set at the forge)' }) @MaxLength(256) secret!: string;
  @IsOptional() @IsString() owner?: string;
  @IsOptional() @IsArray() @ArrayMaxSize(50) @IsString({ each: true }) branches?: string[];
  @IsOptional() @IsObject() labelMap?: Record<string, string>;
  /** The forge API base URL, e.g. https://api.github.com; checked against the outbound policy (schemes, addresses). */
  @IsOptional() @IsString({ message: 'statusUrl must be the forge API base URL, e.g. https://api.github.com' }) @MaxLength(2048) statusUrl?: string;
  @IsOptional() @IsString() @MaxLength(512) statusToken?: string;
}

@ApiTags('webhooks')
@Controller()
export class WebhooksController {
  constructor(
    private readonly webhooks: WebhooksService,
    private readonly repos: RepositoriesRepository,
  ) {}

  @Post('webhooks/github')
  @Public()
  @ApiOperation({ summary: "Push webhooks from GitHub, Gitea or Forgejo; signed with the repository's secret" })
  async receive(@Req() req: Request & { rawBody?: Buffer }, @Res({ passthrough: true }) res: Response) {
    const answer = await this.webhooks.receive(req.headers, req.rawBody, req.headers['content-type']);
    res.status(answer.status);
    return answer.body;
  }

  @Post('repositories')
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Register a repository for push builds (yours; an admin may name another owner)' })
  register(@CurrentPrincipal() p: Principal, @Body() body: RegisterRepositoryDto, @Req() req: Request & { rawBody?: Buffer }) {
    // labelMap as sent: Nest's ValidationPipe deletes '__proto__' and 'constructor' keys in place,
    // and such a label must be refused with a 400, not silently lost.
    return this.webhooks.register(p, { ...body, labelMap: sentLabelMap(req.rawBody, body.labelMap) });
  }

  @Get('repositories')
  @ApiBearerAuth()
  list(@CurrentPrincipal() p: Principal) {
    return this.webhooks.list(p);
  }

  @Get('repositories/:id/deliveries')
  @ApiBearerAuth()
  @ApiOperation({ summary: 'The last 100 deliveries of a repository and what they started' })
  async deliveries(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    const repo = await this.webhooks.requireOwned(id, p);
    return this.repos.deliveries(repo.id);
  }

  @Delete('repositories/:id')
  @HttpCode(204)
  @ApiBearerAuth()
  async remove(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    const repo = await this.webhooks.requireOwned(id, p);
    await this.repos.remove(repo.id);
  }
}

/** The labelMap of the JSON body exactly as sent (the body was parsed once already, so it is valid JSON). */
function sentLabelMap(raw: Buffer | undefined, transformed: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!raw?.length) return transformed;
  try {
    return (JSON.parse(raw.toString('utf8')) as { labelMap?: Record<string, string> }).labelMap;
  } catch {
    return transformed;
  }
}
