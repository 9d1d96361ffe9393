import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runMigrations } from 'graphile-worker';
import type { Logger } from '../log.js';

/** The project's sql/ folder, found from both src/ (ts) and dist/src/ (compiled). */
export function sqlDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'sql');
    try {
      if (readdirSync(candidate).some((f) => f.endsWith('.sql'))) return candidate;
    } catch {
      /* keep climbing */
    }
    dir = path.dirname(dir);
  }
  throw new Error('sql/ folder not found');
}

export interface Migration {
  id: number;
  name: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir = sqlDir()): Migration[] {
  const files = readdirSync(dir).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((f) => {
    const sql = readFileSync(path.join(dir, f), 'utf8');
    return { id: Number(f.slice(0, 4)), name: f, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export class MigrationChecksumError extends Error {
  override name = 'MigrationChecksumError';
  readonly code = 'migration_edited';
  constructor(readonly migration: string) {
    super(`migration ${migration} was edited after it was applied (checksum differs); add a new migration instead`);
  }
}

// A fixed key for the session-level advisory lock that serialises migrators.
const MIGRATE_LOCK_KEY = 727_001;

/**
 * Applies graphile-worker's migrations, then ours: each file in its own
 * transaction, recorded with its checksum. A session advisory lock makes two
 * migrators racing harmless: the second waits, then finds nothing to do.
 */
export async function migrate(databaseUrl: string, opts: { logger?: Logger; dir?: string } = {}): Promise<{ applied: string[] }> {
  const migrations = loadMigrations(opts.dir);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'settle-migrate' });
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('set client_min_messages = warning');
    await client.query('select pg_advisory_lock($1)', [MIGRATE_LOCK_KEY]);
    await runMigrations({ connectionString: databaseUrl, logger: undefined });
    await client.query(`
      create schema if not exists settlement_meta;
      create table if not exists settlement_meta.migrations (
        id integer primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now()
      );`);
    const done = new Map<number, { name: string; checksum: string }>();
    for (const r of (await client.query('select id, name, checksum from settlement_meta.migrations')).rows) done.set(r.id, r);
    for (const m of migrations) {
      const prior = done.get(m.id);
      if (prior) {
        if (prior.checksum !== m.checksum) throw new MigrationChecksumError(m.name);
        continue;
      }
      await client.query('begin');
      try {
        await client.query('insert into settlement_meta.migrations (id, name, checksum) values ($1, $2, $3)', [m.id, m.name, m.checksum]);
        await client.query(m.sql);
        await client.query('commit');
      } catch (e) {
        await client.query('rollback');
        throw Object.assign(e as Error, { message: `migration ${m.name} failed: ${(e as Error).message}` });
      }
      applied.push(m.name);
      opts.logger?.info({ event: 'db:migrated', migration: m.name }, `applied ${m.name}`);
    }
  } finally {
    await client.query('select pg_advisory_unlock_all()').catch(() => {});
    await client.end();
  }
  return { applied };
}

export class MigrationPendingError extends Error {
  override name = 'MigrationPendingError';
  readonly code = 'migration_pending';
}

/**
 * Checks, without changing anything, that every migration of this version is
 * applied unchanged: a process running as an application role (which may not
 * run DDL) refuses to start on a database that is behind or ahead.
 */
export async function checkMigrations(databaseUrl: string, opts: { dir?: string } = {}): Promise<void> {
  const migrations = loadMigrations(opts.dir);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'settle-check' });
  await client.connect();
  try {
    const rows = await client
      .query<{ id: number; name: string; checksum: string }>('select id, name, checksum from settlement_meta.migrations')
      .then((r) => r.rows, (e: { code?: string }) => {
        if (e.code === '42P01' || e.code === '3F000') return [];
        throw e;
      });
    const done = new Map(rows.map((r) => [r.id, r]));
    const pending = migrations.filter((m) => !done.has(m.id)).map((m) => m.name);
    if (pending.length > 0) throw new MigrationPendingError(`the database is not migrated (${pending.join(', ')} pending): run \`settle migrate\` as the database owner`);
    for (const m of migrations) if (done.get(m.id)!.checksum !== m.checksum) throw new MigrationChecksumError(m.name);
  } finally {
    await client.end();
  }
}
