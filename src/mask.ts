/**
 * What a person reads shows an account number (6-20 digits) or a FinAcno (up
 * to 30) as `****` and its last four digits (issue 23): console pages, CLI
 * output, alerts and log lines. The one implementation on the TypeScript
 * side; its SQL twin is `settlement.mask_account` (sql/logic/10_support.sql),
 * called where the SQL makes text. The tables keep the full numbers; an
 * operator sees one on purpose with `settle reveal` (audited).
 */

/** `****1234`; four characters or fewer: `****`; null/undefined: `''`. */
export function maskAccount(accountNo: string | null | undefined): string {
  if (accountNo === null || accountNo === undefined) return '';
  const s = String(accountNo);
  return s.length <= 4 ? '****' : `****${s.slice(-4)}`;
}

/** Keys of a JSON row (audit args, changes, reconciliation lines) that hold account numbers. */
const ACCOUNT_KEY = /(account|account_no|acno|from|to)$/i;

/** A JSON value for people: strings of digits under keys naming an account masked (twin of settlement.mask_json). */
export function maskJsonValue(v: unknown): unknown {
  const walk = (x: unknown, key: string): unknown => {
    if (Array.isArray(x)) return x.map((y) => walk(y, key));
    if (typeof x === 'bigint') return x.toString();
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y, k)]));
    if (typeof x === 'string' && ACCOUNT_KEY.test(key) && /^[0-9-]{5,}$/.test(x)) return maskAccount(x.replace(/-/g, ''));
    return x;
  };
  return walk(v, '');
}

/** maskJsonValue, compact JSON. */
export const maskJson = (v: unknown): string => JSON.stringify(maskJsonValue(v));

/**
 * Every run of 10 or more digits shown by its last four: only for text this
 * system did not make (a driver's or the bank's error message); what we make
 * is masked where it is made.
 */
export const maskDigits = (s: string): string => s.replace(/\d{10,}/g, (d) => maskAccount(d));
