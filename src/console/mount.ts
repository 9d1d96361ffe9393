import type { BankClient } from '../bank/port.js';
import type { Config } from '../config.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { createDbPool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { ensureLoginRole } from '../runtime.js';
import { createConsole, type Console } from './server.js';

/** The login the console uses on the embedded database: settlement_operator, nothing more. */
export const EMBEDDED_CONSOLE_LOGIN = { name: 'settle_console', password: 'settle-console-local', role: 'settlement_operator' } as const;

export interface MountedConsole {
  console: Console;
  close(): Promise<void>;
}

/**
 * The database URL the console reads (and acts) with: CONSOLE_DATABASE_URL,
 * else DATABASE_URL, else the embedded database (`ownerUrl`, or the running
 * one under .data/) through a settlement_operator login.
 */
export async function consoleDatabaseUrl(config: Config, logger: Logger, ownerUrl?: string): Promise<string> {
  if (config.console.databaseUrl) return config.console.databaseUrl;
  if (config.databaseUrl) return config.databaseUrl;
  const url = ownerUrl ?? (await startEmbeddedPostgres({ logger })).url;
  return ensureLoginRole(url, EMBEDDED_CONSOLE_LOGIN);
}

export async function mountConsole(o: { config: Config; logger: Logger; listenHost: string; bank?: Pick<BankClient, 'balance'>; ownerUrl?: string }): Promise<MountedConsole> {
  const url = await consoleDatabaseUrl(o.config, o.logger, o.ownerUrl);
  const db = await createDbPool(url, { maximumPoolSize: 4, applicationName: 'settle-console' });
  const bank = o.bank;
  const console = createConsole({
    db,
    token: o.config.console.token,
    listenHost: o.listenHost,
    logger: o.logger.child({ component: 'console' }),
    balance: bank ? async (finAcno) => (await bank.balance(finAcno)).available : undefined,
  });
  return { console, close: () => db.end() };
}
