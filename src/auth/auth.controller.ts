import { BadRequestException, Body, Controller, Delete, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsInt, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { AuthService } from './auth.service';
import { CurrentPrincipal } from './auth.guard';
import type { Principal, TokenInfo, User } from './auth.types';

class QuotaDto {
  @IsOptional() @IsInt() @Min(0) @Max(1000) concurrentJobs?: number;
  @IsOptional() @IsInt() @Min(0) @Max(100000) queuedRuns?: number;
  @IsOptional() @IsInt() @Min(0) @Max(100000) submissionsPerMinute?: number;
  @IsOptional() @IsInt() @Min(0) artifactBytes?: number;
  @IsOptional() @IsInt() @Min(0) @Max(100000) repositories?: number;
  @IsOptional() @IsInt() @Min(1) @Max(100000) tokens?: number;
  @IsOptional() @IsInt() @Min(0) @Max(100000) secrets?: number;
}

class CreateUserDto {
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be lower-case letters, digits, dots, dashes or underscores' }) name!: string;
  @IsOptional() @IsBoolean() admin?: boolean;
  @IsOptional() @IsObject() @ValidateNested() @Type(() => QuotaDto) quota?: QuotaDto;
}

class CreateTokenDto {
  @IsOptional() @IsString() @MaxLength(100) name?: string;
  @IsOptional() @IsInt() @Min(1) @Max(3650) expiresInDays?: number;
}

class SecretDto {
  @IsString() @MaxLength(64 * 1024) value!: string;
}

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

const userView = (u: User) => ({ id: u.id, name: u.name, admin: u.isAdmin, quota: u.quota, createdAt: u.createdAt });
const tokenView = (t: TokenInfo) => ({
  id: t.id,
  name: t.name,
  createdAt: t.createdAt,
  expiresAt: t.expiresAt,
  revokedAt: t.revokedAt,
  lastUsedAt: t.lastUsedAt,
});

@ApiTags('accounts')
@ApiBearerAuth()
@Controller()
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  @Get('me')
  @ApiOperation({ summary: 'Who the token belongs to, the quota that applies, and the storage used (artifacts and the sources of runs not yet concluded)' })
  async me(@CurrentPrincipal() p: Principal) {
    return { ...userView(p.user), tokenId: p.tokenId, effectiveQuota: this.auth.quota(p.user), storage: await this.auth.storage(p.user) };
  }

  @Get('users')
  @ApiOperation({ summary: 'Users (admin)' })
  async users(@CurrentPrincipal() p: Principal) {
    this.auth.assertAdmin(p);
    return (await this.auth.users()).map(userView);
  }

  @Post('users')
  @ApiOperation({ summary: 'Create a user (admin); quota fields override the server defaults' })
  async createUser(@CurrentPrincipal() p: Principal, @Body() body: CreateUserDto) {
    this.auth.assertAdmin(p);
    return userView(await this.auth.createUser(body.name, body.admin ?? false, { ...body.quota }));
  }

  @Post('users/:id/tokens')
  @ApiOperation({ summary: 'Issue a token for a user (admin); the token is shown only in this answer' })
  async issueFor(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Body() body: CreateTokenDto) {
    this.auth.assertAdmin(p);
    const { token, info } = await this.auth.issueToken(id, body.name ?? 'api', body.expiresInDays);
    return { token, ...tokenView(info) };
  }

  @Get('tokens')
  @ApiOperation({ summary: 'Your tokens (never their text)' })
  async tokens(@CurrentPrincipal() p: Principal) {
    return (await this.auth.tokens(p.user.id)).map(tokenView);
  }

  @Post('tokens')
  @ApiOperation({ summary: 'Issue yourself a token; shown only in this answer' })
  async issue(@CurrentPrincipal() p: Principal, @Body() body: CreateTokenDto) {
    const { token, info } = await this.auth.issueToken(p.user.id, body.name ?? 'api', body.expiresInDays);
    return { token, ...tokenView(info) };
  }

  @Delete('tokens/:id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke a token (yours, or any as admin); effective at once' })
  async revoke(@CurrentPrincipal() p: Principal, @Param('id') id: string) {
    await this.auth.revoke(id, p);
  }

  @Get('secrets')
  @ApiOperation({ summary: 'Names of your secrets (values are never returned)' })
  secrets(@CurrentPrincipal() p: Principal) {
    return this.auth.secretNames(p.user.id);
  }

  @Put('secrets/:name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Store a secret; workflows read it as ${{ secrets.NAME }}, logs mask it' })
  async putSecret(@CurrentPrincipal() p: Principal, @Param('name') name: string, @Body() body: SecretDto) {
    if (!SECRET_NAME.test(name) || name.toUpperCase().startsWith('GITHUB_')) throw new BadName(name);
    await this.auth.setSecret(p.user.id, name, body.value);
  }

  @Delete('secrets/:name')
  @HttpCode(204)
  async deleteSecret(@CurrentPrincipal() p: Principal, @Param('name') name: string) {
    await this.auth.deleteSecret(p.user.id, name);
  }
}

class BadName extends BadRequestException {
  constructor(name: string) {
    super(`secret name '${name}' is not valid: letters, digits and _, not starting with a digit or GITHUB_`);
  }
}
