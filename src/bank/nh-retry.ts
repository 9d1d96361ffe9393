/**
 * The retry policy for single bank calls: exponential backoff with jitter, bounded
 * in count and in time, retrying ONLY `BankTransientError` (the bank did not
 * process the call, or a resend under the same IsTuno is harmless). Everything else
 * ends the retry loop at once.
 */
import pRetry from 'p-retry';
import type { Logger } from 'pino';
import { BankTransientError } from './errors.js';
import { logEvent } from './nh-log.js';

export interface RetryPolicy {
  retries: number;
  maxRetryTimeMs: number;
  minBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 8,
  maxRetryTimeMs: 60_000,
  minBackoffMs: 50,
  maxBackoffMs: 2_000,
};

/**
 * Runs `attempt` until it returns, throws a non-transient error, or the budget is
 * spent; in the last case the final `BankTransientError` is thrown.
 */
export function withRetry<T>(
  policy: RetryPolicy,
  log: Logger | undefined,
  context: Record<string, unknown>,
  attempt: (attemptNumber: number) => Promise<T>,
): Promise<T> {
  return pRetry(attempt, {
    retries: policy.retries,
    maxRetryTime: policy.maxRetryTimeMs,
    minTimeout: policy.minBackoffMs,
    maxTimeout: policy.maxBackoffMs,
    factor: 2,
    randomize: true,
    shouldRetry: ({ error }) => error instanceof BankTransientError,
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (error instanceof BankTransientError && retriesLeft > 0) {
        logEvent(log, 'info', 'bank:retry', { ...context, attempt: attemptNumber, retriesLeft, reason: error.message });
      }
    },
  });
}
