import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../db/pool.js';
import { createSemaphore } from './semaphore.js';
import type { BankLimiter } from './types.js';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

export interface DbLimiter extends BankLimiter {
  /** A fresh holder token for one slot: `<pool id>/<n>` (recovery frees a dead pool's tokens by prefix). */
  token(): string;
  /**
   * Runs `fn` with a slot already taken (by claim_chunk, in the claim's own
   * round trip): the first bank call inside uses it instead of acquiring one;
   * whoever took it gives it back (finish_chunk). Later calls acquire as usual.
   */
  withSlot<T>(slot: { slot: number; token: string } | null, fn: () => Promise<T>): Promise<T>;
  inUse(): number;
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
export function createDbLimiter(db: DatabasePool, opts: { holder: () => string; leaseMs: number; maxWaitMs: number; localCap: number }): DbLimiter {
  let seq = 0;
  const local = createSemaphore(opts.localCap);
  const preTaken = new AsyncLocalStorage<{ slot: number; used: boolean }>();
  const token = () => `${opts.holder()}/${++seq}`;

  const acquire = async (holder: string): Promise<number> => {
    const deadline = Date.now() + opts.maxWaitMs;
    let pause = 2;
    for (;;) {
      const slot = await db.oneFirst(sql.type(z.object({ s: z.number().nullable() }))`
        select settlement.acquire_bank_slot(${holder}, ${opts.leaseMs}) as s`);
      if (slot !== null) return slot;
      if (Date.now() > deadline) throw new BankSlotTimeoutError(`no bank call slot free within ${opts.maxWaitMs} ms`);
      // Jittered, growing pause: waiters spread out instead of polling in step.
      await sleep(pause + Math.random() * pause);
      pause = Math.min(pause * 1.5, 25);
    }
  };

  return {
    token,
    inUse: () => local.inside(),
    withSlot: (slot, fn) => (slot ? preTaken.run({ slot: slot.slot, used: false }, fn) : fn()),
    async run<T>(fn: () => Promise<T>): Promise<T> {
      const pre = preTaken.getStore();
      if (pre && !pre.used) {
        pre.used = true;
        return fn();
      }
      return local.run(async () => {
        const holder = token();
        const slot = await acquire(holder);
        try {
          return await fn();
        } finally {
          await db
            .query(sql.unsafe`select settlement.release_bank_slot(${slot}, ${holder})`)
            .catch(() => undefined); // the lease expires on its own
        }
      });
    },
  };
}
