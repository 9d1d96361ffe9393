/**
 * The bank desk: one per worker process. Every transfer attempt of the
 * process claims, and records its outcome, through it; every bank call goes
 * through one of its slots. Three parts:
 *
 * - connection.ts: one database connection of its own, which also holds the
 *   process's bank-call slots as session advisory locks
 *   (sql/logic/45_bank_slots.sql): the cap holds across every process and
 *   host, and a process that dies frees its slots with its connection.
 * - pump.ts: claims waiting while a round trip is out go together in the
 *   next one (settlement.claim_transfers: one transaction, one WAL flush for
 *   the batch); outcomes likewise (settlement.finish_transfers). Slots are
 *   taken with the claims that will need them.
 * - slots.ts: where a slot goes. A call that ends hands its slot straight to
 *   a call of this process that waits for one (no round trip between the
 *   bank's answer and the next send), unless another process waits too and
 *   this one holds more than its share of the cap; then it is given back and
 *   the others are woken (LISTEN/NOTIFY; a waiter also looks again every
 *   `fallbackMs`, so nothing depends on a notification arriving). A slot
 *   nobody here needs is kept a moment (`lingerMs`) for the next claim, then
 *   given back.
 */
import { GateClosedError, type Gate } from '../bank/port.js';
import { RetryLaterError, type Claim, type FinishResult, type TransferOutcome } from '../domain.js';
import { createDeskConnection } from './connection.js';
import { createPump } from './pump.js';
import { SlotBook, type Token } from './slots.js';

export class BankSlotTimeoutError extends Error {
  override name = 'BankSlotTimeoutError';
  readonly code = 'bank_slot_timeout';
}

/** One transfer attempt: its claim, the gate of its bank calls (one slot for all of them), its outcome. */
export interface Attempt {
  claim(): Promise<Claim>;
  gate: Gate;
  /** Gives the attempt's slot back (the bank has answered), then records the outcome. */
  finish(isTuno: string, o: TransferOutcome): Promise<FinishResult>;
}

export interface BankDesk {
  /** Runs one attempt on transfer `id`; a second attempt on the same transfer in this process is told it is busy. */
  withAttempt<T>(id: number, fn: (a: Attempt) => Promise<T>): Promise<T>;
  /** A gate for bank calls outside a transfer attempt (each call holds a slot while it runs). */
  gate(): Gate;
  /** Slots this process holds right now (in use or kept for the next claim). */
  inUse(): number;
  /**
   * The process is stopping: no new claim and no new bank call from here on
   * (each is refused with GateClosedError, waiting calls too); calls already
   * out finish and their outcomes are recorded.
   */
  stopSending(): void;
  /** Resolves with the ids of the attempts still running once none is, or when `ms` have passed. */
  idle(ms: number): Promise<number[]>;
  close(): Promise<void>;
}

export interface DeskOptions {
  url: string;
  /** Whose claims these are (the worker pool's id; it can change when the runner is replaced). */
  holder: () => string;
  claimLeaseMs: number;
  /** How long a call may wait for a slot before it fails with BankSlotTimeoutError. */
  maxWaitMs: number;
  applicationName?: string;
  /** The desk connection's statement_timeout (DESK_STATEMENT_TIMEOUT_MS); unset: none. */
  statementTimeoutMs?: number;
  maxBatch?: number;
  /** How long a round trip that nothing urgent waits for waits for more to join it (default 10 ms; 0: never). */
  batchWindowMs?: number;
  fallbackMs?: number;
  lingerMs?: number;
  flagLingerMs?: number;
  /** Reports a lost connection or a failed round trip (the items concerned fail on their own). */
  onError?: (e: unknown) => void;
}

interface Waiter { resolve(t: Token): void; reject(e: unknown): void; timer: NodeJS.Timeout }

export function createBankDesk(o: DeskOptions): BankDesk {
  const onError = o.onError ?? (() => undefined);
  // The "waiting" lock is let go flagLingerMs after the last waiting call
  // here: a process that keeps it while it waits for nothing holds the
  // others to their share of the cap.
  const book = new SlotBook<Waiter>(o.lingerMs ?? 50, o.flagLingerMs ?? 50);
  const conn = createDeskConnection({
    url: o.url,
    applicationName: o.applicationName ?? 'settle-worker',
    ...(o.statementTimeoutMs !== undefined ? { statementTimeoutMs: o.statementTimeoutMs } : {}),
    onNotify: () => pump.wakeUp(),
    onLost: () => book.lose(),
    onError,
  });
  const pump = createPump<Waiter>({
    conn,
    book,
    holder: o.holder,
    claimLeaseMs: o.claimLeaseMs,
    maxBatch: o.maxBatch ?? 64,
    batchWindowMs: o.batchWindowMs ?? 10,
    fallbackMs: o.fallbackMs ?? 250,
    hand: (w, token) => {
      clearTimeout(w.timer);
      w.resolve(token);
    },
    onError,
  });
  const attempting = new Set<number>();
  let sending = true;
  let onIdle: (() => void) | undefined;
  const closedGate = () => new GateClosedError('the worker is stopping: no new bank call from this process');

  const acquire = (): Promise<Token> => {
    if (!sending) return Promise.reject(closedGate());
    const kept = book.takeKept();
    if (kept) return Promise.resolve(kept);
    return new Promise<Token>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          book.cancel(w);
          reject(new BankSlotTimeoutError(`no bank call slot free within ${o.maxWaitMs} ms`));
        }, o.maxWaitMs),
      };
      book.wait(w);
      pump.kick();
    });
  };

  const release = (t: Token) => {
    const f = book.release(t, Date.now());
    if (f) pump.settle(f);
  };

  return {
    async withAttempt<T>(id: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
      if (attempting.has(id)) {
        // Two jobs of one transfer in this process (a job key on a locked job makes a second): one attempt at a time.
        return fn({
          claim: async () => {
            throw new RetryLaterError(`transfer ${id} is being sent by another attempt of this process`);
          },
          gate: { run: () => Promise.reject(new Error('no claim')) },
          finish: () => Promise.reject(new Error('no claim')),
        });
      }
      attempting.add(id);
      let token: Token | undefined;
      /** The fencing token of this attempt's claim: its outcome is recorded with it. */
      let claimToken: string | null = null;
      let counted = false;
      const uncount = () => {
        if (counted) book.coming--;
        counted = false;
      };
      const letGo = () => {
        uncount();
        const t = token;
        token = undefined;
        if (t) release(t);
      };
      try {
        return await fn({
          claim: async () => {
            if (!sending) throw closedGate();
            if (!counted) book.coming++;
            counted = true;
            const c = await pump.claim(id);
            claimToken = c.action === 'send' ? c.claim_token : null;
            return c;
          },
          gate: {
            async run<T2>(call: () => Promise<T2>): Promise<T2> {
              if (!sending) throw closedGate();
              if (!token) {
                try {
                  token = await acquire();
                } finally {
                  uncount();
                }
              }
              return call();
            },
          },
          finish: (isTuno, out) => {
            letGo();
            return pump.finish(id, isTuno, out, claimToken);
          },
        });
      } finally {
        letGo();
        attempting.delete(id);
        if (attempting.size === 0) onIdle?.();
      }
    },
    gate: () => ({
      async run<T>(call: () => Promise<T>): Promise<T> {
        const t = await acquire();
        try {
          return await call();
        } finally {
          release(t);
        }
      },
    }),
    inUse: () => book.size,
    stopSending() {
      if (!sending) return;
      sending = false;
      for (const w of book.drainWaiters()) {
        clearTimeout(w.timer);
        w.reject(closedGate());
      }
    },
    async idle(ms: number): Promise<number[]> {
      if (attempting.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        onIdle = undefined;
      }
      return [...attempting];
    },
    async close() {
      conn.markClosed();
      const stopped = pump.close();
      for (const w of book.drainWaiters()) {
        clearTimeout(w.timer);
        w.reject(new Error('the bank desk is closed'));
      }
      await stopped;
      await conn.close();
    },
  };
}
