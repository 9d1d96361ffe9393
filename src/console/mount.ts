import http from 'node:http';
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

/**
 * The console on a server of its own (`settle console`, the demo): answers
 * /healthz and the console's pages; `port` 0 = any free port.
 */
export async function serveConsole(o: { config: Config; logger: Logger; host: string; port: number; bank?: Pick<BankClient, 'balance'>; ownerUrl?: string }): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const web = await mountConsole({ config: o.config, logger: o.logger, listenHost: o.host, bank: o.bank, ownerUrl: o.ownerUrl });
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
  o.logger.info({ event: 'console:listen', host: o.host, port, url, actions: Boolean(o.config.console.token) },
    `console on ${url} (${o.config.console.token ? 'actions need CONSOLE_TOKEN' : 'read-only: no CONSOLE_TOKEN'})`);
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
