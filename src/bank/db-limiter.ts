import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../db/pool.js';
import type { BankLimiter } from './types.js';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

/**
 * The global in-flight limit: every HTTP call to the bank holds one of
 * `settlement.config.max_in_flight` leased slots in the database, so the cap
 * holds across every worker process on every host. A process that dies keeps
 * its slots only until their lease ends (or recovery frees them).
 *
 * A local gate with the same cap sits in front, so a process never polls the
 * database for more slots than it could use.
 */
export function createDbLimiter(db: DatabasePool, opts: { holder: () => string; leaseMs: number; maxWaitMs: number; localCap: number }): BankLimiter & { inUse(): number } {
  let inUse = 0;
  const waiters: Array<() => void> = [];
  const enterLocal = async () => {
    if (inUse < opts.localCap) {
      inUse++;
      return;
    }
    await new Promise<void>((resolve) => waiters.push(resolve));
  };
  const leaveLocal = () => {
    const next = waiters.shift();
    if (next) next();
    else inUse--;
  };

  const acquire = async (): Promise<number> => {
    const deadline = Date.now() + opts.maxWaitMs;
    let pause = 2;
    for (;;) {
      const slot = await db.oneFirst(sql.type(z.object({ s: z.number().nullable() }))`
        select settlement.acquire_bank_slot(${opts.holder()}, ${opts.leaseMs}) as s`);
      if (slot !== null) return slot;
      if (Date.now() > deadline) throw new BankSlotTimeoutError(`no bank call slot free within ${opts.maxWaitMs} ms`);
      // Jittered, growing pause: waiters spread out instead of polling in step.
      await sleep(pause + Math.random() * pause);
      pause = Math.min(pause * 1.5, 25);
    }
  };

  return {
    inUse: () => inUse,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      await enterLocal();
      try {
        const holder = opts.holder();
        const slot = await acquire();
        try {
          return await fn();
        } finally {
          await db
            .query(sql.unsafe`select settlement.release_bank_slot(${slot}, ${holder})`)
            .catch(() => undefined); // the lease expires on its own
        }
      } finally {
        leaveLocal();
      }
    },
  };
}
