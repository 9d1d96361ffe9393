/**
 * The bank desk's slot accounting, without I/O or timers: which bank-call
 * slots this process holds (in use by a call, or kept a moment for the next
 * one), who waits for one, and where a freed slot goes. Every decision takes
 * `now` (ms) from its caller, so it can be tested without a database or a
 * clock (test/worker/desk-slots.test.ts).
 *
 * A slot is a session advisory lock of the desk's connection: it lives as
 * long as that connection. `gen` counts connections; a token of an earlier
 * one died with it.
 */

/** A slot held by connection number `gen`. */
export interface Token {
  slot: number;
  gen: number;
}

/** Where a freed slot went: to a call of this process that waits for one, back to the database, or kept for the next call. */
export type Freed<W> = { to: 'waiter'; waiter: W; token: Token } | { to: 'database' } | { to: 'kept' };

export class SlotBook<W> {
  /** Slots the current connection holds: null = in use by a call, else kept for the next one since that time. */
  private readonly held = new Map<number, number | null>();
  private waiters: W[] = [];
  /** Slots to give back to the database with the next round trip. */
  private giving: number[] = [];
  /** Since when nobody here waits (0: someone waits, or not known yet). */
  private idleSince = 0;
  /** The current connection's number. */
  gen = 0;
  /** What the last claim round trip said: another process waits for a slot. */
  othersWaiting = false;
  /** This process's share of the cap (max_in_flight over the live workers), as of the last claim round trip. */
  share = Number.POSITIVE_INFINITY;
  /** Whether the connection holds the "waiting" lock (BANK_SLOT_LOCK_CLASS, 0) shared. */
  flagged = false;
  /** Attempts of this process that have asked for a claim and have not yet taken a slot or finished. */
  coming = 0;

  constructor(
    /** How long a slot nobody here needs is kept for the next claim. */
    readonly lingerMs: number,
    /** How long after the last waiting call the "waiting" lock is let go. */
    readonly flagLingerMs: number,
  ) {}

  /** Slots held (in use or kept). */
  get size(): number {
    return this.held.size;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** The slots the connection holds (claim_transfers must not take them again: a session lock is re-entrant). */
  heldSlots(): number[] {
    return [...this.held.keys()];
  }

  holds(slot: number): boolean {
    return this.held.has(slot);
  }

  hasGiving(): boolean {
    return this.giving.length > 0;
  }

  /** The slots to give back now (they leave the book). */
  takeGiving(): number[] {
    return this.giving.splice(0);
  }

  /** A kept slot for a call, if there is one. */
  takeKept(): Token | undefined {
    for (const [slot, since] of this.held) {
      if (since !== null) {
        this.held.set(slot, null);
        return { slot, gen: this.gen };
      }
    }
    return undefined;
  }

  /** A call waits for a slot (first come, first served). */
  wait(w: W): void {
    this.waiters.push(w);
  }

  /** A waiting call gave up (its timeout). */
  cancel(w: W): void {
    this.waiters = this.waiters.filter((x) => x !== w);
  }

  /** Every waiting call (the desk closes). */
  drainWaiters(): W[] {
    return this.waiters.splice(0);
  }

  /**
   * A slot of the current connection is free: to a call here that waits for
   * one (unless another process waits too and this one holds more than its
   * share); otherwise kept a moment for a transfer of this process that is
   * being claimed or about to call, or given back (at once when another
   * process waits and nothing here is coming).
   */
  free(slot: number, now: number): Freed<W> {
    const over = this.othersWaiting && this.held.size > this.share;
    const waiter = over ? undefined : this.waiters.shift();
    if (waiter !== undefined) return { to: 'waiter', waiter, token: { slot, gen: this.gen } };
    if (over || (this.othersWaiting && this.coming === 0)) {
      this.held.delete(slot);
      this.giving.push(slot);
      return { to: 'database' };
    }
    this.held.set(slot, now);
    return { to: 'kept' };
  }

  /** A call is done with its slot; undefined for a slot that died with an earlier connection. */
  release(t: Token, now: number): Freed<W> | undefined {
    if (t.gen !== this.gen || !this.held.has(t.slot)) return undefined;
    return this.free(t.slot, now);
  }

  /** Slots a claim round trip brought: to waiters first, the rest kept for the claims it answered. */
  gained(slots: readonly number[], now: number): Freed<W>[] {
    return slots.map((s) => {
      this.held.set(s, null);
      return this.free(s, now);
    });
  }

  /** Kept slots nobody asked for within lingerMs (or while this process is over its share) go back; true if some are still kept. */
  expire(now: number): boolean {
    let left = false;
    for (const [slot, since] of this.held) {
      if (since === null) continue;
      if (now - since >= this.lingerMs || (this.othersWaiting && this.held.size > this.share)) {
        this.held.delete(slot);
        this.giving.push(slot);
      } else left = true;
    }
    return left;
  }

  /** Notes whether anyone here waits (the "waiting" lock is let go flagLingerMs after the last). */
  noteIdle(now: number): void {
    if (this.waiters.length > 0) this.idleSince = 0;
    else if (this.idleSince === 0) this.idleSince = now;
  }

  /** Nobody here has waited for flagLingerMs: the "waiting" lock is to be let go. */
  unflagDue(now: number): boolean {
    return this.flagged && this.waiters.length === 0 && this.idleSince > 0 && now - this.idleSince > this.flagLingerMs;
  }

  /**
   * What the next claim round trip does with the "waiting" lock: take it (1)
   * while calls here wait (in the same call that tries for slots, so no
   * release in between goes unnoticed), let it go (-1) flagLingerMs after the
   * last, or nothing (0).
   */
  flagChange(now: number): 1 | -1 | 0 {
    if (this.waiters.length > 0 && !this.flagged) return 1;
    if (this.unflagDue(now)) return -1;
    return 0;
  }

  /** The round trip that carried `flag` succeeded. */
  flagDone(flag: 1 | -1 | 0): void {
    if (flag !== 0) this.flagged = flag > 0;
  }

  /** Slots to ask for: one per claim and waiting call, less those kept. */
  wantSlots(claims: number): number {
    let kept = 0;
    for (const since of this.held.values()) if (since !== null) kept++;
    return Math.max(0, claims + this.waiters.length - kept);
  }

  /** What a claim round trip said about the others. */
  observe(othersWaiting: boolean, workers: number, maxInFlight: number): void {
    this.othersWaiting = othersWaiting;
    this.share = Math.ceil(maxInFlight / Math.max(1, workers));
  }

  /** The connection is gone, and every slot and the "waiting" lock with it. */
  lose(): void {
    this.gen++;
    this.held.clear();
    this.giving = [];
    this.flagged = false;
  }
}
