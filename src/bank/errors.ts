/**
 * Named errors of the bank module. Expected bank outcomes (failed, unknown,
 * not_found) are values in `TransferResult` / `InquiryResult`; these errors are for
 * our own bad input, responses we cannot read, and broken invariants. Each has a
 * stable `code` that callers and logs can match on.
 */

export abstract class BankError extends Error {
  abstract readonly code: string;
}

export type BankInputCode =
  | 'invalid_amount'
  | 'over_per_call_limit'
  | 'invalid_is_tuno'
  | 'invalid_tsymd'
  | 'invalid_account'
  | 'invalid_kind'
  | 'invalid_date_range';

/** A request from our side that must never reach the bank. Thrown before any HTTP call. */
export class BankInputError extends BankError {
  override readonly name = 'BankInputError';
  constructor(
    readonly code: BankInputCode,
    message: string,
  ) {
    super(message);
  }
}

/** The bank answered with something we cannot read (not JSON, no Header, bad amount, ...). */
export class BankResponseError extends BankError {
  override readonly name = 'BankResponseError';
  readonly code = 'malformed_response';
}

/** A read-only call (balance, history) that the bank answered with a non-success Rpcd. */
export class BankRejectedError extends BankError {
  override readonly name = 'BankRejectedError';
  readonly code = 'bank_rejected';
  constructor(
    readonly rpcd: string,
    readonly rsms: string,
    readonly apiNm: string,
  ) {
    super(`${apiNm} rejected with ${rpcd}: ${rsms}`);
  }
}

/** A read-only call that stayed unanswered (busy, timeouts, network) after its retries. */
export class BankUnavailableError extends BankError {
  override readonly name = 'BankUnavailableError';
  readonly code = 'bank_unavailable';
}

/**
 * The bank's record contradicts the request: the IsTuno is booked with a
 * different amount. This means an IsTuno was reused for two different transfers,
 * which the caller must never do; it is not something a retry can fix.
 */
export class BankConsistencyError extends BankError {
  override readonly name = 'BankConsistencyError';
  readonly code = 'booked_amount_mismatch';
}

/**
 * Internal: one attempt failed in a way whose right answer is "send the same
 * request again, same IsTuno": the bank said nothing was processed (busy, system
 * error before processing), the connection was never established, or a gateway
 * answered HTTP 5xx / 429 (if the bank did process it, the resend is answered with
 * "duplicate" and resolved by inquiry, so it can never book twice). Only this error
 * is retried by p-retry.
 */
export class BankTransientError extends BankError {
  override readonly name = 'BankTransientError';
  readonly code = 'transient';
}
