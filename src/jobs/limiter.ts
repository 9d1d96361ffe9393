import pg from 'pg';
import { sql } from 'slonik';
import { z } from 'zod';
import type { Gate } from '../bank/port.js';
import type { DatabasePool } from '../db/pool.js';
import type { DatabasePoolConnection } from 'slonik';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

/** The part of a database connection the limiter needs (slonik's pool connection). */
export type SlotConnection = Pick<DatabasePoolConnection, 'oneFirst' | 'query'>;

/**
 * One transfer attempt's bank-call slot, held by the attempt's own database
 * connection (a session advisory lock, see sql/0030_fast_path.sql). The
 * attempt's calls are made one after another, so one slot covers them all:
 * the first call uses the slot the claim took, or takes one (waiting for a
 * free one). finish_transfer gives it back in its own round trip; `release`
 * gives back whatever is still held (after an error).
 */
export interface AttemptSlot {
  /** The gate every bank call of the attempt goes through. */
  gate: Gate;
  /** The slot held right now (to hand to finish_transfer), or null. */
  held(): number | null;
  /** finish_transfer gave it back. */
  given(): void;
  /** Gives back anything this connection may still hold; never throws. */
  release(): Promise<void>;
}

export interface DbLimiter {
  /** A holder token: a claim that should take a slot passes one (any non-null text). */
  token(): string;
  /** The slot of one transfer attempt on its connection (`taken`: the slot its claim took, or null). */
  attempt(conn: SlotConnection, taken: number | null): AttemptSlot;
  /** A gate for calls outside a transfer attempt: each call holds a pooled connection and a slot while it runs. */
  gate(taken: null): Gate;
  /** Slots this process holds right now. */
  inUse(): number;
  /** Closes the wake-up listener. */
  close(): Promise<void>;
}

/**
 * Wakes waiters when any process frees a slot (give_bank_slot notifies
 * `settlement_bank_slot` when some process holds the "waiting" lock
 * (21332, 0) shared). This process holds that lock on its listening
 * connection while it has waiters. A lost connection is reopened on the next
 * wait; waiters also look again after `fallbackMs`, so nothing depends on a
 * notification arriving.
 */
function createSlotWakeup(url: string, fallbackMs: number) {
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let waiting = 0;
  let flag: Promise<unknown> = Promise.resolve();
  let flagged = false;
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
        if (client === c) {
          client = undefined;
          flagged = false;
        }
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
  // The "waiting" lock follows `waiting` (serialised on the one connection).
  const sync = () => {
    flag = flag.then(async () => {
      const c = client;
      if (!c) return;
      const want = waiting > 0;
      if (want === flagged) return;
      flagged = want;
      await c.query(want ? 'select pg_advisory_lock_shared(21332, 0)' : 'select pg_advisory_unlock_shared(21332, 0)').catch(() => undefined);
    });
    return flag;
  };
  return {
    /** Announces a waiter (before it looks for a slot): a release from now on notifies. */
    async enter(): Promise<void> {
      waiting++;
      if (!client && !closed) await connect();
      await sync();
    },
    leave(): void {
      waiting--;
      if (waiting === 0) void sync();
    },
    /** Resolves at the next freed slot anywhere, or after fallbackMs. */
    async wait(): Promise<void> {
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

const slotRow = z.object({ s: z.number().nullable() });

/**
 * The global in-flight limit: every HTTP call to the bank holds one of
 * `settlement.config.max_in_flight` slots, a session advisory lock held by
 * the database connection of the attempt making the call, so the cap holds
 * across every worker process on every host, nothing is written to take or
 * give a slot, and a process that dies frees its slots with its connections.
 */
export function createDbLimiter(db: DatabasePool, opts: { url: string; holder: () => string; maxWaitMs: number }): DbLimiter {
  let seq = 0;
  let held = 0;
  const wakeup = createSlotWakeup(opts.url, 250);
  const token = () => `${opts.holder()}/${++seq}`;

  const take = async (conn: SlotConnection): Promise<number> => {
    const deadline = Date.now() + opts.maxWaitMs;
    const first = await conn.oneFirst(sql.type(slotRow)`select settlement.try_bank_slot() as s`);
    if (first !== null) return first;
    await wakeup.enter();
    try {
      for (;;) {
        const slot = await conn.oneFirst(sql.type(slotRow)`select settlement.try_bank_slot() as s`);
        if (slot !== null) return slot;
        if (Date.now() > deadline) throw new BankSlotTimeoutError(`no bank call slot free within ${opts.maxWaitMs} ms`);
        await wakeup.wait();
      }
    } finally {
      wakeup.leave();
    }
  };
  const give = (conn: SlotConnection, slot: number | null) =>
    conn.query(sql.type(z.object({}).passthrough())`select settlement.give_bank_slot(${slot})`);

  const attempt = (conn: SlotConnection, taken: number | null): AttemptSlot => {
    let slot = taken;
    // Taking may have failed half-way (the lock taken, the answer lost): then release all.
    let unsure = false;
    if (slot !== null) held++;
    return {
      held: () => slot,
      given() {
        if (slot !== null) held--;
        slot = null;
      },
      gate: {
        async run<T>(fn: () => Promise<T>): Promise<T> {
          if (slot === null) {
            unsure = true;
            slot = await take(conn);
            unsure = false;
            held++;
          }
          return fn();
        },
      },
      async release() {
        if (slot === null && !unsure) return;
        const s = unsure ? null : slot;
        if (slot !== null) held--;
        slot = null;
        unsure = false;
        await give(conn, s).catch(() => undefined); // a broken connection has freed it
      },
    };
  };

  return {
    token,
    attempt,
    inUse: () => held,
    close: () => wakeup.close(),
    gate() {
      return {
        run<T>(fn: () => Promise<T>): Promise<T> {
          return db.connect(async (conn) => {
            const a = attempt(conn, null);
            try {
              return await a.gate.run(fn);
            } finally {
              await a.release();
            }
          });
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
