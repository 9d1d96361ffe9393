/**
 * NH Developers response codes (`Header.Rpcd`) as this project uses them, in one
 * place. The README copies this table.
 *
 * | Rpcd    | meaning                                               | client treats it as                         | consumes IsTuno |
 * |---------|-------------------------------------------------------|---------------------------------------------|-----------------|
 * | `00000` | success                                               | succeeded                                   | yes (booked)    |
 * | `A0001` | busy: the bank's in-flight cap is reached             | transient: back off, resend same IsTuno     | no              |
 * | `A0090` | system error before processing                        | transient: back off, resend same IsTuno     | no              |
 * | `A0002` | invalid access token (or Iscd)                        | failed (final)                              | no              |
 * | `A0013` | duplicate IsTuno: already processed on that Tsymd     | unknown → resolve by inquiry                | (already)       |
 * | `A0211` | insufficient funds                                    | failed (final)                              | yes             |
 * | `A0212` | invalid, unknown or closed account                    | failed (final)                              | yes             |
 * | `A0220` | amount over the per-call limit                        | failed (final)                              | yes             |
 * | `A0230` | invalid amount or field (malformed request)           | failed (final)                              | no              |
 * | `A0300` | inquiry: original transaction not found               | inquiry → not_found                         | n/a             |
 * | other   | anything not listed                                   | unknown → resolve by inquiry                | ?               |
 *
 * "Consumes IsTuno" means the bank records the (Tsymd, IsTuno) as processed, so a
 * later request with the same pair gets `A0013` and an inquiry answers with the
 * recorded result code (`Pcrs`).
 *
 * Client-side codes (never sent by the bank) that can appear in a `failed` result:
 *
 * | code                 | meaning                                                                 |
 * |----------------------|-------------------------------------------------------------------------|
 * | `expired_not_booked` | the original date (tsymd) has passed, and the bank confirms nothing was  |
 * |                      | booked under that (tsymd, IsTuno); it never will be, because the client  |
 * |                      | sends a transfer only on its tsymd. The caller may re-plan the chunk     |
 * |                      | under a NEW IsTuno and tsymd.                                            |
 */
export const RPCD = {
  OK: '00000',
  BUSY: 'A0001',
  INVALID_TOKEN: 'A0002',
  DUPLICATE: 'A0013',
  SYSTEM_ERROR_BEFORE: 'A0090',
  INSUFFICIENT_FUNDS: 'A0211',
  INVALID_ACCOUNT: 'A0212',
  OVER_LIMIT: 'A0220',
  INVALID_FIELD: 'A0230',
  NOT_FOUND: 'A0300',
} as const;

export type Rpcd = (typeof RPCD)[keyof typeof RPCD];

export const RPCD_MESSAGES: Readonly<Record<Rpcd, string>> = {
  '00000': 'success',
  A0001: 'busy: too many requests in flight',
  A0002: 'invalid access token',
  A0013: 'duplicate IsTuno: already processed',
  A0090: 'system error before processing',
  A0211: 'insufficient funds',
  A0212: 'invalid or closed account',
  A0220: 'amount over the per-call limit',
  A0230: 'invalid amount or field',
  A0300: 'original transaction not found',
};

/** Codes after which the bank will not book this IsTuno, so the transfer failed for good. */
export const FINAL_FAILURE_CODES: ReadonlySet<string> = new Set([
  RPCD.INVALID_TOKEN,
  RPCD.INSUFFICIENT_FUNDS,
  RPCD.INVALID_ACCOUNT,
  RPCD.OVER_LIMIT,
  RPCD.INVALID_FIELD,
]);

/**
 * Final codes the bank gives WITHOUT recording the IsTuno (checked before the
 * duplicate check). They prove nothing about an earlier attempt of the same
 * IsTuno that may still be in the bank's hands, so after an unclear attempt the
 * client asks instead of trusting them.
 */
export const FINAL_NOT_RECORDED_CODES: ReadonlySet<string> = new Set([RPCD.INVALID_TOKEN, RPCD.INVALID_FIELD]);

/** Codes that mean "not processed, try again under the same IsTuno". */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([RPCD.BUSY, RPCD.SYSTEM_ERROR_BEFORE]);

export const CLIENT_CODES = {
  EXPIRED_NOT_BOOKED: 'expired_not_booked',
} as const;

export function describeRpcd(code: string): string {
  return (RPCD_MESSAGES as Record<string, string | undefined>)[code] ?? `bank result code ${code}`;
}
