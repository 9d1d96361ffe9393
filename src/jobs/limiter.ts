import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'slonik';
import { z } from 'zod';
import type { Gate } from '../bank/port.js';
import type { DatabasePool } from '../db/pool.js';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

/** A slot taken in a claim's own round trip, handed to the first bank call of that attempt. */
export interface TakenSlot {
  slot: number;
  token: string;
}

export interface DbLimiter {
  /** A fresh holder token for one slot: `<pool id>/<n>` (recovery frees a dead pool's tokens by prefix). */
  token(): string;
  /**
   * A gate for one transfer attempt: its first bank call uses `taken` (when
   * the claim got one), every later call acquires a slot of its own. Whoever
   * took `taken` gives it back (finish_transfer).
   */
  gate(taken: TakenSlot | null): Gate;
  /** Calls of this process inside the limiter right now. */
  inUse(): number;
}

/**
 * The global in-flight limit: every HTTP call to the bank holds one of
 * `settlement.config.max_in_flight` leased slots in the database, so the cap
 * holds across every worker process on every host. A process that dies keeps
 * its slots only until their lease ends (or recovery frees them). A local
 * gate with the same cap sits in front, so a process never polls the database
 * for more slots than it could use.
 */
export function createDbLimiter(db: DatabasePool, opts: { holder: () => string; leaseMs: number; maxWaitMs: number; localCap: number }): DbLimiter {
  let seq = 0;
  const local = createSemaphore(opts.localCap);
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

  const withOwnSlot = <T>(fn: () => Promise<T>): Promise<T> =>
    local.run(async () => {
      const holder = token();
      const slot = await acquire(holder);
      try {
        return await fn();
      } finally {
        await db
          .query(sql.type(z.object({}).passthrough())`select settlement.release_bank_slot(${slot}, ${holder})`)
          .catch(() => undefined); // the lease expires on its own
      }
    });

  return {
    token,
    inUse: () => local.inside(),
    gate(taken) {
      let first = taken;
      return {
        run<T>(fn: () => Promise<T>): Promise<T> {
          if (first) {
            first = null;
            return fn();
          }
          return withOwnSlot(fn);
        },
      };
    },
  };
}

/** An in-process limit of `cap` concurrent calls, first come first served. */
export function createSemaphore(cap: number): Gate & { inside(): number } {
  let inside = 0;
  const waiting: Array<() => void> = [];
  return {
    inside: () => inside,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      // A waiter is handed the place of the call that leaves, so `inside`
      // never drops and rises again in between.
      if (inside < cap) inside++;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        return await fn();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else inside--;
      }
    },
  };
}
