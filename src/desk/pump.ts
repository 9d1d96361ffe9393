/**
 * The bank desk's batching pump: claims and outcomes queue up while a round
 * trip is out and go together in the next one (settlement.claim_transfers,
 * settlement.finish_transfers: one transaction each), one round trip at a
 * time on the desk's connection. Outcomes (and slots to give back) go first.
 * Under load a round trip carries many transfers; alone, each goes at once.
 * While calls wait for slots (the cap binds), a round trip of claims and
 * outcomes alone waits up to batchWindowMs for more to join it.
 * A round trip that fails as a whole is retried item by item, so one
 * transfer's error is that transfer's alone.
 */
import type pg from 'pg';
import { GIVE_BANK_SLOTS, SLOTS_OF_THIS_CONNECTION } from '../db/bank-slots.js';
import { toSettlementError } from '../db/errors.js';
import { CLAIM_TRANSFERS, decodeClaimBatch, decodeFinishes, FINISH_TRANSFERS, finishValues, type FinishItem } from '../db/transfers.js';
import type { Claim, FinishResult, TransferOutcome } from '../domain.js';
import type { DeskConnection } from './connection.js';
import type { Freed, SlotBook, Token } from './slots.js';

export interface PumpOptions<W> {
  conn: DeskConnection;
  book: SlotBook<W>;
  /** Whose claims these are (the worker pool's id; it can change when the runner is replaced). */
  holder: () => string;
  claimLeaseMs: number;
  maxBatch: number;
  /** How long a round trip nothing urgent waits for waits for more claims and outcomes to join it (0: never). */
  batchWindowMs: number;
  /** A waiting call looks again this often (nothing depends on a notification arriving). */
  fallbackMs: number;
  /** A slot goes to a call that waits for it. */
  hand(waiter: W, token: Token): void;
  /** Reports a lost connection or a failed round trip (the items concerned fail on their own). */
  onError(e: unknown): void;
}

export interface Pump<W> {
  claim(id: number): Promise<Claim>;
  /** `token`: the claim token of the attempt recording it (its claim's fencing token; null: none). */
  finish(id: number, isTuno: string, o: TransferOutcome, token: string | null): Promise<FinishResult>;
  /** Where a freed slot went: a waiter gets it now, the database with the next round trip, a kept one is looked at again after lingerMs. */
  settle(f: Freed<W>): void;
  /** Runs a round trip if there is anything to send. */
  kick(): void;
  /** A slot was freed elsewhere (a notification): waiting calls try again. */
  wakeUp(): void;
  /** Stops: queued claims and outcomes fail; resolves once no round trip is out. */
  close(): Promise<void>;
}

interface ClaimItem { id: number; holder: string; resolve(c: Claim): void; reject(e: unknown): void }
interface FinishEntry extends FinishItem { resolve(r: FinishResult): void; reject(e: unknown): void }

export function createPump<W>(o: PumpOptions<W>): Pump<W> {
  const { conn, book } = o;
  let claimQ: ClaimItem[] = [];
  let finishQ: FinishEntry[] = [];
  let busy = false;
  let closed = false;
  /** A slot may have been freed elsewhere since the last take came up short (a notification, or the fallback). */
  let wake = true;
  let again: NodeJS.Timeout | undefined;
  let againAt = 0;

  /**
   * A round trip starts in the check phase (setImmediate), not in the
   * callback that asked for it: every bank answer already read in this turn
   * of the event loop hands its slot on (the next send) before the desk
   * writes to Postgres, and their outcomes go in one round trip.
   */
  let kicked = false;
  /** Whether the round trip about to start has waited its batch window. */
  let windowed = false;
  /** Ends the batch window now (something urgent came up). */
  let endWindow: (() => void) | undefined;
  /**
   * A round trip is urgent unless calls here already wait for slots (then
   * every slot this process gets has a claimed transfer to go to) and all
   * that is queued is claims and outcomes: slots to give back, a slot that
   * may have been freed elsewhere for the waiting calls, the "waiting" lock
   * to let go, a full batch, or no call waiting (a slot might stand idle, or
   * the cap does not bind) are urgent.
   */
  const urgent = (unflag = false) =>
    book.waiting === 0 || book.hasGiving() || wake || unflag || claimQ.length + finishQ.length >= o.maxBatch;
  const kick = () => {
    if (endWindow && urgent()) endWindow();
    if (busy || closed || kicked) return;
    kicked = true;
    setImmediate(() => {
      kicked = false;
      void pump();
    });
  };

  /** Looks again later (a waiter's fallback, a kept slot's linger, a lost connection); an earlier look replaces a later one. */
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

  const settle = (f: Freed<W>) => {
    if (f.to === 'waiter') o.hand(f.waiter, f.token);
    else if (f.to === 'database') kick();
    else later(book.lingerMs);
  };

  async function runClaims(c: pg.Client, items: ClaimItem[]): Promise<void> {
    const want = book.wantSlots(items.length);
    const flag = book.flagChange(Date.now());
    const r = await c.query({ name: 'settle_claim_transfers', text: CLAIM_TRANSFERS,
      values: [items.map((i) => i.id), items.map((i) => i.holder), o.claimLeaseMs, want, book.heldSlots(), flag] });
    if (!conn.isCurrent(c)) throw new Error('the bank desk lost its connection during a claim');
    book.flagDone(flag);
    const b = decodeClaimBatch(r.rows[0]?.r, items.map((i) => i.id));
    book.observe(b.othersWaiting, b.workers, b.maxInFlight);
    for (const f of book.gained(b.slots, Date.now())) settle(f);
    items.forEach((it, k) => {
      const claim = b.claims[k]!;
      if (claim instanceof Error) it.reject(claim);
      else it.resolve(claim);
    });
  }

  async function runFinishes(c: pg.Client, items: FinishEntry[], give: number[]): Promise<void> {
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
      if (!conn.isCurrent(c)) {
        it.reject(new Error('the bank desk lost its connection'));
        continue;
      }
      await run(c, [it]).catch((e) => it.reject(toSettlementError(e)));
    }
    await giveStray(c);
  }

  /** Slots this connection holds that no call here knows of (taken by a round trip that failed) go back. */
  async function giveStray(c: pg.Client): Promise<void> {
    if (!conn.isCurrent(c)) return;
    const r = await c.query(SLOTS_OF_THIS_CONNECTION);
    const stray = r.rows.map((x: { slot: number }) => x.slot).filter((s: number) => !book.holds(s));
    if (stray.length > 0) await c.query(GIVE_BANK_SLOTS, [stray]);
  }

  async function pump(): Promise<void> {
    if (busy || closed) return;
    busy = true;
    windowed = false;
    try {
      for (let turn = 0; ; turn++) {
        // The next round trip, too, waits for the answers read meanwhile (see kick).
        if (turn > 0) await new Promise<void>((r) => setImmediate(r));
        if (book.expire(Date.now())) later(book.lingerMs);
        book.noteIdle(Date.now());
        const unflag = book.unflagDue(Date.now());
        const finishes = finishQ.length > 0 || book.hasGiving();
        const claims = claimQ.length > 0 || (book.waiting > 0 && wake) || unflag;
        if (!finishes && !claims) break;
        // Nothing here is in a hurry: calls wait for slots, so every slot has
        // a claimed transfer behind it, and outcomes only let jobs end. The
        // round trip waits a moment for more to join it (batchWindowMs), and
        // stops waiting as soon as something is (see urgent).
        if (!windowed && o.batchWindowMs > 0 && !urgent(unflag)) {
          windowed = true;
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((r) => {
            endWindow = r;
            timer = setTimeout(r, o.batchWindowMs);
          });
          clearTimeout(timer);
          endWindow = undefined;
          continue;
        }
        windowed = false;
        let c: pg.Client;
        try {
          c = await conn.get();
        } catch (e) {
          o.onError(e);
          // Nothing can be claimed or recorded without the connection: those fail (their jobs are retried).
          for (const it of [...claimQ.splice(0), ...finishQ.splice(0)]) it.reject(e);
          if (book.waiting > 0) later(o.fallbackMs);
          break;
        }
        if (finishes) {
          const items = finishQ.splice(0, o.maxBatch);
          const give = book.takeGiving();
          await runFinishes(c, items, give).catch(async (e) => {
            o.onError(e);
            if (items.length > 1) await oneByOne(c, items, (cc, one) => runFinishes(cc, one, [])).catch(o.onError);
            else {
              for (const it of items) it.reject(toSettlementError(e));
              await giveStray(c).catch(o.onError);
            }
          });
        } else {
          const items = claimQ.splice(0, o.maxBatch);
          await runClaims(c, items).catch(async (e) => {
            o.onError(e);
            if (items.length > 1) await oneByOne(c, items, runClaims).catch(o.onError);
            else {
              for (const it of items) it.reject(toSettlementError(e));
              await giveStray(c).catch(o.onError);
            }
          });
          // Calls still wait: once the "waiting" lock is held, the next slot
          // freed anywhere notifies this desk (the fallback looks anyway);
          // until then, ask again at once (now holding it).
          if (book.waiting > 0) {
            wake = !book.flagged;
            if (book.flagged) later(o.fallbackMs * (0.5 + Math.random()));
          }
        }
      }
    } finally {
      busy = false;
    }
    if (!closed && (finishQ.length > 0 || book.hasGiving() || claimQ.length > 0)) kick();
    else if (book.flagged) later(book.flagLingerMs + 5);
  }

  return {
    claim: (id) =>
      new Promise<Claim>((resolve, reject) => {
        claimQ.push({ id, holder: o.holder(), resolve, reject });
        kick();
      }),
    finish: (id, isTuno, out, token) =>
      new Promise<FinishResult>((resolve, reject) => {
        finishQ.push({ id, isTuno, o: out, token, resolve, reject });
        kick();
      }),
    settle,
    kick,
    wakeUp: () => {
      wake = true;
      kick();
    },
    async close() {
      closed = true;
      clearTimeout(again);
      while (busy) await new Promise((r) => setTimeout(r, 5));
      for (const it of [...claimQ.splice(0), ...finishQ.splice(0)]) it.reject(new Error('the bank desk is closed'));
    },
  };
}
