import http from 'node:http';
import { z } from 'zod';
import { createNhBankClient } from '../bank/client.js';
import type { Config } from '../config.js';
import { mountConsole } from '../console/mount.js';
import type { Logger } from '../log.js';
import { onShutdown, openDatabase } from '../runtime.js';
import { parseCommand } from './args.js';

/**
 * `settle console`: the web console alone (for a host that runs no worker),
 * on HTTP_HOST:HTTP_PORT, against CONSOLE_DATABASE_URL / DATABASE_URL or the
 * embedded database. With BANK_URL, the retry dry run shows each paying
 * account's balance.
 */
export async function cmdConsole(argv: string[], config: Config, logger: Logger) {
  parseCommand(argv, {}, z.object({}).strict());
  const database = await openDatabase(config, logger);
  const bank = config.bank.url
    ? createNhBankClient({ baseUrl: config.bank.url, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: config.bank.accessToken, perCallLimit: config.bank.perCallLimit, timeoutMs: config.bank.timeoutMs, retries: 1, maxRetryTimeMs: config.bank.timeoutMs })
    : undefined;
  let mounted;
  try {
    mounted = await mountConsole({ config, logger, listenHost: config.httpHost, bank, ownerUrl: database.embedded ? database.url : undefined });
  } catch (e) {
    bank?.close();
    await database.stop();
    throw e;
  }
  const web = mounted;
  const server = http.createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    if (!web.console.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.httpPort, config.httpHost, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.httpPort;
  const shown = config.httpHost === '0.0.0.0' || config.httpHost === '::' ? 'localhost' : config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost;
  logger.info({ event: 'console:listen', host: config.httpHost, port, url: `http://${shown}:${port}/`, actions: Boolean(config.console.token) },
    `console on http://${shown}:${port}/ (${config.console.token ? 'actions need CONSOLE_TOKEN' : 'read-only: no CONSOLE_TOKEN'})`);
  let closing: Promise<void> | undefined;
  const stop = () =>
    (closing ??= (async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await web.close();
      bank?.close();
      await database.stop();
    })());
  onShutdown(logger, stop);
  await new Promise<void>((resolve) => server.on('close', () => resolve()));
  await stop();
}
