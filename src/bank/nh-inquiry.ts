/**
 * Result checks (CheckOnDrawingTransfer / CheckOnReceivedTransfer): "what happened
 * to the transfer we sent on OrtrYmd under OrtrIsTuno?". An inquiry moves no money,
 * so every failure to get a readable answer (timeout, reset, malformed body, busy)
 * is simply retried; only the bank's own answers end it.
 */
import { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { BankTransientError } from './errors.js';
import { kstStampToIso } from './kst.js';
import { parseKrw } from './money.js';
import { maskAccount, logEvent } from './nh-log.js';
import { withRetry, type RetryPolicy } from './nh-retry.js';
import { callNh, freshIsTuno, type NhConnection, type WireResult } from './nh-wire.js';
import { CHECK_API } from './protocol.js';
import { RPCD, TRANSIENT_CODES, describeRpcd } from './rpcd.js';
import type { InquiryRequest, InquiryResult } from './types.js';

/** The bank reference of a booked transfer: stable whether learnt from the call or an inquiry. */
export function bankRefOf(tsymd: string, isTuno: string): string {
  return `${tsymd}:${isTuno}`;
}

/** HTTP statuses after which asking again is the right move. */
export function isRetryableHttpStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

export async function inquireWithRetry(
  conn: NhConnection,
  policy: RetryPolicy,
  log: Logger | undefined,
  req: InquiryRequest,
  /** Why the outcome is in question (logged with the inquiry). */
  cause?: string,
): Promise<InquiryResult> {
  const context = {
    op: 'inquiry',
    kind: req.kind,
    isTuno: req.isTuno,
    tsymd: req.tsymd,
    from: maskAccount(req.from),
    ...(cause === undefined ? {} : { cause }),
  };
  let result: InquiryResult;
  try {
    result = await withRetry(policy, log, context, () => inquireOnce(conn, req));
  } catch (err) {
    if (!(err instanceof BankTransientError)) throw err;
    result = { status: 'unknown', reason: `inquiry unanswered: ${err.message}` };
  }
  logEvent(log, 'info', 'bank:inquiry', { ...context, result: result.status, ...detail(result) });
  return result;
}

function detail(r: InquiryResult): Record<string, unknown> {
  if (r.status === 'failed') return { code: r.code };
  if (r.status === 'unknown') return { reason: r.reason };
  return {};
}

async function inquireOnce(conn: NhConnection, req: InquiryRequest): Promise<InquiryResult> {
  const fields: Record<string, string> =
    req.kind === 'payout'
      ? { FinAcno: req.from, OrtrYmd: req.tsymd, OrtrIsTuno: req.isTuno }
      : { FromAcno: req.from, OrtrYmd: req.tsymd, OrtrIsTuno: req.isTuno };
  // Each attempt has its own IsTuno: a lost attempt may have used its number up.
  const w = await callNh(conn, CHECK_API[req.kind], freshIsTuno('Q'), fields);
  return interpret(w, req);
}

function interpret(w: WireResult, req: InquiryRequest): InquiryResult {
  switch (w.kind) {
    case 'not_sent':
    case 'lost':
    case 'malformed':
      throw new BankTransientError(w.reason);
    case 'wrong_date':
      throw new AbortError('unreachable: inquiries carry no date requirement');
    case 'http_status':
      if (isRetryableHttpStatus(w.status)) throw new BankTransientError(`HTTP ${w.status}`);
      return { status: 'unknown', reason: `inquiry answered HTTP ${w.status}` };
    case 'answer':
      break;
  }
  const { Rpcd, Rsms } = w.header;
  if (Rpcd === RPCD.NOT_FOUND) return { status: 'not_found' };
  if (TRANSIENT_CODES.has(Rpcd)) throw new BankTransientError(`${Rpcd} ${Rsms}`);
  // Anything else but success — a bad token, a field the bank disputes — must not
  // be read as "not found": that would license a resend.
  if (Rpcd !== RPCD.OK) return { status: 'unknown', reason: `inquiry rejected with ${Rpcd}: ${Rsms}` };

  // Pcrs is the ORIGINAL transaction's result code; it is only meaningful here,
  // under a successful header.
  const pcrs = w.body['Pcrs'];
  if (typeof pcrs !== 'string' || !/^[0-9A-Z]{5}$/.test(pcrs)) throw new BankTransientError('inquiry answer without a valid Pcrs');
  if (pcrs !== RPCD.OK) return { status: 'failed', code: pcrs, message: describeRpcd(pcrs) };

  const tram = w.body['Tram'];
  let amount: bigint | undefined;
  if (tram !== undefined) {
    const parsed = parseKrw(tram);
    if (parsed === null) throw new BankTransientError('inquiry answer with an invalid Tram');
    amount = parsed;
  }
  return {
    status: 'succeeded',
    bankRef: bankRefOf(req.tsymd, req.isTuno),
    processedAt: kstStampToIso(w.body['Prtm']),
    ...(amount === undefined ? {} : { amount }),
  };
}
