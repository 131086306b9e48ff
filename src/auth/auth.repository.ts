import { Inject, Injectable } from '@nestjs/common';
import { DATABASE, Database } from '../db/database';
import type { Quota, TokenInfo, User } from './auth.types';

interface UserRow {
  id: string;
  name: string;
  is_admin: number;
  quota: string | null;
  created_at: string;
}
interface TokenRow {
  id: string;
  user_id: string;
  hash: string;
  name: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** A user already holds as many tokens or secrets as their cap allows. */
export class HoldingLimit extends Error {
  constructor(
    readonly held: number,
    readonly max: number,
  ) {
    super(`${held} held, at most ${max}`);
  }
}

/** Users, token hashes and sealed secrets. Tokens themselves are never stored. */
@Injectable()
export class AuthRepository {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  async createUser(u: User): Promise<void> {
    await this.db.run('INSERT INTO users (id, name, is_admin, quota, created_at) VALUES (?, ?, ?, ?, ?)', [
      u.id,
      u.name,
      u.isAdmin ? 1 : 0,
      JSON.stringify(u.quota),
      u.createdAt,
    ]);
  }

  async users(): Promise<User[]> {
    return (await this.db.all<UserRow>('SELECT * FROM users ORDER BY created_at')).map(toUser);
  }

  async user(id: string): Promise<User | null> {
    const rows = await this.db.all<UserRow>('SELECT * FROM users WHERE id = ?', [id]);
    return rows.length ? toUser(rows[0]) : null;
  }

  async userByName(name: string): Promise<User | null> {
    const rows = await this.db.all<UserRow>('SELECT * FROM users WHERE name = ?', [name]);
    return rows.length ? toUser(rows[0]) : null;
  }

  async setQuota(id: string, quota: Partial<Quota>): Promise<void> {
    await this.db.run('UPDATE users SET quota = ? WHERE id = ?', [JSON.stringify(quota), id]);
  }

  /**
   * With `max`, the user's active tokens (neither revoked nor expired) are counted in the same
   * transaction (the user's row locked on PostgreSQL; SQLite transactions are serial): a token that
   * would be one too many is refused with HoldingLimit.
   */
  async createToken(t: TokenInfo & { hash: string }, max?: number): Promise<void> {
    if (max !== undefined) {
      await this.db.transaction(async (tx) => {
        await lockUser(tx, t.userId);
        const rows = await tx.all<{ n: number }>(
          'SELECT COUNT(*) AS n FROM tokens WHERE user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)',
          [t.userId, new Date().toISOString()],
        );
        const held = Number(rows[0]?.n ?? 0);
        if (held >= max) throw new HoldingLimit(held, max);
        await insertToken(tx, t);
      });
      return;
    }
    await insertToken(this.db, t);
  }

  async tokenByHash(hash: string): Promise<(TokenInfo & { hash: string }) | null> {
    const rows = await this.db.all<TokenRow>('SELECT * FROM tokens WHERE hash = ?', [hash]);
    return rows.length ? toToken(rows[0]) : null;
  }

  async tokens(userId: string): Promise<TokenInfo[]> {
    return (await this.db.all<TokenRow>('SELECT * FROM tokens WHERE user_id = ? ORDER BY created_at', [userId])).map(toToken);
  }

  async token(id: string): Promise<TokenInfo | null> {
    const rows = await this.db.all<TokenRow>('SELECT * FROM tokens WHERE id = ?', [id]);
    return rows.length ? toToken(rows[0]) : null;
  }

  async revokeToken(id: string): Promise<void> {
    await this.db.run('UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?', [new Date().toISOString(), id]);
  }

  async touchToken(id: string): Promise<void> {
    await this.db.run('UPDATE tokens SET last_used_at = ? WHERE id = ?', [new Date().toISOString(), id]);
  }

  /** Stores or replaces a secret; with `max`, a new name past the user's cap is refused with HoldingLimit (replacing is not). */
  async putSecret(userId: string, name: string, sealed: string, max?: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      if (max !== undefined) {
        await lockUser(tx, userId);
        const rows = await tx.all<{ n: number; here: number }>(
          'SELECT COUNT(*) AS n, SUM(CASE WHEN name = ? THEN 1 ELSE 0 END) AS here FROM secrets WHERE user_id = ?',
          [name, userId],
        );
        const held = Number(rows[0]?.n ?? 0);
        if (!Number(rows[0]?.here ?? 0) && held >= max) throw new HoldingLimit(held, max);
      }
      await tx.run(
        `INSERT INTO secrets (user_id, name, value, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at`,
        [userId, name, sealed, new Date().toISOString()],
      );
    });
  }

  async secretNames(userId: string): Promise<{ name: string; createdAt: string }[]> {
    return (await this.db.all<{ name: string; created_at: string }>('SELECT name, created_at FROM secrets WHERE user_id = ? ORDER BY name', [userId])).map(
      (r) => ({ name: r.name, createdAt: r.created_at }),
    );
  }

  async sealedSecrets(userId: string): Promise<{ name: string; value: string }[]> {
    return this.db.all<{ name: string; value: string }>('SELECT name, value FROM secrets WHERE user_id = ?', [userId]);
  }

  async deleteSecret(userId: string, name: string): Promise<number> {
    return this.db.run('DELETE FROM secrets WHERE user_id = ? AND name = ?', [userId, name]);
  }
}

/** Serializes a user's capped inserts on PostgreSQL (SQLite transactions are serial already). */
async function lockUser(tx: Database, userId: string): Promise<void> {
  if (tx.kind === 'postgres') await tx.all('SELECT id FROM users WHERE id = ? FOR UPDATE', [userId]);
}

async function insertToken(db: Database, t: TokenInfo & { hash: string }): Promise<void> {
  await db.run('INSERT INTO tokens (id, user_id, hash, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
    t.id,
    t.userId,
    t.hash,
    t.name,
    t.createdAt,
    t.expiresAt,
  ]);
}

function toUser(r: UserRow): User {
  return { id: r.id, name: r.name, isAdmin: Boolean(Number(r.is_admin)), quota: r.quota ? JSON.parse(r.quota) : {}, createdAt: r.created_at };
}

function toToken(r: TokenRow): TokenInfo & { hash: string } {
  return {
    id: r.id,
    userId: r.user_id,
    hash: r.hash,
    name: r.name,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}
