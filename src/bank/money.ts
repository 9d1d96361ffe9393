/**
 * KRW amounts on the wire are decimal strings ("100000"). They are parsed strictly
 * into bigint: no sign, no decimal point, no exponent, no whitespace, because a
 * lenient parse (Number(), parseInt) would turn a garbled amount into money.
 */
const DECIMAL = /^[0-9]+$/;

/** Longest accepted amount string; far above any real balance, it bounds the work. */
const MAX_DIGITS = 30;

export function parseKrw(value: unknown): bigint | null {
  if (typeof value !== 'string' || value.length > MAX_DIGITS || !DECIMAL.test(value)) return null;
  return BigInt(value);
}

export function formatKrw(amount: bigint): string {
  return amount.toString(10);
}
