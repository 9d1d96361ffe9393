/**
 * The bank desk: one per worker process. Every transfer attempt of the
 * process claims, and records its outcome, through it; every bank call goes
 * through one of its slots.
 *
 * - One database connection of its own. Claims waiting while a round trip is
 *   out go together in the next one (settlement.claim_transfers: one
 *   transaction, one WAL flush for the batch); outcomes likewise
 *   (settlement.finish_transfers). Under load a round trip carries many
 *   transfers; alone, each goes at once.
 * - Bank-call slots are session advisory locks of that connection
 *   (sql/logic/45_bank_slots.sql): the cap holds across every process and host, and a
 *   process that dies frees its slots with its connection. Slots are taken
 *   with the claims that will need them.
 * - A call that ends hands its slot straight to a call of this process that
 *   waits for one (no round trip between the bank's answer and the next
 *   send), unless another process waits too and this one holds more than its
 *   share of the cap; then it is given back and the others are woken
 *   (LISTEN/NOTIFY; a waiter also looks again every `fallbackMs`, so nothing
 *   depends on a notification arriving). A slot nobody here needs is kept a
 *   moment (`lingerMs`) for the next claim, then given back.
 */
import pg from 'pg';
import type { Gate } from '../bank/port.js';
import { GIVE_BANK_SLOTS, SLOTS_OF_THIS_CONNECTION } from '../db/bank-slots.js';
import { toSettlementError } from '../db/errors.js';
import { CLAIM_TRANSFERS, decodeClaimBatch, decodeFinishes, FINISH_TRANSFERS, finishValues, type FinishItem as Finish } from '../db/transfers.js';
import { RetryLaterError, type Claim, type FinishResult, type TransferOutcome } from '../domain.js';

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
  maxBatch?: number;
  fallbackMs?: number;
  lingerMs?: number;
  flagLingerMs?: number;
  /** Reports a lost connection or a failed round trip (the items concerned fail on their own). */
  onError?: (e: unknown) => void;
}

interface ClaimItem { id: number; holder: string; resolve(c: Claim): void; reject(e: unknown): void }
interface FinishItem extends Finish { resolve(r: FinishResult): void; reject(e: unknown): void }
interface Waiter { resolve(t: Token): void; reject(e: unknown): void; timer: NodeJS.Timeout }
/** A slot held by connection number `gen` (a slot of an earlier connection died with it). */
interface Token { slot: number; gen: number }

export function createBankDesk(o: DeskOptions): BankDesk {
  const maxBatch = o.maxBatch ?? 64;
  const fallbackMs = o.fallbackMs ?? 250;
  const lingerMs = o.lingerMs ?? 50;
  // The "waiting" lock is let go this long after the last waiting call here:
  // a process that keeps it while it waits for nothing holds the others to
  // their share of the cap.
  const flagLingerMs = o.flagLingerMs ?? 50;
  const onError = o.onError ?? (() => undefined);

  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let gen = 0;
  let closed = false;
  /** Slots the current connection holds: null = in use by a call, else kept for the next one since that time. */
  const held = new Map<number, number | null>();
  let waiters: Waiter[] = [];
  let claimQ: ClaimItem[] = [];
  let finishQ: FinishItem[] = [];
  let giveQ: number[] = [];
  /** Whether the connection holds the "waiting" lock (BANK_SLOT_LOCK_CLASS, 0) shared, and since when nobody waits. */
  let flagged = false;
  let idleSince = 0;
  // What the last claim round trip said: another process waits for a slot; this process's share of the cap.
  let othersWaiting = false;
  let share = Number.POSITIVE_INFINITY;
  let busy = false;
  /** A slot may have been freed elsewhere since the last take came up short (a notification, or the fallback). */
  let wake = true;
  let again: NodeJS.Timeout | undefined;
  const attempting = new Set<number>();
  /** Attempts of this process that have asked for a claim and have not yet taken a slot or finished. */
  let coming = 0;

  const url = new URL(o.url);
  url.searchParams.set('application_name', o.applicationName ?? 'settle-worker');

  const lose = (c: pg.Client) => {
    if (client !== c) return;
    client = undefined;
    connecting = undefined;
    gen++;
    held.clear();
    giveQ = [];
    flagged = false;
    void c.end().catch(() => undefined);
  };

  const connect = (): Promise<pg.Client> =>
    (connecting ??= (async () => {
      const c = new pg.Client({ connectionString: url.toString() });
      c.on('error', (e) => {
        onError(e);
        lose(c);
      });
      c.on('end', () => lose(c));
      c.on('notification', () => {
        wake = true;
        kick();
      });
      c.on('notice', () => undefined);
      try {
        await c.connect();
        await c.query('listen settlement_bank_slot');
      } catch (e) {
        connecting = undefined;
        void c.end().catch(() => undefined);
        throw e;
      }
      if (closed) {
        await c.end().catch(() => undefined);
        throw new Error('the bank desk is closed');
      }
      client = c;
      return c;
    })());

  const kick = () => {
    if (!busy && !closed) void pump();
  };
  /** Looks again later (a waiter's fallback, a kept slot's linger, a lost connection). */
  let againAt = 0;
  const later = (ms: number) => {
    if (closed) return;
    const at = Date.now() + ms;
    if (again && againAt <= at) return; // an earlier look is due anyway
    clearTimeout(again);
    againAt = at;
    again = setTimeout(() => {
      again = undefined;
      wake = true;
      kick();
    }, ms);
    again.unref();
  };

  /** Slots to ask for: one per claim and waiting call, less those kept (claim_transfers keeps to this process's share while others wait). */
  /** Nobody here has waited for flagLingerMs: the "waiting" lock is to be let go. */
  const unflagDue = () => flagged && waiters.length === 0 && idleSince > 0 && Date.now() - idleSince > flagLingerMs;

  const wantSlots = (claims: number) => {
    let kept = 0;
    for (const since of held.values()) if (since !== null) kept++;
    return Math.max(0, claims + waiters.length - kept);
  };

  /**
   * A slot of the current connection is free: to a call here that waits for
   * one (unless another process waits too and this one holds more than its
   * share); otherwise kept a moment for a transfer of this process that is
   * being claimed or about to call, or given back (at once when another
   * process waits).
   */
  const free = (slot: number) => {
    const over = othersWaiting && held.size > share;
    const w = over ? undefined : waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve({ slot, gen });
      return;
    }
    if (over || (othersWaiting && coming === 0)) {
      held.delete(slot);
      giveQ.push(slot);
      kick();
      return;
    }
    held.set(slot, Date.now());
    later(lingerMs);
  };

  const release = (t: Token) => {
    if (t.gen !== gen || !held.has(t.slot)) return; // died with its connection
    free(t.slot);
  };

  const acquire = (): Promise<Token> => {
    for (const [slot, since] of held) {
      if (since !== null) {
        held.set(slot, null);
        return Promise.resolve({ slot, gen });
      }
    }
    return new Promise<Token>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new BankSlotTimeoutError(`no bank call slot free within ${o.maxWaitMs} ms`));
        }, o.maxWaitMs),
      };
      waiters.push(w);
      kick();
    });
  };

  /** Slots the claim round trip brought: to waiters first, the rest kept for the claims it answered. */
  const gained = (slots: number[]) => {
    for (const s of slots) {
      held.set(s, null);
      free(s);
    }
  };

  /** Kept slots nobody asked for within lingerMs go back. */
  const expireKept = () => {
    const now = Date.now();
    let left = false;
    for (const [slot, since] of held) {
      if (since === null) continue;
      if (now - since >= lingerMs || (othersWaiting && held.size > share)) {
        held.delete(slot);
        giveQ.push(slot);
      } else left = true;
    }
    if (left) later(lingerMs);
  };

  async function runClaims(c: pg.Client, items: ClaimItem[]): Promise<void> {
    const want = wantSlots(items.length);
    // The "waiting" lock is held while calls here wait (taken before the
    // slots are tried, in the same call, so no release in between goes
    // unnoticed), and let go flagLingerMs after the last.
    let flag = 0;
    if (waiters.length > 0 && !flagged) flag = 1;
    else if (unflagDue()) flag = -1;
    const heldNow = [...held.keys()];
    const r = await c.query({ name: 'settle_claim_transfers', text: CLAIM_TRANSFERS,
      values: [items.map((i) => i.id), items.map((i) => i.holder), o.claimLeaseMs, want, heldNow, flag] });
    if (client !== c) throw new Error('the bank desk lost its connection during a claim');
    if (flag !== 0) flagged = flag > 0;
    const b = decodeClaimBatch(r.rows[0]?.r, items.map((i) => i.id));
    othersWaiting = b.othersWaiting;
    share = Math.ceil(b.maxInFlight / Math.max(1, b.workers));
    gained(b.slots);
    items.forEach((it, k) => {
      const claim = b.claims[k]!;
      if (claim instanceof Error) it.reject(claim);
      else it.resolve(claim);
    });
  }

  async function runFinishes(c: pg.Client, items: FinishItem[], give: number[]): Promise<void> {
    const r = await c.query({ name: 'settle_finish_transfers', text: FINISH_TRANSFERS, values: finishValues(items, give) });
    decodeFinishes(r.rows[0]?.r, items).forEach((res, k) => {
      if (res instanceof Error) items[k]!.reject(res);
      else items[k]!.resolve(res);
    });
  }

  /**
   * A round trip that failed as a whole: each item again on its own, so one
   * transfer's error is that transfer's alone. Slots a failed claim may have
   * taken unseen are found in pg_locks and given back.
   */
  async function oneByOne<I extends { reject(e: unknown): void }>(c: pg.Client, items: I[], run: (c: pg.Client, one: I[]) => Promise<void>): Promise<void> {
    for (const it of items) {
      if (client !== c) {
        it.reject(new Error('the bank desk lost its connection'));
        continue;
      }
      await run(c, [it]).catch((e) => it.reject(toSettlementError(e)));
    }
    await giveStray(c);
  }

  /** Slots this connection holds that no call here knows of (taken by a round trip that failed) go back. */
  async function giveStray(c: pg.Client): Promise<void> {
    if (client !== c) return;
    const r = await c.query(SLOTS_OF_THIS_CONNECTION);
    const stray = r.rows.map((x: { slot: number }) => x.slot).filter((s: number) => !held.has(s));
    if (stray.length > 0) await c.query(GIVE_BANK_SLOTS, [stray]);
  }

  async function pump(): Promise<void> {
    if (busy || closed) return;
    busy = true;
    try {
      for (;;) {
        expireKept();
        if (waiters.length > 0) idleSince = 0;
        else if (idleSince === 0) idleSince = Date.now();
        const unflag = unflagDue();
        const finishes = finishQ.length > 0 || giveQ.length > 0;
        const claims = claimQ.length > 0 || (waiters.length > 0 && wake) || unflag;
        if (!finishes && !claims) break;
        let c: pg.Client;
        try {
          c = client ?? (await connect());
        } catch (e) {
          onError(e);
          // Nothing can be claimed or recorded without the connection: those fail (their jobs are retried).
          for (const it of [...claimQ.splice(0), ...finishQ.splice(0)]) it.reject(e);
          if (waiters.length > 0) later(fallbackMs);
          break;
        }
        if (finishes) {
          const items = finishQ.splice(0, maxBatch);
          const give = giveQ.splice(0);
          await runFinishes(c, items, give).catch(async (e) => {
            onError(e);
            if (items.length > 1) await oneByOne(c, items, (cc, one) => runFinishes(cc, one, [])).catch(onError);
            else {
              for (const it of items) it.reject(toSettlementError(e));
              await giveStray(c).catch(onError);
            }
          });
        } else {
          const items = claimQ.splice(0, maxBatch);
          await runClaims(c, items).catch(async (e) => {
            onError(e);
            if (items.length > 1) await oneByOne(c, items, runClaims).catch(onError);
            else {
              for (const it of items) it.reject(toSettlementError(e));
              await giveStray(c).catch(onError);
            }
          });
          // Calls still wait: once the "waiting" lock is held, the next slot
          // freed anywhere notifies this desk (the fallback looks anyway);
          // until then, ask again at once (now holding it).
          if (waiters.length > 0) {
            wake = !flagged;
            if (flagged) later(fallbackMs * (0.5 + Math.random()));
          }
        }
      }
    } finally {
      busy = false;
    }
    if (!closed && (finishQ.length > 0 || giveQ.length > 0 || claimQ.length > 0)) kick();
    else if (flagged) later(flagLingerMs + 5);
  }

  const enqueueClaim = (id: number) =>
    new Promise<Claim>((resolve, reject) => {
      claimQ.push({ id, holder: o.holder(), resolve, reject });
      kick();
    });
  const enqueueFinish = (id: number, isTuno: string, out: TransferOutcome, token: string | null) =>
    new Promise<FinishResult>((resolve, reject) => {
      finishQ.push({ id, isTuno, o: out, token, resolve, reject });
      kick();
    });

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
        if (counted) coming--;
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
            if (!counted) coming++;
            counted = true;
            const c = await enqueueClaim(id);
            claimToken = c.action === 'send' ? c.claim_token : null;
            return c;
          },
          gate: {
            async run<T2>(call: () => Promise<T2>): Promise<T2> {
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
            return enqueueFinish(id, isTuno, out, claimToken);
          },
        });
      } finally {
        letGo();
        attempting.delete(id);
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
    inUse: () => held.size,
    async close() {
      closed = true;
      clearTimeout(again);
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error('the bank desk is closed'));
      }
      while (busy) await new Promise((r) => setTimeout(r, 5));
      for (const it of [...claimQ.splice(0), ...finishQ.splice(0)]) it.reject(new Error('the bank desk is closed'));
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
