/**
 * The simulated bank's books: accounts, every processed (Iscd, Tsymd, IsTuno), and
 * the booked transfers in booking order. Each operation is one synchronous block,
 * so with node's single thread a transfer's checks, debit, credit and record are
 * atomic without locks. All lookups are Map-based and O(1).
 */
import type { ApiNm } from '../bank/protocol.js';
import { RPCD } from '../bank/rpcd.js';

export interface SimAccount {
  balance: bigint;
  open: boolean;
}

/** A processed transfer request: booked (code 00000) or refused for a business reason. */
export interface ProcessedTx {
  apiNm: ApiNm;
  tsymd: string;
  isTuno: string;
  code: string;
  amount: bigint;
  from: string;
  to: string;
  processedAt: Date;
}

export interface BookedTransfer {
  isTuno: string;
  tsymd: string;
  apiNm: ApiNm;
  from: string;
  to: string;
  amount: bigint;
  processedAt: Date;
  fromBalanceAfter: bigint;
  toBalanceAfter: bigint;
  memoOut: string;
  memoIn: string;
}

export interface TransferOrder {
  iscd: string;
  apiNm: ApiNm;
  tsymd: string;
  isTuno: string;
  from: string;
  to: string;
  amount: bigint;
  memoOut: string;
  memoIn: string;
  perCallLimit: bigint;
  now: Date;
}

export class SimLedger {
  readonly accounts = new Map<string, SimAccount>();
  readonly processed = new Map<string, ProcessedTx>();
  readonly transfers: BookedTransfer[] = [];
  /** accountNo → indexes into `transfers` touching it, in booking order. */
  private readonly byAccount = new Map<string, number[]>();

  /** Opens (or re-opens) an account and SETS its balance. */
  setAccount(accountNo: string, balance: bigint): void {
    this.accounts.set(accountNo, { balance, open: true });
  }

  closeAccount(accountNo: string): boolean {
    const acct = this.accounts.get(accountNo);
    if (!acct) return false;
    acct.open = false;
    return true;
  }

  lookup(iscd: string, tsymd: string, isTuno: string): ProcessedTx | undefined {
    return this.processed.get(key(iscd, tsymd, isTuno));
  }

  /**
   * Processes one transfer request and returns its result code. A (Iscd, Tsymd,
   * IsTuno) that was already processed gets A0013 and changes nothing; any other
   * outcome is recorded, so the IsTuno is used up whether it booked or not.
   */
  transfer(o: TransferOrder): string {
    const k = key(o.iscd, o.tsymd, o.isTuno);
    if (this.processed.has(k)) return RPCD.DUPLICATE;
    const code = this.decide(o);
    this.processed.set(k, {
      apiNm: o.apiNm,
      tsymd: o.tsymd,
      isTuno: o.isTuno,
      code,
      amount: o.amount,
      from: o.from,
      to: o.to,
      processedAt: o.now,
    });
    if (code === RPCD.OK) this.book(o);
    return code;
  }

  /** Statement lines of one account within [fromYmd, toYmd], in booking order. */
  statement(accountNo: string, fromYmd: string, toYmd: string): BookedTransfer[] {
    const idx = this.byAccount.get(accountNo) ?? [];
    const out: BookedTransfer[] = [];
    for (const i of idx) {
      const t = this.transfers[i];
      if (t && t.tsymd >= fromYmd && t.tsymd <= toYmd) out.push(t);
    }
    return out;
  }

  private decide(o: TransferOrder): string {
    // NH's per-call limit applies to DrawingTransfer (payouts), not to the withdrawal.
    if (o.apiNm === 'DrawingTransfer' && o.amount > o.perCallLimit) return RPCD.OVER_LIMIT;
    const from = this.accounts.get(o.from);
    const to = this.accounts.get(o.to);
    if (!from?.open || !to?.open) return RPCD.INVALID_ACCOUNT;
    if (from.balance < o.amount) return RPCD.INSUFFICIENT_FUNDS;
    return RPCD.OK;
  }

  private book(o: TransferOrder): void {
    // decide() has just checked both accounts exist and are open.
    const from = this.accounts.get(o.from) as SimAccount;
    const to = this.accounts.get(o.to) as SimAccount;
    from.balance -= o.amount;
    to.balance += o.amount;
    const index = this.transfers.length;
    this.transfers.push({
      isTuno: o.isTuno,
      tsymd: o.tsymd,
      apiNm: o.apiNm,
      from: o.from,
      to: o.to,
      amount: o.amount,
      processedAt: o.now,
      fromBalanceAfter: from.balance,
      toBalanceAfter: to.balance,
      memoOut: o.memoOut,
      memoIn: o.memoIn,
    });
    this.index(o.from, index);
    this.index(o.to, index);
  }

  private index(accountNo: string, i: number): void {
    const list = this.byAccount.get(accountNo);
    if (list) list.push(i);
    else this.byAccount.set(accountNo, [i]);
  }
}

function key(iscd: string, tsymd: string, isTuno: string): string {
  return `${iscd}|${tsymd}|${isTuno}`;
}
