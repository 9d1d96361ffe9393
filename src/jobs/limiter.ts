import pg from 'pg';
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
  /** Closes the wake-up listener. */
  close(): Promise<void>;
}

/**
 * Wakes waiters when any process frees a slot (release_bank_slot notifies
 * `settlement_bank_slot`), so a full cap costs one LISTEN connection per
 * process instead of a poll every few milliseconds per waiter. A lost
 * connection is reopened on the next wait; waiters also look again after
 * `fallbackMs`, so nothing depends on a notification arriving.
 */
function createSlotWakeup(url: string, fallbackMs: number) {
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let waiters: Array<() => void> = [];
  const wakeAll = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  // One slot was freed: one waiter of this process tries for it (first come,
  // first served), not all of them at once.
  const wakeOne = () => waiters.shift()?.();
  const connect = () =>
    (connecting ??= (async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'settle-slot-listener' });
      c.on('notification', wakeOne);
      c.on('error', () => {
        if (client === c) client = undefined;
        connecting = undefined;
        void c.end().catch(() => undefined);
      });
      try {
        await c.connect();
        await c.query('listen settlement_bank_slot');
        if (closed) await c.end();
        else client = c;
      } catch {
        connecting = undefined; // try again at the next wait
      }
    })());
  return {
    /** Resolves at the next freed slot anywhere, or after fallbackMs. */
    async wait(): Promise<void> {
      if (!client && !closed) void connect();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== done);
          resolve();
        }, fallbackMs * (0.5 + Math.random()));
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push(done);
      });
    },
    async close() {
      closed = true;
      wakeAll();
      await client?.end().catch(() => undefined);
    },
  };
}

/**
 * The global in-flight limit: every HTTP call to the bank holds one of
 * `settlement.config.max_in_flight` leased slots in the database, so the cap
 * holds across every worker process on every host. A process that dies keeps
 * its slots only until their lease ends (or recovery frees them). A local
 * gate with the same cap sits in front, so a process never polls the database
 * for more slots than it could use.
 */
export function createDbLimiter(db: DatabasePool, opts: { url: string; holder: () => string; leaseMs: number; maxWaitMs: number; localCap: number }): DbLimiter {
  let seq = 0;
  const local = createSemaphore(opts.localCap);
  const wakeup = createSlotWakeup(opts.url, 250);
  const token = () => `${opts.holder()}/${++seq}`;

  const acquire = async (holder: string): Promise<number> => {
    const deadline = Date.now() + opts.maxWaitMs;
    for (;;) {
      const slot = await db.oneFirst(sql.type(z.object({ s: z.number().nullable() }))`
        select settlement.acquire_bank_slot(${holder}, ${opts.leaseMs}) as s`);
      if (slot !== null) return slot;
      if (Date.now() > deadline) throw new BankSlotTimeoutError(`no bank call slot free within ${opts.maxWaitMs} ms`);
      await wakeup.wait();
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
    close: () => wakeup.close(),
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
