import pg from 'pg';
import type { Gate } from '../bank/port.js';
import { createAttemptPool, type AttemptClient } from '../db/attempt.js';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

/**
 * One transfer attempt: a database connection held from claim to finish, and
 * the bank-call slot that connection holds (a session advisory lock, see
 * sql/0030_fast_path.sql). The attempt's calls are made one after another,
 * so one slot covers them all: the first call uses the slot the claim took
 * (`adopt`), or takes one, waiting for a free one. finish_transfer gives it
 * back in its own round trip (`held` then `given`); whatever is still held
 * when the attempt ends is given back before the connection goes back to the
 * pool (or the connection is closed, which frees it too).
 */
export interface Attempt {
  client: AttemptClient;
  /** The slot the claim took on this connection (null: none; `tried` false: no claim tried for one). */
  adopt(taken: number | null, tried?: boolean): void;
  /** The gate every bank call of the attempt goes through. */
  gate: Gate;
  /** The slot held right now (to hand to finish_transfer), or null. */
  held(): number | null;
  /** finish_transfer gave it back. */
  given(): void;
}

export interface DbLimiter {
  /** Runs one transfer attempt on a connection of its own. */
  withAttempt<T>(fn: (a: Attempt) => Promise<T>): Promise<T>;
  /** A gate for calls outside a transfer attempt: each call holds a connection and a slot while it runs. */
  gate(taken: null): Gate;
  /** Slots this process holds right now. */
  inUse(): number;
  /** Closes the wake-up listener and the attempts' connections. */
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
function createSlotWakeup(url: string, fallbackMs: number, lingerMs: number) {
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
  // It is let go only after `lingerMs` without waiters: under a full cap the
  // count of waiters touches zero all the time, and taking and letting go of
  // the lock each time would cost two round trips per freed slot.
  let linger: NodeJS.Timeout | undefined;
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
      clearTimeout(linger);
      if (!client && !closed) await connect();
      await sync();
    },
    leave(): void {
      waiting--;
      if (waiting === 0) {
        clearTimeout(linger);
        linger = setTimeout(() => void sync(), lingerMs);
        linger.unref();
      }
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
      clearTimeout(linger);
      wakeAll();
      await client?.end().catch(() => undefined);
    },
  };
}

/**
 * The global in-flight limit: every HTTP call to the bank holds one of
 * `settlement.config.max_in_flight` slots, a session advisory lock held by
 * the database connection of the attempt making the call, so the cap holds
 * across every worker process on every host, nothing is written to take or
 * give a slot, and a process that dies frees its slots with its connections.
 */
export function createDbLimiter(opts: { url: string; maxWaitMs: number; poolSize: number; applicationName?: string }): DbLimiter {
  let held = 0;
  const pool = createAttemptPool(opts.url, opts.poolSize, opts.applicationName ?? 'settle-worker');
  const wakeup = createSlotWakeup(opts.url, 250, 1_000);

  const trySlot = async (c: AttemptClient): Promise<number | null> => {
    const r = await c.query({ name: 'settle_try_bank_slot', text: 'select settlement.try_bank_slot() as s', values: [] });
    const s = r.rows[0]?.s as unknown;
    if (s !== null && typeof s !== 'number') throw new Error(`try_bank_slot returned ${JSON.stringify(s)}`);
    return s;
  };
  /** `justTried`: the claim tried a moment ago and found the cap full; wait at once. */
  const take = async (c: AttemptClient, justTried: boolean): Promise<number> => {
    const deadline = Date.now() + opts.maxWaitMs;
    if (!justTried) {
      const first = await trySlot(c);
      if (first !== null) return first;
    }
    await wakeup.enter();
    try {
      for (;;) {
        const slot = await trySlot(c);
        if (slot !== null) return slot;
        if (Date.now() > deadline) throw new BankSlotTimeoutError(`no bank call slot free within ${opts.maxWaitMs} ms`);
        await wakeup.wait();
      }
    } finally {
      wakeup.leave();
    }
  };

  async function withAttempt<T>(fn: (a: Attempt) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let slot: number | null = null;
    // A slot may be held without our knowing: taking failed half-way (the lock
    // taken, the answer lost), or the claim that takes one has not answered.
    let unsure = true;
    let claimTried = false;
    const a: Attempt = {
      client,
      adopt(taken, tried = true) {
        unsure = false;
        claimTried = tried;
        if (taken !== null && slot === null) {
          slot = taken;
          held++;
        }
      },
      held: () => slot,
      given() {
        if (slot !== null) held--;
        slot = null;
      },
      gate: {
        async run<T2>(call: () => Promise<T2>): Promise<T2> {
          if (slot === null) {
            unsure = true;
            slot = await take(client, claimTried);
            claimTried = false;
            unsure = false;
            held++;
          }
          return call();
        },
      },
    };
    let destroy = false;
    try {
      return await fn(a);
    } finally {
      if (slot !== null || unsure) {
        const s = unsure ? null : slot;
        a.given();
        unsure = false;
        // Not given back: close the connection, which frees whatever it holds.
        await client
          .query({ name: 'settle_give_bank_slot', text: 'select settlement.give_bank_slot($1)', values: [s] })
          .catch(() => (destroy = true));
      }
      client.release(destroy);
    }
  }

  return {
    withAttempt,
    inUse: () => held,
    async close() {
      await wakeup.close();
      await pool.end().catch(() => undefined);
    },
    gate() {
      return {
        run: <T>(call: () => Promise<T>) =>
          withAttempt((a) => {
            a.adopt(null, false); // no claim here: nothing is held yet
            return a.gate.run(call);
          }),
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
