/**
 * Named errors of the bank client. Expected transfer outcomes (failed,
 * unresolved) are values (port.ts `TransferResult`); these are for our own bad
 * input, answers we cannot read, and reads the bank refused or never answered.
 * Match them with `instanceof`; `code` is for logs.
 */

export abstract class BankError extends Error {
  abstract readonly code: string;
}

export type BankInputCode =
  | 'invalid_purpose'
  | 'invalid_amount'
  | 'over_per_call_limit'
  | 'invalid_is_tuno'
  | 'invalid_tsymd'
  | 'invalid_account'
  | 'invalid_fintech_apsno'
  | 'invalid_memo'
  | 'invalid_date_range'
  | 'invalid_rgno'
  | 'invalid_brdt_brno'
  /** Our own request would not follow NH's published layout (a bug on our side): never sent. */
  | 'invalid_order'
  | 'nonconforming_request';

/** An order or argument that must never reach the bank. Thrown before any HTTP call. */
export class BankInputError extends BankError {
  override readonly name = 'BankInputError';
  constructor(
    readonly code: BankInputCode,
    message: string,
  ) {
    super(message);
  }
}

/** The bank answered a read with something that is not NH's published shape. */
export class BankResponseError extends BankError {
  override readonly name = 'BankResponseError';
  readonly code = 'malformed_response';
}

/** A read (balance, statement, registration) that the bank refused with a non-00000 Rpcd. */
export class BankRejectedError extends BankError {
  override readonly name = 'BankRejectedError';
  readonly code = 'bank_rejected';
  constructor(
    readonly api: string,
    readonly rpcd: string,
    readonly rsms: string,
  ) {
    super(`${api} refused with ${rpcd}: ${rsms}`);
  }
}

/** A read that stayed unanswered (timeouts, network, HTTP errors, codes classed `retry`) after its retries. */
export class BankUnavailableError extends BankError {
  override readonly name = 'BankUnavailableError';
  readonly code = 'bank_unavailable';
}
