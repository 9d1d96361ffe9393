import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runMigrations } from 'graphile-worker';
import type { Logger } from '../log.js';

/**
 * The project's SQL lives in two folders under sql/:
 *  - sql/schema/NNNN_name.sql: versioned, append-only migrations (types,
 *    tables, indexes, constraints, reference rows, roles), each applied once
 *    and recorded with its checksum in settlement_meta.migrations;
 *  - sql/logic/NN_area.sql: repeatable files holding the current text of the
 *    functions, views and triggers, all re-applied in name order (then their
 *    checksums recorded in settlement_meta.logic) whenever any of them
 *    differs from what the database recorded.
 */

/** The project's sql/ folder, found from both src/ (ts) and dist/src/ (compiled). */
export function sqlDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'sql');
    try {
      const entries = readdirSync(candidate);
      if (entries.includes('schema') && entries.includes('logic')) return candidate;
    } catch {
      /* keep climbing */
    }
    dir = path.dirname(dir);
  }
  throw new Error('sql/ folder (with schema/ and logic/) not found');
}

export interface Migration {
  id: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface LogicFile {
  name: string;
  sql: string;
  checksum: string;
}

const checksum = (text: string) => createHash('sha256').update(text).digest('hex');

/** sql/schema/NNNN_name.sql, in order. */
export function loadMigrations(dir = sqlDir()): Migration[] {
  const schemaDir = path.join(dir, 'schema');
  const files = readdirSync(schemaDir).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((f) => {
    const sql = readFileSync(path.join(schemaDir, f), 'utf8');
    return { id: Number(f.slice(0, 4)), name: f, sql, checksum: checksum(sql) };
  });
}

/** sql/logic/NN_area.sql, in name order (the order they are applied in). */
export function loadLogic(dir = sqlDir()): LogicFile[] {
  const logicDir = path.join(dir, 'logic');
  const files = readdirSync(logicDir).filter((f) => /^\d{2}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((f) => {
    const sql = readFileSync(path.join(logicDir, f), 'utf8');
    return { name: f, sql, checksum: checksum(sql) };
  });
}

export class MigrationChecksumError extends Error {
  override name = 'MigrationChecksumError';
  readonly code = 'migration_edited';
  constructor(readonly migration: string) {
    super(`migration ${migration} was edited after it was applied (checksum differs); add a new migration instead`);
  }
}

/**
 * The database was built by migrations this version does not have: the
 * numbered chain before sql/schema/0001_baseline.sql (0001_schema.sql …
 * 0031_desk.sql), or a newer build. Nothing converts it.
 */
export class MigrationUnknownError extends Error {
  override name = 'MigrationUnknownError';
  readonly code = 'migration_unknown';
  constructor(readonly migrations: string[]) {
    super(
      `the database records migrations this version does not have (${migrations.join(', ')}): it was built by the migration chain before ` +
        `sql/schema/0001_baseline.sql or by another version; settle its days with the version that built it, or migrate a new database`,
    );
  }
}

/**
 * A process would run against function bodies from another build: the logic
 * files recorded in the database differ from this version's sql/logic/.
 */
export class LogicMismatchError extends Error {
  override name = 'LogicMismatchError';
  readonly code = 'logic_mismatch';
  constructor(readonly files: string[]) {
    super(`the database's functions and views are not this version's (sql/logic/ differs: ${files.join(', ')}): run \`settle migrate\` as the database owner`);
  }
}

// A fixed key for the session-level advisory lock that serialises migrators.
const MIGRATE_LOCK_KEY = 727_001;

/** The logic files whose checksum differs from the recorded one (added, changed or gone). */
export function logicDiff(files: readonly LogicFile[], recorded: readonly { name: string; checksum: string }[]): string[] {
  const want = new Map(files.map((f) => [f.name, f.checksum]));
  const have = new Map(recorded.map((r) => [r.name, r.checksum]));
  const names = [...new Set([...want.keys(), ...have.keys()])].sort();
  return names.filter((n) => want.get(n) !== have.get(n));
}

/**
 * Applies graphile-worker's migrations, then ours: each pending schema file in
 * its own transaction, recorded with its checksum; then, if any logic file
 * differs from what the database recorded, every logic file in name order in
 * one transaction, and their checksums. A session advisory lock makes two
 * migrators racing harmless: the second waits, then finds nothing to do.
 */
export async function migrate(
  databaseUrl: string,
  opts: { logger?: Logger; dir?: string } = {},
): Promise<{ applied: string[]; logic: string[] }> {
  const migrations = loadMigrations(opts.dir);
  const logic = loadLogic(opts.dir);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'settle-migrate' });
  await client.connect();
  const applied: string[] = [];
  let logicApplied: string[] = [];
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
      );
      create table if not exists settlement_meta.logic (
        name text primary key,
        checksum text not null,
        applied_at timestamptz not null default now()
      );`);
    const done = new Map<number, { name: string; checksum: string }>();
    for (const r of (await client.query('select id, name, checksum from settlement_meta.migrations')).rows) done.set(r.id, r);
    const known = new Set(migrations.map((m) => m.name));
    const unknown = [...done.values()].map((r) => r.name).filter((n) => !known.has(n)).sort();
    if (unknown.length > 0) throw new MigrationUnknownError(unknown);
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
    const recorded = (await client.query('select name, checksum from settlement_meta.logic')).rows;
    const differ = logicDiff(logic, recorded);
    if (differ.length > 0) {
      await client.query('begin');
      let current = '';
      try {
        for (const f of logic) {
          current = f.name;
          await client.query(f.sql);
        }
        current = '';
        await client.query('delete from settlement_meta.logic');
        await client.query('insert into settlement_meta.logic (name, checksum) select * from unnest($1::text[], $2::text[])', [
          logic.map((f) => f.name),
          logic.map((f) => f.checksum),
        ]);
        await client.query('commit');
      } catch (e) {
        await client.query('rollback');
        throw Object.assign(e as Error, { message: `logic ${current || '(recording checksums)'} failed: ${(e as Error).message}` });
      }
      logicApplied = logic.map((f) => f.name);
      opts.logger?.info({ event: 'db:logic_applied', changed: differ }, `re-applied sql/logic (${differ.join(', ')} changed)`);
    }
  } finally {
    await client.query('select pg_advisory_unlock_all()').catch(() => {});
    await client.end();
  }
  return { applied, logic: logicApplied };
}

export class MigrationPendingError extends Error {
  override name = 'MigrationPendingError';
  readonly code = 'migration_pending';
}

/**
 * Checks, without changing anything, that every migration of this version is
 * applied unchanged and that the database's logic is this version's
 * sql/logic/: a process running as an application role (which may not run
 * DDL) refuses to start on a database that is behind or ahead, or whose
 * function bodies come from another build.
 */
export async function checkMigrations(databaseUrl: string, opts: { dir?: string } = {}): Promise<void> {
  const migrations = loadMigrations(opts.dir);
  const logic = loadLogic(opts.dir);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'settle-check' });
  await client.connect();
  const rowsOf = <T>(q: Promise<pg.QueryResult<T & pg.QueryResultRow>>) =>
    q.then((r) => r.rows, (e: { code?: string }) => {
      if (e.code === '42P01' || e.code === '3F000') return [];
      throw e;
    });
  try {
    const rows = await rowsOf<{ id: number; name: string; checksum: string }>(client.query('select id, name, checksum from settlement_meta.migrations'));
    const known = new Set(migrations.map((m) => m.name));
    const unknown = rows.map((r) => r.name).filter((n) => !known.has(n)).sort();
    if (unknown.length > 0) throw new MigrationUnknownError(unknown);
    const done = new Map(rows.map((r) => [r.id, r]));
    const pending = migrations.filter((m) => !done.has(m.id)).map((m) => m.name);
    if (pending.length > 0) throw new MigrationPendingError(`the database is not migrated (${pending.join(', ')} pending): run \`settle migrate\` as the database owner`);
    for (const m of migrations) if (done.get(m.id)!.checksum !== m.checksum) throw new MigrationChecksumError(m.name);
    const recorded = await rowsOf<{ name: string; checksum: string }>(client.query('select name, checksum from settlement_meta.logic'));
    const differ = logicDiff(logic, recorded);
    if (differ.length > 0) throw new LogicMismatchError(differ);
  } finally {
    await client.end();
  }
}
