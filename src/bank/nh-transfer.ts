/**
 * transfer(): exactly-once money movement over an at-least-once network.
 *
 * The bank books a (Tsymd, IsTuno) pair at most once and answers a repeat with
 * "duplicate" (A0013). So the one rule that keeps money safe is: a logical
 * transfer is only ever sent under its own IsTuno, and only on its own date
 * `req.tsymd`. Within that rule, resending is always harmless, and every unclear
 * outcome is settled by asking the bank (CheckOn…, OrtrYmd = req.tsymd,
 * OrtrIsTuno = req.isTuno):
 *
 *   send (retrying busy / error-before / not-connected / 5xx with backoff)
 *     00000                      → succeeded (resolvedBy 'call')
 *     final code (A0211, …)      → failed — except A0002 / A0230 after an earlier
 *                                  attempt that may have been processed (a 5xx, a
 *                                  timeout, ...): the bank gives those without
 *                                  looking at the IsTuno, so they go to inquiry
 *     timeout, reset, malformed,
 *     A0013, unexpected code     → inquiry
 *         booked                 → succeeded (resolvedBy 'inquiry')
 *         processed and failed   → failed with the original's code
 *         not found              → never booked: send again, same IsTuno (bounded rounds)
 *         no answer              → unknown (the caller retries later, same IsTuno)
 *
 * After midnight (Korea time) the client never sends the transfer again, because
 * the bank's duplicate check would not cover the new date. It only inquires on the
 * original date:
 *     booked / failed            → that result
 *     not found, within the grace period after the original date ended
 *                                → unknown (a request sent just before midnight
 *                                  might still be in the bank's hands)
 *     not found after the grace  → failed `expired_not_booked`: proven never
 *                                  booked, and nothing will send it any more; the
 *                                  caller may re-plan under a new IsTuno and tsymd.
 */
import type { Logger } from 'pino';
import { BankConsistencyError, BankTransientError } from './errors.js';
import { kstEndOfDay, kstStampToIso } from './kst.js';
import { formatKrw } from './money.js';
import { bankRefOf, inquireWithRetry, isRetryableHttpStatus } from './nh-inquiry.js';
import { logEvent, maskAccount } from './nh-log.js';
import { withRetry, type RetryPolicy } from './nh-retry.js';
import { callNh, type NhConnection } from './nh-wire.js';
import { NH_BANK_CODE, TRANSFER_API } from './protocol.js';
import { CLIENT_CODES, FINAL_FAILURE_CODES, FINAL_NOT_RECORDED_CODES, RPCD, TRANSIENT_CODES, describeRpcd } from './rpcd.js';
import type { InquiryResult, TransferRequest, TransferResult } from './types.js';

export interface TransferPolicy {
  retry: RetryPolicy;
  /** Send→inquire→not-found→send cycles before giving up with `unknown`. */
  maxRounds: number;
  /** How long after the original date ends a not-found answer becomes final. */
  expiryGraceMs: number;
}

/** What one retried send ended with. */
type SendOutcome =
  | { kind: 'succeeded'; processedAt: string | null }
  | { kind: 'failed'; code: string; message: string }
  | { kind: 'ask'; reason: string }
  | { kind: 'date_passed'; today: string };

export async function runTransfer(
  conn: NhConnection,
  policy: TransferPolicy,
  log: Logger | undefined,
  req: TransferRequest,
): Promise<TransferResult> {
  const context = {
    op: 'transfer',
    kind: req.kind,
    isTuno: req.isTuno,
    tsymd: req.tsymd,
    from: maskAccount(req.from),
    to: maskAccount(req.to),
    amount: formatKrw(req.amount),
  };
  const result = await resolve(conn, policy, log, req, context);
  logEvent(log, result.status === 'unknown' ? 'warn' : 'info', 'bank:result', { ...context, ...result });
  return result;
}

async function resolve(
  conn: NhConnection,
  policy: TransferPolicy,
  log: Logger | undefined,
  req: TransferRequest,
  context: Record<string, unknown>,
): Promise<TransferResult> {
  let lastReason = '';
  // Set once any attempt may have reached the bank's books without a clear answer.
  const doubt = { value: req.resume === true };
  // Why the bank must be asked before (another) send; null = send.
  let ask: string | null = req.resume ? 'an earlier attempt may have reached the bank' : null;
  for (let round = 1; round <= policy.maxRounds; round++) {
    if (ask === null) {
      let sent: SendOutcome;
      try {
        sent = await withRetry(policy.retry, log, { ...context, round }, (attempt) =>
          sendOnce(conn, log, req, { ...context, round, attempt }, doubt),
        );
      } catch (err) {
        if (!(err instanceof BankTransientError)) throw err;
        // Every attempt was turned away before processing (or by a gateway); the
        // bank may be down. A later call under the same IsTuno is safe.
        return { status: 'unknown', reason: `bank unavailable: ${err.message}` };
      }
      switch (sent.kind) {
        case 'succeeded':
          return { status: 'succeeded', bankRef: bankRefOf(req.tsymd, req.isTuno), processedAt: sent.processedAt, resolvedBy: 'call' };
        case 'failed':
          return { status: 'failed', code: sent.code, message: sent.message };
        case 'date_passed':
          return afterOriginalDate(conn, policy, log, req, sent.today);
        case 'ask':
          ask = sent.reason;
          break;
      }
    }
    doubt.value = true;
    lastReason = ask;
    const settled = fromInquiry(req, await inquireWithRetry(conn, policy.retry, log, req, ask), ask);
    if (settled) return settled;
    // Never booked: the next round sends again under the same IsTuno.
    ask = null;
  }
  return { status: 'unknown', reason: `no settled outcome after ${policy.maxRounds} rounds (last: ${lastReason})` };
}

async function sendOnce(
  conn: NhConnection,
  log: Logger | undefined,
  req: TransferRequest,
  context: Record<string, unknown>,
  doubt: { value: boolean },
): Promise<SendOutcome> {
  logEvent(log, 'debug', 'bank:call', context);
  const memo = req.memo ?? '';
  const fields: Record<string, string> =
    req.kind === 'payout'
      ? { FinAcno: req.from, Tram: formatKrw(req.amount), DractOtlt: memo, MractOtlt: memo, CtrtAcno: req.to }
      : { Bncd: NH_BANK_CODE, Acno: req.to, Tram: formatKrw(req.amount), DractOtlt: memo, MractOtlt: memo, FromAcno: req.from };
  const w = await callNh(conn, TRANSFER_API[req.kind], req.isTuno, fields, req.tsymd);
  switch (w.kind) {
    case 'wrong_date':
      return { kind: 'date_passed', today: w.today };
    case 'not_sent':
      throw new BankTransientError(`not sent: ${w.reason}`);
    case 'lost':
    case 'malformed':
      return { kind: 'ask', reason: w.reason };
    case 'http_status':
      if (isRetryableHttpStatus(w.status)) {
        // A gateway error says nothing about the bank behind it: resend (a
        // processed IsTuno answers "duplicate"), but stop trusting A0002/A0230.
        doubt.value = true;
        throw new BankTransientError(`HTTP ${w.status}`);
      }
      return { kind: 'ask', reason: `HTTP ${w.status}` };
    case 'answer':
      break;
  }
  const { Rpcd, Rsms } = w.header;
  if (Rpcd === RPCD.OK) return { kind: 'succeeded', processedAt: kstStampToIso(w.body['Prtm']) };
  if (TRANSIENT_CODES.has(Rpcd)) throw new BankTransientError(`${Rpcd} ${Rsms}`);
  if (FINAL_NOT_RECORDED_CODES.has(Rpcd) && doubt.value) {
    return { kind: 'ask', reason: `${Rpcd} after an attempt that may have been processed` };
  }
  if (FINAL_FAILURE_CODES.has(Rpcd)) return { kind: 'failed', code: Rpcd, message: Rsms || describeRpcd(Rpcd) };
  if (Rpcd === RPCD.DUPLICATE) return { kind: 'ask', reason: 'duplicate IsTuno' };
  return { kind: 'ask', reason: `unexpected Rpcd ${Rpcd}: ${Rsms}` };
}

async function afterOriginalDate(
  conn: NhConnection,
  policy: TransferPolicy,
  log: Logger | undefined,
  req: TransferRequest,
  today: string,
): Promise<TransferResult> {
  if (today < req.tsymd) {
    // Our clock is behind whoever chose tsymd; sending now would use another date.
    return { status: 'unknown', reason: `clock date ${today} is before the transfer date ${req.tsymd}` };
  }
  const why = `original date ${req.tsymd} passed (today ${today})`;
  const settled = fromInquiry(req, await inquireWithRetry(conn, policy.retry, log, req, why), why);
  if (settled) return settled;
  const finalAt = kstEndOfDay(req.tsymd).getTime() + policy.expiryGraceMs;
  if (conn.now().getTime() < finalAt) {
    return { status: 'unknown', reason: `original date ${req.tsymd} passed, not booked so far; final after the grace period` };
  }
  return {
    status: 'failed',
    code: CLIENT_CODES.EXPIRED_NOT_BOOKED,
    message: `not booked on ${req.tsymd} and no longer sendable under IsTuno ${req.isTuno}`,
  };
}

/** What an inquiry's answer means for the transfer; null when the bank has no such transaction. */
function fromInquiry(req: TransferRequest, answer: InquiryResult, why: string): TransferResult | null {
  switch (answer.status) {
    case 'succeeded':
      checkAmount(req, answer.amount);
      return { status: 'succeeded', bankRef: answer.bankRef, processedAt: answer.processedAt, resolvedBy: 'inquiry' };
    case 'failed':
      return { status: 'failed', code: answer.code, message: answer.message };
    case 'unknown':
      return { status: 'unknown', reason: `${why}; ${answer.reason}` };
    case 'not_found':
      return null;
  }
}

function checkAmount(req: TransferRequest, booked: bigint | undefined): void {
  if (booked !== undefined && booked !== req.amount) {
    throw new BankConsistencyError(
      `IsTuno ${req.isTuno} of ${req.tsymd} is booked for ${formatKrw(booked)} KRW, not ${formatKrw(req.amount)} KRW`,
    );
  }
}
