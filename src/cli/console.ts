import { z } from 'zod';
import { createNhBankClient } from '../bank/client.js';
import { ConfigError, type Config } from '../config.js';
import { consoleOff, serveConsole } from '../console/mount.js';
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
  const off = consoleOff(config);
  if (off) throw new ConfigError([`settle console: ${off}; set CONSOLE_TOKEN (an operator), CONSOLE_VIEWER_TOKEN (a viewer) or CONSOLE_USERS (name:role:token, ...)`]);
  const database = await openDatabase(config, logger);
  const bank = config.bank.url
    ? createNhBankClient({ baseUrl: config.bank.url, iscd: config.bank.iscd, fintechApsno: config.bank.fintechApsno, accessToken: config.bank.accessToken, perCallLimit: config.bank.perCallLimit, timeoutMs: config.bank.timeoutMs, retries: 1, maxRetryTimeMs: config.bank.timeoutMs })
    : undefined;
  let web: Awaited<ReturnType<typeof serveConsole>>;
  try {
    web = await serveConsole({ config, logger, host: config.httpHost, port: config.httpPort, bank, ownerUrl: database.embedded ? database.url : undefined });
  } catch (e) {
    bank?.close();
    await database.stop();
    throw e;
  }
  let stopped: () => void = () => {};
  const done = new Promise<void>((r) => (stopped = r));
  onShutdown(logger, async () => {
    await web.close();
    bank?.close();
    await database.stop();
    stopped();
  });
  await done;
}
