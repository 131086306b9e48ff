import { Global, Module, OnApplicationBootstrap } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuthController } from './auth.controller';
import { AuthGuard } from './auth.guard';
import { AuthRepository } from './auth.repository';
import { AuthService } from './auth.service';

/** Users, tokens and secrets: needed by the API and (for secrets) by the worker. */
@Global()
@Module({ providers: [AuthRepository, AuthService], exports: [AuthService] })
export class AuthCoreModule {}

/** The HTTP side: every route needs a token unless @Public(); the admin token is made on first start. */
@Module({ controllers: [AuthController], providers: [{ provide: APP_GUARD, useClass: AuthGuard }] })
export class AuthApiModule implements OnApplicationBootstrap {
  constructor(private readonly auth: AuthService) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.auth.bootstrap();
  }
}
