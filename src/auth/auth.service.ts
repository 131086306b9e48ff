import { ConflictException, ForbiddenException, Inject, Injectable, Logger, NotFoundException, Optional } from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { CLOCK, Clock, systemClock } from '../common/clock';
import { QuotaExceededException } from '../common/quota';
import { AuthRepository, HoldingLimit } from './auth.repository';
import type { Principal, Quota, StorageMeter, TokenInfo, User } from './auth.types';
import { SecretBox } from './secret-box';
import { PRIVATE_FILE_MODE, privateDirSync } from '../common/private-files';

import { newId } from '../common/ids';
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Users, tokens (random, shown once, stored as hashes, revocable, expiring) and secrets. */
@Injectable()
export class AuthService {
  private readonly log = new Logger('Auth');
  private readonly box: SecretBox;
  private meter?: StorageMeter;
  private readonly now: Clock;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly repo: AuthRepository,
    @Optional() @Inject(CLOCK) clock?: Clock,
  ) {
    this.now = clock ?? systemClock;
    this.box = SecretBox.open(config.dataDir, config.secretKey);
  }

  get adminTokenFile(): string {
    return path.join(this.config.dataDir, 'admin-token');
  }

  /** First start: an admin user, and a token from KILN_ADMIN_TOKEN or one written to data/admin-token. */
  async bootstrap(): Promise<void> {
    let admin = await this.repo.userByName('admin');
    if (!admin) {
      admin = { id: newId(), name: 'admin', isAdmin: true, quota: {}, createdAt: new Date(this.now()).toISOString() };
      await this.repo.createUser(admin).catch(async () => {
        admin = await this.repo.userByName('admin');
      });
    }
    if (this.config.adminToken) {
      if (!(await this.repo.tokenByHash(hashToken(this.config.adminToken)))) {
        await this.storeToken(admin!.id, 'KILN_ADMIN_TOKEN', this.config.adminToken, null);
      }
      this.log.log('admin token: from KILN_ADMIN_TOKEN');
      return;
    }
    const file = this.adminTokenFile;
    if (fs.existsSync(file)) {
      const existing = fs.readFileSync(file, 'utf8').trim();
      if (await this.authenticate(existing)) {
        this.log.log(`admin token: ${file}`);
        return;
      }
    }
    const token = makeToken();
    await this.storeToken(admin!.id, 'bootstrap', token, null);
    privateDirSync(path.dirname(file), true);
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, token + '\n', { mode: PRIVATE_FILE_MODE, flag: 'wx' });
    fs.chmodSync(file, PRIVATE_FILE_MODE);
    this.log.log(`admin token generated and written to ${file} (mode 600)`);
  }

  /** The principal a bearer token stands for, or null (unknown, revoked, expired). */
  async authenticate(token: string | undefined): Promise<Principal | null> {
    if (!token || token.length > 512) return null;
    const hash = hashToken(token);
    const row = await this.repo.tokenByHash(hash);
    if (!row || !timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) return null;
    if (row.revokedAt) return null;
    if (row.expiresAt && row.expiresAt <= new Date(this.now()).toISOString()) return null;
    const user = await this.repo.user(row.userId);
    if (!user) return null;
    void this.repo.touchToken(row.id).catch(() => undefined);
    return { user, tokenId: row.id };
  }

  async createUser(name: string, isAdmin: boolean, quota: Partial<Quota>): Promise<User> {
    if (await this.repo.userByName(name)) throw new ConflictException(`a user named '${name}' exists already`);
    const user: User = { id: newId(), name, isAdmin, quota, createdAt: new Date(this.now()).toISOString() };
    await this.repo.createUser(user);
    return user;
  }

  users(): Promise<User[]> {
    return this.repo.users();
  }

  findUser(id: string): Promise<User | null> {
    return this.repo.user(id);
  }

  async requireUser(id: string): Promise<User> {
    const u = await this.repo.user(id);
    if (!u) throw new NotFoundException(`no user ${id}`);
    return u;
  }

  /**
   * A new token for a user: the only time its text is shown. The user's active tokens are capped
   * (KILN_QUOTA_TOKENS, or their quota.tokens), whoever issues it: an admin's token for another user
   * counts against that user.
   */
  async issueToken(userId: string, name: string, expiresInDays: number | undefined): Promise<{ token: string; info: TokenInfo }> {
    const user = await this.requireUser(userId);
    const token = makeToken();
    const expiresAt = expiresInDays ? new Date(this.now() + expiresInDays * 86_400_000).toISOString() : null;
    const max = this.quota(user).tokens;
    try {
      const info = await this.storeToken(userId, name, token, expiresAt, max);
      return { token, info };
    } catch (e) {
      if (e instanceof HoldingLimit) {
        throw new QuotaExceededException(
          `quota: ${user.name} has ${e.held} active tokens, the limit of ${e.max} (KILN_QUOTA_TOKENS, or the user's quota.tokens); revoke one that is no longer used (DELETE /api/v1/tokens/{id}); revoked and expired tokens do not count`,
          3600,
        );
      }
      throw e;
    }
  }

  tokens(userId: string): Promise<TokenInfo[]> {
    return this.repo.tokens(userId);
  }

  /** Revokes at once. A user may revoke their own tokens; an admin any. Others' tokens answer 404. */
  async revoke(tokenId: string, by: Principal): Promise<void> {
    const t = await this.repo.token(tokenId);
    if (!t || (t.userId !== by.user.id && !by.user.isAdmin)) throw new NotFoundException(`no token ${tokenId}`);
    await this.repo.revokeToken(tokenId);
  }

  quota(user: User): Quota {
    return { ...this.config.quota, ...user.quota };
  }

  /** Stores or replaces a secret; a new name past the user's cap (KILN_QUOTA_SECRETS, or their quota.secrets) is refused. */
  async setSecret(userId: string, name: string, value: string): Promise<void> {
    const user = await this.requireUser(userId);
    try {
      await this.repo.putSecret(userId, name, this.box.seal(value), this.quota(user).secrets);
    } catch (e) {
      if (e instanceof HoldingLimit) {
        throw new QuotaExceededException(
          `quota: you have ${e.held} secrets, the limit of ${e.max} (KILN_QUOTA_SECRETS, or your quota.secrets); delete one you no longer use, or replace an existing one`,
          3600,
        );
      }
      throw e;
    }
  }

  /** Where the storage a user holds is measured (the runs room registers it at start-up). */
  useStorageMeter(meter: StorageMeter): void {
    this.meter = meter;
  }

  /** What the user holds in storage against their quota (artifactBytes): artifacts and the sources of runs not yet concluded. */
  async storage(user: User): Promise<{ usedBytes: number; artifactBytes: number; sourceBytes: number; quotaBytes: number } | null> {
    if (!this.meter) return null;
    const u = await this.meter.usage(user.id);
    return { usedBytes: u.artifacts + u.sources, artifactBytes: u.artifacts, sourceBytes: u.sources, quotaBytes: this.quota(user).artifactBytes };
  }

  secretNames(userId: string) {
    return this.repo.secretNames(userId);
  }

  async deleteSecret(userId: string, name: string): Promise<void> {
    if (!(await this.repo.deleteSecret(userId, name))) throw new NotFoundException(`no secret named ${name}`);
  }

  /** For the worker only: a run owner's secrets in clear. Never sent over the API. */
  async secretsOf(userId: string | null): Promise<Record<string, string>> {
    if (!userId) return {};
    const out: Record<string, string> = {};
    for (const s of await this.repo.sealedSecrets(userId)) {
      try {
        out[s.name] = this.box.open(s.value);
      } catch {
        this.log.warn(`secret ${s.name} of user ${userId} cannot be opened with this key; it is left out`);
      }
    }
    return out;
  }

  /** Seals other credentials at rest (webhook secrets, status tokens) with the same key. */
  seal(value: string): string {
    return this.box.seal(value);
  }

  unseal(value: string): string {
    return this.box.open(value);
  }

  assertAdmin(p: Principal): void {
    if (!p.user.isAdmin) throw new ForbiddenException('this endpoint is for admins');
  }

  private async storeToken(userId: string, name: string, token: string, expiresAt: string | null, max?: number): Promise<TokenInfo> {
    const info: TokenInfo = { id: newId(), userId, name, createdAt: new Date(this.now()).toISOString(), expiresAt, revokedAt: null, lastUsedAt: null };
    await this.repo.createToken({ ...info, hash: hashToken(token) }, max);
    return info;
  }
}

function makeToken(): string {
  return `kiln_${randomBytes(32).toString('base64url')}`;
}
