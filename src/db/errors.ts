/**
 * The project's own SQLSTATEs (class ST), raised on purpose by the SQL
 * functions, mapped to named errors in one place. Registry: README.md.
 */
export const SQLSTATE = {
  ST001: 'missing_argument',
  ST002: 'unknown_account',
  ST003: 'invalid_amount',
  ST004: 'source_ref_conflict',
  ST006: 'journal_unbalanced',
  ST007: 'journal_append_only',
  ST008: 'transfer_not_found',
  ST009: 'invalid_transfer_outcome',
  ST010: 'unknown_day',
  ST011: 'legacy_transfers',
  ST012: 'day_withdrawn',
  ST013: 'transfer_already_succeeded',
  ST014: 'duplicate_in_batch',
  ST015: 'transfer_may_be_in_flight',
  ST016: 'transfer_may_be_booked',
  ST017: 'transfer_not_decidable',
  ST018: 'evidence_required',
  ST019: 'invalid_lease',
  ST020: 'note_required',
  ST021: 'break_not_found',
  ST022: 'invalid_reconcile_after',
  ST023: 'invalid_statement',
  ST024: 'invalid_statement_watch',
  ST030: 'amount_over_limit',
  ST031: 'date_out_of_window',
  ST032: 'invalid_source_ref',
  ST033: 'day_chunks_over_limit',
  ST040: 'reason_required',
  ST041: 'alert_not_found',
  ST050: 'invalid_range',
  ST060: 'invalid_change',
  ST061: 'change_not_found',
  ST062: 'change_not_pending',
  ST063: 'change_expired',
  ST064: 'change_needs_another_person',
  ST065: 'change_stale',
  ST066: 'invalid_loan_account',
  ST067: 'fin_acno_refused',
  ST070: 'is_tuno_space_spent',
  ST120: 'statement_refused',
  ST121: 'invalid_statement_checks',
  ST080: 'invalid_reveal',
  ST081: 'reveal_not_found',
  ST082: 'reveal_ambiguous',
  ST090: 'shared_login_cannot_approve',
  ST100: 'invalid_bank_window',
  ST101: 'bank_window_reason_required',
  ST102: 'invalid_bank_window_range',
  ST103: 'bank_window_not_found',
  ST091: 'own_login_required',
  ST092: 'own_login_refused',
  ST093: 'passwords_not_checked',
} as const;

export type SettlementErrorCode = (typeof SQLSTATE)[keyof typeof SQLSTATE];

export class SettlementError extends Error {
  override name = 'SettlementError';
  constructor(readonly code: SettlementErrorCode, readonly sqlstate: string, message: string) {
    super(message);
  }
}

export function sqlstateOf(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function messageOf(e: unknown): string {
  let cur: unknown = e;
  let msg = e instanceof Error ? e.message : String(e);
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const c = (cur as { cause?: unknown }).cause;
    if (c instanceof Error) msg = c.message;
    cur = c;
  }
  return msg;
}

/** Turns a database error carrying one of our SQLSTATEs into a SettlementError; anything else is returned as is. */
export function toSettlementError(e: unknown): unknown {
  const state = sqlstateOf(e);
  if (state && state in SQLSTATE) {
    return new SettlementError(SQLSTATE[state as keyof typeof SQLSTATE], state, messageOf(e));
  }
  return e;
}

/** True for errors worth retrying: connection loss and SQLSTATE class 40 (serialization, deadlock). */
export function isTransientDbError(e: unknown): boolean {
  const state = sqlstateOf(e);
  if (state) return state.startsWith('40') || state.startsWith('08') || state === '57P01';
  const name = (e as { name?: string })?.name ?? '';
  return /Connection|BackendTerminated/.test(name);
}
