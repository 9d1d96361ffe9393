/**
 * Backups for the restore tests (docs/deploy/restore.md): a real pg_dump when
 * this machine's pg_dump can read the server, else one repeatable-read
 * snapshot of every table, as pg_dump takes it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freshDatabase } from './db.js';

/**
 * A backup taken the way pg_dump takes one: every table of the database's
 * schemas read in ONE repeatable-read snapshot (the machine's pg_dump is
 * version 15 and refuses the tests' PostgreSQL 18 server), plus the
 * sequences. restore() loads it into another database as pg_restore
 * --disable-triggers would (session_replication_role = replica).
 */
const SCHEMAS = ['settlement', 'settlement_meta', 'graphile_worker'];
export interface Dump { tables: { name: string; cols: string[]; rows: string }[]; sequences: { name: string; last: string | null }[] }

export async function dump(url: string): Promise<Dump> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin isolation level repeatable read read only');
    const tables = await c.query<{ name: string; cols: string[] }>(`
      select format('%I.%I', n.nspname, r.relname) as name,
             array_agg(format('%I', a.attname) order by a.attnum) as cols
      from pg_class r join pg_namespace n on n.oid = r.relnamespace
      join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      where r.relkind in ('r', 'p') and n.nspname = any($1) group by 1 order by 1`, [SCHEMAS]);
    const out: Dump = { tables: [], sequences: [] };
    for (const tb of tables.rows) {
      const r = await c.query<{ rows: string }>(`select coalesce(json_agg(x), '[]')::text as rows from ${tb.name} x`);
      out.tables.push({ ...tb, rows: r.rows[0]!.rows });
    }
    const seqs = await c.query<{ name: string; last: string | null }>(`
      select format('%I.%I', schemaname, sequencename) as name, last_value::text as last from pg_sequences where schemaname = any($1)`, [SCHEMAS]);
    out.sequences = seqs.rows;
    await c.query('commit');
    return out;
  } finally {
    await c.end();
  }
}

export async function restore(url: string, d: Dump): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin');
    await c.query("set local session_replication_role = 'replica'");
    for (const tb of d.tables) await c.query(`delete from ${tb.name}`);
    for (const tb of d.tables) {
      const cols = tb.cols.join(', ');
      await c.query(`insert into ${tb.name} (${cols}) overriding system value select ${cols} from json_populate_recordset(null::${tb.name}, $1::json)`, [tb.rows]);
    }
    for (const s of d.sequences) {
      await c.query(s.last === null ? `select setval('${s.name}', 1, false)` : `select setval('${s.name}', ${s.last}, true)`);
    }
    await c.query('commit');
  } finally {
    await c.end();
  }
}

/**
 * A real pg_dump when this machine's pg_dump can read the server (the local
 * PostgreSQL 15 with DATABASE_URL), restored by pg_restore into an empty
 * database and migrated, as docs/deploy/restore.md says; otherwise (the
 * embedded PostgreSQL 18, which pg_dump 15 refuses) the snapshot dump above.
 */
const run = promisify(execFile);
export type Backup = { kind: 'pg_dump'; file: string } | { kind: 'snapshot'; dump: Dump };

async function pgDumpMajor(): Promise<number | null> {
  try {
    const { stdout } = await run('pg_dump', ['--version']);
    const m = /(\d+)\.\d+/.exec(stdout);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export async function backup(t: { teardown(fn: () => unknown): void }, url: string): Promise<Backup> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const server = Number((await c.query<{ v: string }>(`select current_setting('server_version_num') as v`)).rows[0]!.v) / 10000 | 0;
  await c.end();
  const tool = await pgDumpMajor();
  if (tool === null || tool < server) return { kind: 'snapshot', dump: await dump(url) };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'backup.dump');
  await run('pg_dump', ['--format=custom', '--file', file, '--dbname', url]);
  return { kind: 'pg_dump', file };
}

export async function restoreBackup(t: { teardown(fn: () => unknown): void }, b: Backup): Promise<string> {
  if (b.kind === 'snapshot') {
    const { url } = await freshDatabase(t);
    await restore(url, b.dump);
    return url;
  }
  const { url } = await freshDatabase(t, { empty: true });
  await run('pg_restore', ['--exit-on-error', '--dbname', url, b.file]);
  return url;
}

