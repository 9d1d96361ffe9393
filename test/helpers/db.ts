import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql } from 'slonik';
import { createDbPool, type DatabasePool } from '../../src/db/pool.js';

type T = { teardown(fn: () => unknown): void };

/** The tests' own pools: ten minutes, longer than any test waits for anything. */
export const TEST_STATEMENT_TIMEOUT_MS = 600_000;

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with \`npm test\` (test/harness/run.ts)`);
  return v;
}

export function dbUrl(name: string): string {
  const u = new URL(env('SETTLE_TEST_ADMIN_URL'));
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(text: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: env('SETTLE_TEST_ADMIN_URL') });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}

/** A fresh database: a clone of the migrated template, dropped when the test ends. */
export async function freshDatabase(t: T, opts: { empty?: boolean } = {}): Promise<{ url: string; name: string }> {
  const name = `settle_t_${randomBytes(6).toString('hex')}`;
  // Cloning needs the template to have no other sessions; retry briefly if a
  // concurrent clone is holding it.
  for (let i = 0; ; i++) {
    try {
      await adminQuery(opts.empty ? `create database ${name}` : `create database ${name} template ${env('SETTLE_TEST_TEMPLATE')}`);
      break;
    } catch (e) {
      if (i > 50 || !/being accessed by other users/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  t.teardown(() => adminQuery(`drop database if exists ${name} with (force)`));
  return { url: dbUrl(name), name };
}

/** A fresh database and a slonik pool on it (closed when the test ends). */
export async function freshDb(t: T, opts: { poolSize?: number } = {}): Promise<{ url: string; db: DatabasePool }> {
  const { url } = await freshDatabase(t);
  // A test asserts behaviour, not speed: on a loaded 2-core box a statement
  // that waits for a stage lock (reconcile's matcher, say) may take longer than
  // slonik's 60 s default without anything being wrong.
  const db = await createDbPool(url, { maximumPoolSize: opts.poolSize ?? 10, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  return { url, db };
}

/** A raw pg client (for SQLSTATE checks and explicit transactions). */
export async function pgClient(t: T, url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  return c;
}

export const q = sql;
