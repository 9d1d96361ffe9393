/**
 * The simulated bank's books: accounts keyed by (Bncd, Acno) with their
 * statement lines, fin-accounts and registrations, one contracted account per
 * (Iscd, FintechApsno), every processed (Iscd, Tsymd, IsTuno), and the booked
 * money movements in booking order. Each operation is one synchronous block,
 * so on node's single thread a transfer's checks, debit, credit and record are
 * atomic without locks.
 *
 * Passbook text (BnprCntn, NH prints at most 20 characters; NH does not publish
 * which memo goes where, this is the simulator's choice):
 *   paying account      DractOtlt, cut to 20
 *   receiving account   MractOtlt, cut to 20 (ReceivedTransfer*);
 *                       DractOtlt, cut to 20 for DrawingTransfer's contracted
 *                       account (MractOtlt is "not used" for DrawingTransfer)
 */
import { PRINTED_MAX, kstHms, kstYmd, type ApiNm } from '../nh/contract.js';

export interface StatementEntry {
  at: Date;
  trdd: string;
  txtm: string;
  /** 1 opening deposit, 2 deposit, 3 withdrawal, 4 closing withdrawal. */
  dsnc: '1' | '2' | '3' | '4';
  tram: bigint;
  /** Balance after; may be negative only after an admin cancellation. */
  after: bigint;
  smr: string | null;
  ccyn: '0' | '1';
  tuno: string;
  printed: string | null;
}

export interface SimAccount {
  bncd: string;
  acno: string;
  balance: bigint;
  open: boolean;
  finAcno: string | null;
  rgsnYmd: string | null;
  /** Registered with DrtrRgyn = Y (DrawingTransfer may debit it). */
  drawable: boolean;
  lines: StatementEntry[];
}

/** A processed request (any API): it used up its (Iscd, Tsymd, IsTuno). */
export interface ProcessedRequest {
  api: ApiNm;
  /** 00000, or the simulator code it was refused with after processing. */
  code: string;
  at: Date;
  /** The request's body fields (Header excluded), for the result checks' comparison. */
  fields: Readonly<Record<string, string>>;
}

export interface BookedTransfer {
  isTuno: string;
  tsymd: string;
  api: ApiNm;
  from: SimAccount;
  to: SimAccount;
  amount: bigint;
  at: Date;
  /** The bank's own transaction number, printed on both statement lines. */
  tuno: string;
  /** Tuno of the admin cancellation, when cancelled. */
  cancelTuno: string | null;
}

interface Registration {
  account: SimAccount;
  brdtBrno: string;
  drawable: boolean;
}

/** Summaries (Smr) as a bank prints them: the API's Korean name. */
const SMR: Readonly<Record<string, string>> = {
  DrawingTransfer: '출금이체',
  ReceivedTransferAccountNumber: '농협입금이체',
  ReceivedTransferOtherBank: '타행입금이체',
};

export const printed = (memo: string | undefined): string | null => (memo ? [...memo].slice(0, PRINTED_MAX).join('') : null);

/**
 * The FinAcno of an account: deterministic and injective, 30 digits:
 * '00820' + Bncd + the Acno's length (2 digits) + the Acno left-padded to 20.
 */
export function finAcnoOf(bncd: string, acno: string): string {
  return `00820${bncd}${String(acno.length).padStart(2, '0')}${acno.padStart(20, '0')}`;
}

const key = (...parts: string[]): string => parts.join('|');

export class SimLedger {
  readonly accounts = new Map<string, SimAccount>();
  readonly finAccounts = new Map<string, SimAccount>();
  readonly contracts = new Map<string, { bncd: string; acno: string }>();
  readonly processed = new Map<string, ProcessedRequest>();
  readonly transfers: BookedTransfer[] = [];
  private readonly byTuno = new Map<string, BookedTransfer>();
  private readonly registrations = new Map<string, Registration>();
  private seq = 0;
  private rgnoSeq = 0;

  account(bncd: string, acno: string): SimAccount | undefined {
    return this.accounts.get(key(bncd, acno));
  }

  /** Opens an account, or SETS an existing one's balance (printing an adjustment line) and re-opens it. */
  setAccount(bncd: string, acno: string, balance: bigint, now: Date): SimAccount {
    const existing = this.account(bncd, acno);
    if (!existing) {
      const a: SimAccount = { bncd, acno, balance, open: true, finAcno: null, rgsnYmd: null, drawable: false, lines: [] };
      this.accounts.set(key(bncd, acno), a);
      if (balance > 0n) this.line(a, now, '1', balance, '신규', '0', this.nextTuno(now), null);
      return a;
    }
    existing.open = true;
    const diff = balance - existing.balance;
    if (diff !== 0n) {
      existing.balance = balance;
      this.line(existing, now, diff > 0n ? '2' : '3', diff > 0n ? diff : -diff, '잔액조정', '0', this.nextTuno(now), null);
    }
    return existing;
  }

  closeAccount(bncd: string, acno: string): boolean {
    const a = this.account(bncd, acno);
    if (!a) return false;
    a.open = false;
    return true;
  }

  setContract(iscd: string, fintechApsno: string, bncd: string, acno: string): void {
    this.contracts.set(key(iscd, fintechApsno), { bncd, acno });
  }

  /** The contracted account of (Iscd, FintechApsno): null = no contract, undefined = its account does not exist. */
  contractAccount(iscd: string, fintechApsno: string): SimAccount | undefined | null {
    const c = this.contracts.get(key(iscd, fintechApsno));
    return c ? this.account(c.bncd, c.acno) : null;
  }

  /** OpenFinAccountDirect: a fresh registration number (digits). */
  register(account: SimAccount, brdtBrno: string, drawable: boolean, now: Date): string {
    const rgno = `${kstYmd(now)}${String(++this.rgnoSeq).padStart(8, '0')}`;
    this.registrations.set(rgno, { account, brdtBrno, drawable });
    return rgno;
  }

  /** CheckOpenFinAccountDirect: the account's fin-account, issued on first use. */
  checkRegistration(rgno: string, brdtBrno: string, now: Date): SimAccount | undefined {
    const r = this.registrations.get(rgno);
    if (!r || r.brdtBrno !== brdtBrno) return undefined;
    this.issueFinAcno(r.account, now, r.drawable);
    return r.account;
  }

  /** Issues (or returns) an account's fin-account; `finAcno` forces a given number (admin, for NH's published example). */
  issueFinAcno(a: SimAccount, now: Date, drawable: boolean, finAcno?: string): string {
    if (finAcno !== undefined && finAcno !== a.finAcno) {
      if (a.finAcno !== null) this.finAccounts.delete(a.finAcno);
      a.finAcno = finAcno;
    }
    if (a.finAcno === null) a.finAcno = finAcnoOf(a.bncd, a.acno);
    a.rgsnYmd ??= kstYmd(now);
    a.drawable ||= drawable;
    this.finAccounts.set(a.finAcno, a);
    return a.finAcno;
  }

  byFinAcno(finAcno: string): SimAccount | undefined {
    return this.finAccounts.get(finAcno);
  }

  processedAt(iscd: string, tsymd: string, isTuno: string): ProcessedRequest | undefined {
    return this.processed.get(key(iscd, tsymd, isTuno));
  }

  recordProcessed(iscd: string, tsymd: string, isTuno: string, p: ProcessedRequest): void {
    this.processed.set(key(iscd, tsymd, isTuno), p);
  }

  /** Moves `amount` (the caller checked accounts and funds) and prints a line on each account. */
  book(o: { api: ApiNm; isTuno: string; tsymd: string; from: SimAccount; to: SimAccount; amount: bigint; fromText: string | null; toText: string | null; now: Date }): BookedTransfer {
    const tuno = this.nextTuno(o.now);
    const smr = SMR[o.api] ?? null;
    o.from.balance -= o.amount;
    this.line(o.from, o.now, '3', o.amount, smr, '0', tuno, o.fromText);
    o.to.balance += o.amount;
    this.line(o.to, o.now, '2', o.amount, smr, '0', tuno, o.toText);
    const t: BookedTransfer = { isTuno: o.isTuno, tsymd: o.tsymd, api: o.api, from: o.from, to: o.to, amount: o.amount, at: o.now, tuno, cancelTuno: null };
    this.transfers.push(t);
    this.byTuno.set(tuno, t);
    return t;
  }

  /** Books a cancellation (Ccyn 1 lines reversing the original on both accounts); its Tuno, or why not. */
  cancel(tuno: string, now: Date): { tuno: string } | 'not_found' | 'already_cancelled' {
    const t = this.byTuno.get(tuno);
    if (!t) return 'not_found';
    if (t.cancelTuno !== null) return 'already_cancelled';
    const ct = this.nextTuno(now);
    t.cancelTuno = ct;
    t.from.balance += t.amount;
    this.line(t.from, now, '2', t.amount, '취소', '1', ct, null);
    t.to.balance -= t.amount;
    this.line(t.to, now, '3', t.amount, '취소', '1', ct, null);
    return { tuno: ct };
  }

  private nextTuno(now: Date): string {
    return `${kstYmd(now)}${String(++this.seq).padStart(12, '0')}`;
  }

  private line(a: SimAccount, at: Date, dsnc: StatementEntry['dsnc'], tram: bigint, smr: string | null, ccyn: '0' | '1', tuno: string, text: string | null): void {
    a.lines.push({ at, trdd: kstYmd(at), txtm: kstHms(at), dsnc, tram, after: a.balance, smr, ccyn, tuno, printed: text });
  }
}
