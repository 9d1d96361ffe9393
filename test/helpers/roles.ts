import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { adminQuery } from './db.js';

/** The login role test worker processes use: it holds settlement_worker and nothing else. */
export const TEST_WORKER_LOGIN = { name: 'settle_test_worker', password: 'settle-test-worker', role: 'settlement_worker', bypassRls: true } as const;

/** `url` rewritten to log in as `login`. */
export function asLogin(url: string, login: { name: string; password: string }): string {
  const u = new URL(url);
  u.username = login.name;
  u.password = login.password;
  return u.toString();
}

/**
 * Sessions as each settlement role, over a real login: `as(role)` creates a
 * login holding `role` (dropped, with its session, when the test ends) and
 * returns a runner of one statement that answers 'ok' or the error's SQLSTATE.
 */
export function roleSessions(t: { teardown(fn: () => unknown): void }, url: string, tag: string): (role: string) => Promise<(q: string) => Promise<string>> {
  const suffix = randomBytes(4).toString('hex');
  const clients: pg.Client[] = [];
  const logins: string[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    for (const l of logins) await adminQuery(`drop role if exists ${l}`).catch(() => undefined);
  });
  return async (role: string) => {
    const name = `settle_t_${tag}${role.replace('settlement_', '')}_${suffix}`;
    await adminQuery(`create role ${name} login password 'pw'; grant ${role} to ${name}`);
    logins.push(name);
    const c = new pg.Client({ connectionString: asLogin(url, { name, password: 'pw' }) });
    await c.connect();
    clients.push(c);
    return (q: string) => c.query(q).then(() => 'ok', (e: { code?: string; message: string }) => e.code ?? e.message);
  };
}

/**
 * A login of its own holding `role` and nothing else, dropped (with its
 * session) when the test ends: `client` is its session; `one` runs one
 * statement and answers its first value ('null' for null, 'none' for no row)
 * or the error's SQLSTATE; `rows` answers its rows.
 */
export async function loginAs(t: { teardown(fn: () => unknown): void }, url: string, role: string, tag = 'l') {
  const name = `settle_${tag}_${role.replace('settlement_', '')}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create role ${name} login password 'pw'; grant ${role} to ${name}`);
  const client = new pg.Client({ connectionString: asLogin(url, { name, password: 'pw' }) });
  await client.connect();
  t.teardown(async () => {
    await client.end().catch(() => undefined);
    await adminQuery(`drop role if exists ${name}`).catch(() => undefined);
  });
  const one = (q: string, params: unknown[] = []) => client.query(q, params).then((r) => {
    const v: unknown = Object.values(r.rows[0] ?? {})[0];
    return v === undefined ? 'none' : v === null ? 'null' : String(v);
  }, (e: { code?: string; message: string }) => e.code ?? e.message);
  const rows = (q: string, params: unknown[] = []) => client.query(q, params).then((r) => r.rows as Record<string, string>[]);
  return { client, one, rows, name };
}

/** A login holding settlement_worker and nothing else (a stolen worker login): loginAs. */
export const workerLogin = (t: { teardown(fn: () => unknown): void }, url: string, tag = 'w') => loginAs(t, url, 'settlement_worker', tag);
