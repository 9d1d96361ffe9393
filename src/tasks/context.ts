import { z } from 'zod';
import type { BankClient } from '../bank/port.js';
import type { Config } from '../config.js';
import type { DatabasePool } from '../db/pool.js';
import { PayloadError } from '../domain.js';
import type { Logger } from '../log.js';
import type { DbClock } from '../jobs/clock.js';
import type { BankDesk } from '../desk/index.js';

/** What every task gets: the project's pool, the bank, the config and a logger. */
export interface TaskContext {
  db: DatabasePool;
  bank: BankClient;
  config: Config;
  logger: Logger;
  /** This worker pool's id; claims are held in its name. */
  holder: () => string;
  /** How long a claim on a transfer lasts: longer than one whole bank transfer with its retries. */
  claimLeaseMs: number;
  /** Claims, outcomes and the database-wide bank-call limit (the bank client calls through its gates). */
  desk: BankDesk;
  /** The database's clock. */
  clock: DbClock;
}

export function parsePayload<T extends z.ZodTypeAny>(schema: T, task: string, payload: unknown): z.infer<T> {
  const r = schema.safeParse(payload);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
    throw new PayloadError(`${task}: invalid payload (${why})`);
  }
  return r.data;
}

/** Fields graphile-worker's crontab adds to a payload. */
export const cronMeta = z.object({ ts: z.string(), backfilled: z.boolean().optional() }).optional();
