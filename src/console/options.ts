import type { DatabasePool } from '../db/pool.js';
import type { Logger } from '../log.js';

/** What a console needs (createConsole in server.ts; the actions read the same). */
export interface ConsoleOptions {
  /** The console's own pool (CONSOLE_DATABASE_URL): a viewer login reads, an operator login may also act. */
  db: DatabasePool;
  /** CONSOLE_TOKEN; undefined = read-only. */
  token: string | undefined;
  /** The address the server listens on (a loopback console answers only to localhost names). */
  listenHost: string;
  logger: Logger;
  /** The available balance of a fin-account at the bank, for the retry dry run (when a bank is reachable). */
  balance?: (finAcno: string) => Promise<bigint>;
}
