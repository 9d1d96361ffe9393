import { z } from 'zod';
import type { Config } from '../config.js';
import { startBankSimulator } from '../bank-sim/simulator.js';
import type { Logger } from '../log.js';
import { onShutdown } from '../runtime.js';
import { intFlag, parseCommand } from './args.js';
import { definedOnly, simFlagSpecs, simFlagsShape } from './sim-flags.js';

export async function cmdBankSim(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { port: { type: 'string' }, host: { type: 'string' }, 'admin-token': { type: 'string' }, 'record-requests': { type: 'boolean' }, ...simFlagSpecs },
    z
      .object({
        port: intFlag(0, 65535).optional(),
        host: z.string().optional(),
        /** When set, /_sim/ calls need `authorization: Bearer <token>`. */
        adminToken: z.string().min(1).optional(),
        /** Keep every API request for GET /_sim/requests (conformance checks). */
        recordRequests: z.boolean().optional(),
        ...simFlagsShape,
      })
      .strict(),
  );
  const sim = await startBankSimulator({
    accessToken: config.bank.accessToken,
    perCallLimit: config.bank.perCallLimit,
    ...definedOnly(o),
  });
  logger.info({ event: 'sim:listen', url: sim.url }, `bank simulator listening on ${sim.url}`);
  console.log(sim.url);
  onShutdown(logger, () => sim.close());
  await new Promise<never>(() => {}); // serve until a signal stops the process
}
