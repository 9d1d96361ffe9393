import type { ConsoleUser } from '../config.js';
import type { DatabasePool } from '../db/pool.js';
import type { Logger } from '../log.js';

/** What a console needs (createConsole in server.ts; the actions read the same). */
export interface ConsoleOptions {
  /** The console's own pool (CONSOLE_DATABASE_URL): a viewer login reads, an operator login may also act. */
  db: DatabasePool;
  /**
   * The URL of the console's login (its host, port, database and TLS settings):
   * approving or rejecting a change connects once with the same URL but the
   * person's own database login and the password they type.
   */
  databaseUrl?: string;
  /** Who may sign in (at least one: a console without users is not started). */
  users: readonly ConsoleUser[];
  /** CONSOLE_HOST: the local address whose connections the console answers (127.0.0.1: loopback only). */
  consoleHost: string;
  /** CONSOLE_HOSTNAMES: Host names accepted besides localhost and the address reached. */
  hostnames: readonly string[];
  logger: Logger;
  /** The available balance of a fin-account at the bank, for the retry dry run (when a bank is reachable). */
  balance?: (finAcno: string) => Promise<bigint>;
  /** Clock for sessions, throttles and rate limits (tests); default Date.now. */
  now?: () => number;
}
