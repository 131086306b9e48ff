import * as fs from 'node:fs';
import * as path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Pool } from 'pg';
import type { KilnConfig } from '../config/config';
import { openPrivateAppend, privateDirSync, privateFileSync } from '../common/private-files';

export const DATABASE = Symbol('DATABASE');

/** The small SQL surface Kiln uses; `?` placeholders work on both engines. */
export interface Database {
  readonly kind: 'sqlite' | 'postgres';
  all<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Executes a statement; resolves with the number of rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
  /** Runs fn inside one transaction (SQLite: immediate; PostgreSQL: one client). */
  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A schema change: portable SQL, or one statement per engine where they cannot share one. */
export type Migration = string | { sqlite: string; postgres: string };

/** The scope a run is numbered in (RunsRepository.create): its registered repository, else its owner. */
const RUN_SCOPE = `CASE WHEN repository_id IS NOT NULL THEN 'repository:' || repository_id ELSE 'owner:' || COALESCE(owner_id, '') END`;

/** Schema changes, applied once each, in order. Portable SQL where possible (SQLite >= 3.35 and PostgreSQL). */
export const MIGRATIONS: Migration[] = [
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
  `CREATE TABLE runs (
     id TEXT PRIMARY KEY,
     status TEXT NOT NULL,
     conclusion TEXT,
     source_kind TEXT NOT NULL,
     source TEXT NOT NULL,
     workflow_name TEXT NOT NULL,
     workflow_file TEXT,
     plan TEXT NOT NULL,
     context TEXT NOT NULL,
     cancel_requested INTEGER NOT NULL DEFAULT 0,
     error TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT
   )`,
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     run_id TEXT NOT NULL REFERENCES runs(id),
     position INTEGER NOT NULL,
     job_key TEXT NOT NULL,
     job_id TEXT NOT NULL,
     name TEXT NOT NULL,
     environment TEXT NOT NULL,
     status TEXT NOT NULL,
     conclusion TEXT,
     error TEXT,
     spec TEXT NOT NULL,
     outputs TEXT,
     attempts INTEGER NOT NULL DEFAULT 0,
     worker TEXT,
     queued_at TEXT,
     started_at TEXT,
     finished_at TEXT,
     UNIQUE (run_id, job_key)
   )`,
  `CREATE INDEX jobs_by_run ON jobs (run_id, position)`,
  `CREATE TABLE steps (
     job_id TEXT NOT NULL REFERENCES jobs(id),
     idx INTEGER NOT NULL,
     name TEXT NOT NULL,
     status TEXT NOT NULL,
     outcome TEXT,
     conclusion TEXT,
     exit_code INTEGER,
     reason TEXT,
     started_at TEXT,
     finished_at TEXT,
     PRIMARY KEY (job_id, idx)
   )`,
  `CREATE TABLE artifacts (
     id TEXT PRIMARY KEY,
     run_id TEXT NOT NULL REFERENCES runs(id),
     job_id TEXT NOT NULL REFERENCES jobs(id),
     name TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     files INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     UNIQUE (run_id, name)
   )`,
  `CREATE TABLE users (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     is_admin INTEGER NOT NULL DEFAULT 0,
     quota TEXT,
     created_at TEXT NOT NULL
   )`,
  `CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL REFERENCES users(id),
     hash TEXT NOT NULL UNIQUE,
     name TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT,
     revoked_at TEXT,
     last_used_at TEXT
   )`,
  `CREATE TABLE secrets (
     user_id TEXT NOT NULL REFERENCES users(id),
     name TEXT NOT NULL,
     value TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (user_id, name)
   )`,
  `ALTER TABLE runs ADD COLUMN owner_id TEXT`,
  `CREATE INDEX runs_by_owner ON runs (owner_id, status)`,
  `CREATE TABLE annotations (
     run_id TEXT NOT NULL REFERENCES runs(id),
     job_id TEXT NOT NULL REFERENCES jobs(id),
     step INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     level TEXT NOT NULL,
     message TEXT NOT NULL,
     title TEXT,
     file TEXT,
     line INTEGER,
     end_line INTEGER,
     col INTEGER,
     end_column INTEGER,
     PRIMARY KEY (job_id, seq)
   )`,
  `ALTER TABLE jobs ADD COLUMN summary TEXT`,
  `CREATE TABLE repositories (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL REFERENCES users(id),
     full_name TEXT NOT NULL UNIQUE,
     clone_url TEXT NOT NULL,
     secret TEXT NOT NULL,
     branches TEXT,
     label_map TEXT,
     status_url TEXT,
     status_token TEXT,
     created_at TEXT NOT NULL
   )`,
  `CREATE TABLE deliveries (
     id TEXT PRIMARY KEY,
     repository_id TEXT NOT NULL REFERENCES repositories(id),
     event TEXT NOT NULL,
     payload TEXT NOT NULL,
     state TEXT NOT NULL,
     detail TEXT,
     run_ids TEXT,
     received_at TEXT NOT NULL
   )`,
  `ALTER TABLE runs ADD COLUMN repository_id TEXT`,
  `ALTER TABLE runs ADD COLUMN concurrency_group TEXT`,
  // Delivery ids are unique per repository, not across every tenant: `id` stays the row key (a
  // Kiln id for new rows; the forge's delivery id for rows recorded before), `delivery_id` holds
  // the forge's id, and (repository_id, delivery_id) is unique.
  `ALTER TABLE deliveries ADD COLUMN delivery_id TEXT`,
  `UPDATE deliveries SET delivery_id = id WHERE delivery_id IS NULL`,
  `CREATE UNIQUE INDEX deliveries_by_repository ON deliveries (repository_id, delivery_id)`,
  // Bytes of the run's source while the store holds it (counted in the owner's storage); 0 once removed
  // at the run's conclusion. NULL on runs recorded before: a sweep removes the sources of completed ones.
  `ALTER TABLE runs ADD COLUMN source_bytes BIGINT`,
  // Run numbers, persistent and per scope (a registered repository, else the owner), as GitHub's
  // run_number. Runs recorded before keep the number their context holds (a process-local counter's,
  // so not unique); those without one (webhook runs, recorded with 0) are numbered in creation order
  // after the highest of their scope; each scope's counter starts after its highest number.
  `ALTER TABLE runs ADD COLUMN run_number INTEGER`,
  {
    sqlite: `UPDATE runs SET run_number = CAST(json_extract(context, '$.runNumber') AS INTEGER) WHERE json_valid(context) AND CAST(json_extract(context, '$.runNumber') AS INTEGER) > 0`,
    postgres: `UPDATE runs SET run_number = CAST(context::json->>'runNumber' AS INTEGER) WHERE context::json->>'runNumber' ~ '^[1-9][0-9]{0,8}$'`,
  },
  `UPDATE runs SET run_number = numbered.n FROM (
     SELECT r.id, ROW_NUMBER() OVER (PARTITION BY ${RUN_SCOPE.replace(/(repository_id|owner_id)/g, 'r.$1')} ORDER BY r.created_at, r.id)
       + COALESCE((SELECT MAX(o.run_number) FROM runs o WHERE ${RUN_SCOPE.replace(/(repository_id|owner_id)/g, 'o.$1')} = ${RUN_SCOPE.replace(/(repository_id|owner_id)/g, 'r.$1')}), 0) AS n
     FROM runs r WHERE r.run_number IS NULL
   ) AS numbered WHERE runs.id = numbered.id`,
  `CREATE TABLE run_numbers (scope TEXT PRIMARY KEY, last_number INTEGER NOT NULL)`,
  `INSERT INTO run_numbers (scope, last_number) SELECT ${RUN_SCOPE}, MAX(run_number) FROM runs GROUP BY ${RUN_SCOPE}`,
  // A job's egress report (JSON: every host it asked for through its gateway); NULL for a job without one.
  `ALTER TABLE jobs ADD COLUMN egress TEXT`,
];

class SqliteDatabase implements Database {
  readonly kind = 'sqlite' as const;
  private readonly db: BetterSqlite3.Database;
  constructor(file: string) {
    privateDirSync(path.dirname(file), true);
    // Made 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode.
    if (fs.existsSync(file)) privateFileSync(file);
    else fs.closeSync(openPrivateAppend(file));
    this.db = new BetterSqlite3(file);
    this.db.pragma('journal_mode = WAL');
    for (const f of [`${file}-wal`, `${file}-shm`]) privateFileSync(f); // an older Kiln's, made 0644
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
  }
  /**
   * Prepared statements by their text: Kiln's SQL is a fixed set of strings, and preparing one costs
   * more than running it (about 7% of an API process's CPU while 1000 runs were submitted). SQLite
   * prepares a statement again by itself when the schema changes under it.
   */
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private statement(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      if (this.statements.size >= 512) this.statements.clear(); // only if SQL were ever built from data
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.statement(sql).all(...params) as T[];
  }
  async run(sql: string, params: unknown[] = []): Promise<number> {
    return this.statement(sql).run(...params).changes;
  }
  private queue: Promise<unknown> = Promise.resolve();

  async transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    // One connection: transactions are serialized here. fn must only await this database (whose
    // calls resolve synchronously), so no I/O callback of another request runs inside it.
    const turn = this.queue.then(() => this.inTransaction(fn));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async inTransaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    this.statement('BEGIN IMMEDIATE').run();
    try {
      const out = await fn(this);
      this.statement('COMMIT').run();
      return out;
    } catch (e) {
      if (this.db.inTransaction) this.statement('ROLLBACK').run();
      throw e;
    }
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
  async run(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.pool.query(PostgresDatabase.numbered(sql), params)).rowCount ?? 0;
  }
  async transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: Database = {
      kind: 'postgres',
      all: async <R>(sql: string, params: unknown[] = []) => (await client.query(PostgresDatabase.numbered(sql), params)).rows as R[],
      run: async (sql: string, params: unknown[] = []) => (await client.query(PostgresDatabase.numbered(sql), params)).rowCount ?? 0,
      transaction: (inner) => inner(tx),
      ping: async () => undefined,
      close: async () => undefined,
    };
    try {
      await client.query('BEGIN');
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }
  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** A migration's statement for this engine. */
export function migrationSql(m: Migration, kind: Database['kind']): string {
  return typeof m === 'string' ? m : m[kind];
}

/** Applies the migrations not yet applied, up to `upTo` of them (all by default; fewer only to build an older release's schema in tests). */
export async function migrate(db: Database, upTo = MIGRATIONS.length): Promise<void> {
  await db.run('CREATE TABLE IF NOT EXISTS kiln_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const done = new Set((await db.all<{ id: number }>('SELECT id FROM kiln_migrations')).map((r) => Number(r.id)));
  for (let i = 0; i < upTo; i++) {
    if (done.has(i + 1)) continue;
    await db.run(migrationSql(MIGRATIONS[i], db.kind));
    await db.run('INSERT INTO kiln_migrations (id, applied_at) VALUES (?, ?)', [i + 1, new Date().toISOString()]);
  }
}

/** A connection to the configured database, without migrating it. */
export function connectDatabase(config: Pick<KilnConfig, 'database'>): Database {
  return config.database.kind === 'postgres' ? new PostgresDatabase(config.database.url) : new SqliteDatabase(config.database.file);
}

export async function openDatabase(config: Pick<KilnConfig, 'database'>): Promise<Database> {
  const db = connectDatabase(config);
  await migrate(db);
  return db;
}
