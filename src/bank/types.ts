/**
 * The bank port: what the rest of daily-settlement needs from a bank, in our own
 * terms. `nh-client.ts` adapts it to NH Developers' JSON API; `../bank-sim/simulator.ts` plays
 * the bank in tests, the demo and the benchmark.
 *
 * Money is integer KRW as `bigint` everywhere on this path.
 */

/** payout → NH DrawingTransfer; withdrawal → NH ReceivedTransferAccountNumber. */
export type TransferKind = 'payout' | 'withdrawal';

export interface TransferRequest {
  kind: TransferKind;
  /** NH IsTuno, 1..20 chars [0-9A-Za-z], chosen by the caller before the first call and never changed. */
  isTuno: string;
  /** YYYYMMDD (Korea time) of the FIRST call for this IsTuno, fixed by the caller; inquiries name it as OrtrYmd. */
  tsymd: string;
  /** Debited account number (payout: the loan account's FinAcno; withdrawal: the settlement account). */
  from: string;
  /** Credited account number (payout: the contracted settlement account; withdrawal: the corporate account). */
  to: string;
  /** KRW, > 0 and <= perCallLimit. */
  amount: bigint;
  memo?: string;
  /**
   * An earlier attempt under this IsTuno may have reached the bank (a worker
   * died mid-call): the client asks the bank first, and sends only on "not
   * found". Answers that prove nothing about earlier attempts (A0002, A0230)
   * are then resolved by inquiry too.
   */
  resume?: boolean;
}

export type TransferResult =
  | { status: 'succeeded'; bankRef: string; processedAt: string | null; resolvedBy: 'call' | 'inquiry' }
  /**
   * The bank says it was NOT booked and will not be (insufficient funds, invalid
   * account, over limit, bad token, ...): final for this IsTuno. `code` is the
   * bank's Rpcd, or one of the client's own codes in `CLIENT_CODES`
   * (see rpcd.ts), e.g. `expired_not_booked`.
   */
  | { status: 'failed'; code: string; message: string }
  /** Outcome still unknown after bounded retries and inquiries; the caller must try again later under the SAME IsTuno. */
  | { status: 'unknown'; reason: string };

export type InquiryResult =
  /** `amount` is the booked amount when the bank reports it (NH's `Tram`). */
  | { status: 'succeeded'; bankRef: string; processedAt: string | null; amount?: bigint }
  /** The original was processed and failed (not booked). */
  | { status: 'failed'; code: string; message: string }
  /** The bank has no transaction with that IsTuno on that date: never booked, safe to send under the same IsTuno. */
  | { status: 'not_found' }
  | { status: 'unknown'; reason: string };

export interface InquiryRequest {
  kind: TransferKind;
  isTuno: string;
  tsymd: string;
  from: string;
}

export interface StatementLine {
  isTuno: string;
  /** YYYYMMDD, the bank's transaction date. */
  date: string;
  counterparty: string;
  amount: bigint;
  direction: 'in' | 'out';
}

/** Wraps EVERY single HTTP call (the global in-flight semaphore lives in the DB). */
export interface BankLimiter {
  run<T>(fn: () => Promise<T>): Promise<T>;
}

export interface BankClient {
  transfer(req: TransferRequest): Promise<TransferResult>;
  inquire(req: InquiryRequest): Promise<InquiryResult>;
  balance(accountNo: string): Promise<bigint>;
  history(accountNo: string, fromYmd: string, toYmd: string): Promise<StatementLine[]>;
}
