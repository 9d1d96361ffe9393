/**
 * The bank port: what daily-settlement needs from a bank, in its own terms.
 * `client.ts` adapts it to NH Developers (src/nh/contract.ts); the simulator
 * (src/bank-sim) plays NH in tests, the demo and the benchmark.
 *
 * Money is integer KRW as `bigint` on this whole path. Dates and times are
 * NH's: YYYYMMDD / HHMMSS, Korea time.
 */

export type Purpose = 'payout' | 'withdrawal';

interface OrderBase {
  /** NH IsTuno: digits only, 1..20, fixed by the database before the first call and never changed. */
  isTuno: string;
  /** YYYYMMDD (KST) of the first call under this IsTuno, fixed by the database; result checks name it as OrtrYmd. */
  tsymd: string;
  /** The app whose contracted account is the payout's destination / the withdrawal's source. */
  fintechApsno: string;
  /** KRW, > 0 (a payout also <= the per-call limit). */
  amount: bigint;
  /** Printed on the passbooks (DractOtlt, and MractOtlt for a withdrawal); <= 20 characters so it survives as BnprCntn. */
  memo: string;
  /**
   * May this call send the transfer (again, under the same IsTuno)? False when
   * the database says the transfer's date is over: then the client only asks
   * (result check); sending under an old Tsymd is never done.
   */
  sendable: boolean;
  /** An earlier attempt under this IsTuno may have reached the bank: ask first, send only if the bank proves it never got it. */
  resume: boolean;
  /**
   * When the attempt's claim ends (epoch ms, the client's clock: the worker's
   * is synced to the database). No send starts unless its answer is due
   * (the call timeout) before then; checked right before every send, with
   * the date (the clock's KST date must still be `tsymd`).
   */
  sendUntilMs?: number;
}

/** DrawingTransfer: from a loan account's fin-account into the app's contracted (settlement) account. */
export interface PayoutOrder extends OrderBase {
  purpose: 'payout';
  finAcno: string;
}

/** ReceivedTransferAccountNumber (Bncd 011/012) or ReceivedTransferOtherBank: from the app's contracted account to Bncd + Acno. */
export interface WithdrawalOrder extends OrderBase {
  purpose: 'withdrawal';
  bncd: string;
  acno: string;
}

export type TransferOrder = PayoutOrder | WithdrawalOrder;

/** How a transfer ended, as far as the bank has told us. Built only by the constructors below. */
export type TransferResult =
  /** Booked. `processedAt` is the bank's time, YYYYMMDDHHMMSS KST. */
  | { readonly status: 'succeeded'; readonly processedAt: string; readonly by: 'answer' | 'result_check' }
  /** Not booked and never will be under this IsTuno: a result check's Pcrs, or a code an operator classed `final` in settlement.bank_codes. */
  | { readonly status: 'failed'; readonly code: string; readonly message: string; readonly by: 'result_check' | 'bank_code' }
  /** The bank has not told us: ask again later under the same IsTuno; the statement decides in the end. */
  | { readonly status: 'unresolved'; readonly reason: string };

export const succeeded = (processedAt: string, by: 'answer' | 'result_check'): TransferResult => ({ status: 'succeeded', processedAt, by });
export const failed = (code: string, message: string, by: 'result_check' | 'bank_code'): TransferResult => ({ status: 'failed', code, message, by });
export const unresolved = (reason: string): TransferResult => ({ status: 'unresolved', reason });

/**
 * Operator knowledge of non-00000 codes (settlement.bank_codes), the only place
 * a code means more than "ask the bank":
 * - `retry`:     the request was not processed; send it again under the same IsTuno after a backoff
 * - `final`:     refused and nothing booked, for good (the transfer failed with this code)
 * - `not_found`: (result checks) the bank has no transaction under OrtrIsTuno on OrtrYmd
 */
export type CodeClass = 'retry' | 'final' | 'not_found';
export type CodeBook = (api: string, rpcd: string) => CodeClass | undefined;
export const emptyCodeBook: CodeBook = () => undefined;

/** One line of a statement, as NH prints it (amounts as bigint). */
export interface StatementLine {
  trdd: string;
  txtm: string;
  /** MnrcDrotDsnc: 1 opening deposit, 2 deposit, 3 withdrawal, 4 closing withdrawal. */
  mnrcDrotDsnc: '1' | '2' | '3' | '4';
  tram: bigint;
  aftrBlnc: bigint;
  balanceSign: string | null;
  smr: string | null;
  hnisCd: string | null;
  hnbrCd: string | null;
  /** '0' normal, '1' cancelled. */
  ccyn: '0' | '1';
  /** The bank's own transaction number (not our IsTuno). */
  tuno: string;
  bnprCntn: string | null;
}

export interface Balance {
  ledger: bigint;
  /** RlpmAbamt: what can actually be paid out now. */
  available: bigint;
}

export interface FinAccount {
  finAcno: string;
  rgsnYmd: string;
}

/**
 * One bank-call slot of the global in-flight cap. Every HTTP call the client
 * makes runs inside `gate.run`; a task that already took a slot (in its claim's
 * round trip) passes a gate whose first call uses it.
 */
export interface Gate {
  run<T>(fn: () => Promise<T>): Promise<T>;
}
export const openGate: Gate = { run: (fn) => fn() };

/**
 * A gate that starts no new bank call (the process is stopping). Nothing was
 * sent by the call it refused; the caller ends its attempt at once (no retry
 * in this process): the transfer is resumed, by result check, by whichever
 * worker runs its job next.
 */
export class GateClosedError extends Error {
  override name = 'GateClosedError';
  readonly code = 'gate_closed';
}

export interface BankClient {
  /** Moves money exactly once under order.isTuno, or says why not yet. Never throws for a bank answer; throws BankInputError for a bad order. */
  transfer(order: TransferOrder, gate?: Gate): Promise<TransferResult>;
  /** InquireBalance of a fin-account. */
  balance(finAcno: string, gate?: Gate): Promise<Balance>;
  /** InquireTransactionHistory of Bncd + Acno over [fromYmd, toYmd], every page. */
  statement(bncd: string, acno: string, fromYmd: string, toYmd: string, gate?: Gate): Promise<StatementLine[]>;
  /** OpenFinAccountDirect (DrtrRgyn Y): the registration number. */
  openFinAccount(bncd: string, acno: string, gate?: Gate): Promise<string>;
  /** CheckOpenFinAccountDirect: the fin-account issued for a registration. */
  checkFinAccount(rgno: string, gate?: Gate): Promise<FinAccount>;
}
