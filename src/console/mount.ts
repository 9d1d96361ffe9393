import http from 'node:http';
import type { BankClient } from '../bank/port.js';
import type { Config } from '../config.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { createDbPool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { ensureLoginRole } from '../runtime.js';
import { createConsole, type Console } from './server.js';

/** The login the console uses on the embedded database: settlement_operator, marked shared (settlement_shared: it may not approve a change). */
export const EMBEDDED_CONSOLE_LOGIN = { name: 'settle_console', password: 'settle-console-local', role: 'settlement_operator, settlement_shared' } as const;

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

/** The console's reads and actions: a statement longer than this is cancelled (a page must never hold the database). */
export const CONSOLE_STATEMENT_TIMEOUT_MS = 5_000;
/** The console's pool: separate from the worker's, small. */
export const CONSOLE_POOL_SIZE = 3;

export async function mountConsole(o: { config: Config; logger: Logger; bank?: Pick<BankClient, 'balance'>; ownerUrl?: string }): Promise<MountedConsole> {
  const url = await consoleDatabaseUrl(o.config, o.logger, o.ownerUrl);
  const db = await createDbPool(url, { maximumPoolSize: CONSOLE_POOL_SIZE, applicationName: 'settle-console', statementTimeoutMs: CONSOLE_STATEMENT_TIMEOUT_MS });
  const bank = o.bank;
  const console = createConsole({
    db,
    databaseUrl: url,
    users: o.config.console.users,
    consoleHost: o.config.console.host,
    hostnames: o.config.console.hostnames,
    logger: o.logger.child({ component: 'console' }),
    balance: bank ? async (finAcno) => (await bank.balance(finAcno)).available : undefined,
  });
  return { console, close: () => db.end() };
}

/** Why a console is not started, or undefined when it may be: every page needs a sign-in, so a console needs users. */
export function consoleOff(config: Config): string | undefined {
  return config.console.users.length === 0
    ? 'no CONSOLE_TOKEN, CONSOLE_VIEWER_TOKEN or CONSOLE_USERS: the web console is off (every page needs a sign-in)'
    : undefined;
}

/**
 * The console on a server of its own (`settle console`, the demo): answers
 * /healthz and the console's pages; `port` 0 = any free port.
 */
export async function serveConsole(o: { config: Config; logger: Logger; host: string; port: number; bank?: Pick<BankClient, 'balance'>; ownerUrl?: string }): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const web = await mountConsole({ config: o.config, logger: o.logger, bank: o.bank, ownerUrl: o.ownerUrl });
  const server = http.createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    if (!web.console.handle(req, res)) res.writeHead(404).end();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => resolve());
    });
  } catch (e) {
    await web.close();
    throw e;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const url = `http://${shownHost(o.host)}:${port}/`;
  const users = o.config.console.users;
  o.logger.info({ event: 'console:listen', host: o.host, port, url, console_host: o.config.console.host, users: users.length, operators: users.filter((u) => u.role === 'operator').length },
    `console on ${url} (every page needs a sign-in; answers connections to ${o.config.console.host})`);
  return {
    url,
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await web.close();
    },
  };
}

/** A host to put in a URL a person can open. */
export const shownHost = (host: string) => (host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host);
