import * as fs from 'node:fs';
import * as path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Pool } from 'pg';
import type { KilnConfig } from '../config/config';

export const DATABASE = Symbol('DATABASE');

/** The small SQL surface Kiln uses; `?` placeholders work on both engines. */
export interface Database {
  readonly kind: 'sqlite' | 'postgres';
  all<T>(sql: string, params?: unknown[]): Promise<T[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Schema changes, applied once each, in order. Portable SQL only (SQLite >= 3.24 and PostgreSQL). */
const MIGRATIONS: string[] = [
  `CREATE TABLE environment_versions (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     status TEXT NOT NULL,
     labels TEXT NOT NULL,
     build_key TEXT NOT NULL,
     probe_key TEXT NOT NULL,
     manifest_hash TEXT NOT NULL,
     image_id TEXT NOT NULL,
     report TEXT NOT NULL,
     published_at TEXT NOT NULL,
     PRIMARY KEY (name, version)
   )`,
];

class SqliteDatabase implements Database {
  readonly kind = 'sqlite' as const;
  private readonly db: BetterSqlite3.Database;
  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new BetterSqlite3(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
  }
  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.db.prepare(sql).all(...params) as T[];
  }
  async run(sql: string, params: unknown[] = []): Promise<void> {
    this.db.prepare(sql).run(...params);
  }
  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }
  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  private readonly pool: Pool;
  constructor(url: string) {
    this.pool = new Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000 });
    this.pool.on('error', () => undefined); // an idle client's error surfaces on the next query
  }
  private static numbered(sql: string): string {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  }
  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(PostgresDatabase.numbered(sql), params)).rows as T[];
  }
  async run(sql: string, params: unknown[] = []): Promise<void> {
    await this.pool.query(PostgresDatabase.numbered(sql), params);
  }
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }
  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function migrate(db: Database): Promise<void> {
  await db.run('CREATE TABLE IF NOT EXISTS kiln_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const done = new Set((await db.all<{ id: number }>('SELECT id FROM kiln_migrations')).map((r) => Number(r.id)));
  for (let i = 0; i < MIGRATIONS.length; i++) {
    if (done.has(i + 1)) continue;
    await db.run(MIGRATIONS[i]);
    await db.run('INSERT INTO kiln_migrations (id, applied_at) VALUES (?, ?)', [i + 1, new Date().toISOString()]);
  }
}

export async function openDatabase(config: Pick<KilnConfig, 'database'>): Promise<Database> {
  const db = config.database.kind === 'postgres' ? new PostgresDatabase(config.database.url) : new SqliteDatabase(config.database.file);
  await migrate(db);
  return db;
}
