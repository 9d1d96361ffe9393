/**
 * Structured bank logging with stable event names:
 *   bank:call     one HTTP attempt of a transfer (debug)
 *   bank:retry    a transient failure that will be retried (info)
 *   bank:inquiry  a result check and what it said (info)
 *   bank:result   the final outcome of transfer() (info; warn when unknown)
 * The access token is never passed to the logger, and account numbers are masked.
 */
import type { Logger } from 'pino';

export type BankEvent = 'bank:call' | 'bank:retry' | 'bank:inquiry' | 'bank:result';

/** Keeps the last 4 characters: enough to tell accounts apart in a log, not to use them. */
export function maskAccount(accountNo: string): string {
  return accountNo.length <= 4 ? '****' : `****${accountNo.slice(-4)}`;
}

export function logEvent(
  log: Logger | undefined,
  level: 'debug' | 'info' | 'warn',
  event: BankEvent,
  fields: Record<string, unknown>,
): void {
  if (!log) return;
  log[level]({ event, ...fields }, event);
}
