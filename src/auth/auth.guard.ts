import { CanActivate, createParamDecorator, ExecutionContext, Injectable, SetMetadata, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AuthService } from './auth.service';
import type { Principal } from './auth.types';

const PUBLIC = 'kiln:public';
/** Marks a route (or controller) that answers without a token: health, the public catalogue. */
export const Public = () => SetMetadata(PUBLIC, true);
/** Overrides a controller-wide @Public() for one route. */
export const Authenticated = () => SetMetadata(PUBLIC, false);

/** The checked principal of the request. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<Request & { principal: Principal }>().principal;
});

/** Every route needs `Authorization: Bearer <token>` unless marked @Public(). */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const principal = await this.auth.authenticate(m?.[1]);
    if (!principal) {
      throw new UnauthorizedException(m ? 'the token is unknown, revoked or expired' : 'authentication required: send Authorization: Bearer <token>');
    }
    req.principal = principal;
    return true;
  }
}
