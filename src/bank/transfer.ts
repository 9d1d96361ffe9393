/**
 * transfer(): exactly-once money movement over an at-least-once network.
 *
 * A transfer is only ever sent under its own IsTuno and its own Tsymd (both
 * fixed by the database), so sending it again is harmless: the bank refuses a
 * reused IsTuno. Only `00000` is trusted; every other outcome is settled by
 * asking the bank about that same IsTuno (the result check), unless the
 * operator's code book says more:
 *
 *   send (same IsTuno; codes classed `retry` and calls that never left are sent again, bounded)
 *     00000                            → succeeded (by 'answer', at order.tsymd + our Trtm)
 *     code classed `final`             → failed (by 'bank_code') — but after an attempt whose
 *                                        outcome is unknown, the result check decides first
 *     duplicate text, any other code,
 *     lost, malformed, HTTP error      → result check
 *   result check (fresh IsTuno per attempt; anything unreadable is asked again, bounded)
 *     Rpcd 00000, Pcrs 00000           → succeeded (by 'result_check', at OrtrYmd + Prtm)
 *     Rpcd 00000, other Pcrs           → failed (by 'result_check')
 *     Rpcd classed `not_found`         → never received: send again under the SAME IsTuno
 *                                        when the order is sendable (bounded rounds);
 *                                        otherwise unresolved (the statement decides)
 *     nothing readable                 → unresolved
 *
 * `order.resume` asks first; `order.sendable === false` only ever asks. Right
 * before every send (inside the gate, after any wait for a slot) the clock's
 * KST date must still be `order.tsymd` and the answer due before the claim
 * ends (`order.sendUntilMs`); otherwise nothing is sent and the attempt only
 * asks from then on. No new IsTuno and no decision from the clock: those
 * belong to the database (G9).
 */
import { DUPLICATE_IS_TUNO_MESSAGE, formatKrw, kstYmd, NH_BANK_CODES, RPCD_OK, type ApiNm } from '../nh/contract.js';
import { failed, succeeded, unresolved, type Gate, type TransferOrder, type TransferResult } from './port.js';
import { callNh, freshIsTuno, mask, Transient, withRetry, type Wire, type WireResult } from './wire.js';

export interface TransferPolicy {
  /** Send → result check → not found → send cycles before `unresolved`. */
  maxRounds: number;
}

/** What one (retried) send ended with. */
type Sent =
  | { kind: 'succeeded'; trtm: string }
  /** Not sent: the date is over or the claim ends first; never send it again in this attempt. */
  | { kind: 'closed'; reason: string }
  | { kind: 'final'; code: string; message: string }
  | { kind: 'ask'; reason: string };

/** What one (retried) result check ended with. */
type Checked = { kind: 'settled'; result: TransferResult } | { kind: 'not_found' } | { kind: 'unanswered'; reason: string };

export function transferApi(order: TransferOrder): ApiNm {
  if (order.purpose === 'payout') return 'DrawingTransfer';
  return NH_BANK_CODES.includes(order.bncd) ? 'ReceivedTransferAccountNumber' : 'ReceivedTransferOtherBank';
}

function logKeys(order: TransferOrder): Record<string, unknown> {
  const account = order.purpose === 'payout' ? { fin_acno: mask(order.finAcno) } : { bncd: order.bncd, acno: mask(order.acno) };
  return { is_tuno: order.isTuno, purpose: order.purpose, amount: formatKrw(order.amount), ...account };
}

export async function runTransfer(w: Wire, policy: TransferPolicy, order: TransferOrder, gate: Gate): Promise<TransferResult> {
  const log = logKeys(order);
  // Set once an attempt may have reached the bank without a clear answer: a
  // later `final` code then says nothing about that earlier attempt.
  let doubt = order.resume;
  let sendable = order.sendable;
  let ask = order.resume || !sendable;
  let why = order.resume ? 'resumed: an earlier attempt may have reached the bank' : 'not sendable';
  for (let round = 1; round <= policy.maxRounds; round++) {
    let final: { code: string; message: string } | null = null;
    if (!ask) {
      const sent = await send(w, order, gate, { ...log, round });
      if (sent.kind === 'succeeded') return succeeded(order.tsymd + sent.trtm, 'answer');
      if (sent.kind === 'closed') {
        // Nothing went out in this round; an earlier round may have reached the bank.
        sendable = false;
        why = sent.reason;
        if (!doubt) return unresolved(`not sent: ${sent.reason}`);
      } else if (sent.kind === 'final') {
        if (!doubt) return failed(sent.code, sent.message, 'bank_code');
        final = sent;
        why = `${sent.code} after an attempt with an unknown outcome`;
      } else {
        why = sent.reason;
      }
    }
    doubt = true;
    const checked = await resultCheck(w, order, gate, { ...log, round });
    if (checked.kind === 'settled') return checked.result;
    if (checked.kind === 'unanswered') return unresolved(`${why}; ${checked.reason}`);
    // The bank has no transaction under this IsTuno.
    if (final) return failed(final.code, final.message, 'bank_code');
    if (!sendable) return unresolved(`not found; ${order.sendable ? why : 'date over'}: the statement decides`);
    ask = false;
    why = 'not found by the result check';
  }
  return unresolved(`not booked after ${policy.maxRounds} rounds (last: ${why})`);
}

function transferFields(order: TransferOrder): Record<string, string> {
  const tram = formatKrw(order.amount);
  // MractOtlt is published as "not used" for DrawingTransfer.
  const memo = (keys: string[]) => (order.memo === '' ? {} : Object.fromEntries(keys.map((k) => [k, order.memo])));
  return order.purpose === 'payout'
    ? { FinAcno: order.finAcno, Tram: tram, ...memo(['DractOtlt']) }
    : { Bncd: order.bncd, Acno: order.acno, Tram: tram, ...memo(['DractOtlt', 'MractOtlt']) };
}

async function send(w: Wire, order: TransferOrder, gate: Gate, log: Record<string, unknown>): Promise<Sent> {
  const api = transferApi(order);
  const fields = transferFields(order);
  try {
    return await withRetry(w.retry, async (attempt) => {
      const r = await callNh(w, gate, { api, isTuno: order.isTuno, fintechApsno: order.fintechApsno, tsymd: order.tsymd, fields, log: { ...log, attempt },
        sendWindow: (at) => sendWindowClosed(w, order, at) });
      return readSend(w, api, r);
    });
  } catch (err) {
    if (err instanceof Transient) return { kind: 'ask', reason: `send retries spent (last: ${err.reason})` };
    throw err;
  }
}

/** Why a send of `order` may not start at `at` (the database's clock), or null. */
function sendWindowClosed(w: Wire, order: TransferOrder, at: Date): string | null {
  const today = kstYmd(at);
  if (today !== order.tsymd) return `the date ${order.tsymd} is over (KST ${today}): never sent under a past date`;
  if (order.sendUntilMs !== undefined && at.getTime() + w.timeoutMs >= order.sendUntilMs) {
    return `the claim ends at ${new Date(order.sendUntilMs).toISOString()}, before an answer could come`;
  }
  return null;
}

function readSend(w: Wire, api: ApiNm, r: WireResult): Sent {
  switch (r.kind) {
    case 'not_sent':
      if (r.closed) return { kind: 'closed', reason: r.reason };
      throw new Transient(`not sent: ${r.reason}`);
    case 'lost':
    case 'malformed':
    case 'http_status':
      return { kind: 'ask', reason: r.reason };
    case 'answer':
      break;
  }
  const { Rpcd, Rsms } = r.header;
  if (Rpcd === RPCD_OK) return { kind: 'succeeded', trtm: r.trtm };
  // NH's published refusal of a reused IsTuno, whatever code carries it:
  // something was received under this number before — ask what.
  if (Rsms === DUPLICATE_IS_TUNO_MESSAGE) return { kind: 'ask', reason: `duplicate IsTuno (${Rpcd})` };
  switch (w.codeBook(api, Rpcd)) {
    case 'retry':
      throw new Transient(`${Rpcd} ${Rsms}`);
    case 'final':
      return { kind: 'final', code: Rpcd, message: Rsms || `refused with ${Rpcd}` };
    default:
      return { kind: 'ask', reason: `${api} answered ${Rpcd}: ${Rsms}` };
  }
}

async function resultCheck(w: Wire, order: TransferOrder, gate: Gate, log: Record<string, unknown>): Promise<Checked> {
  const api: ApiNm = order.purpose === 'payout' ? 'CheckOnDrawingTransfer' : 'CheckOnReceivedTransfer';
  const original = { Tram: formatKrw(order.amount), OrtrYmd: order.tsymd, OrtrIsTuno: order.isTuno };
  const fields = order.purpose === 'payout' ? { FinAcno: order.finAcno, ...original } : { Bncd: order.bncd, Acno: order.acno, ...original };
  try {
    return await withRetry(w.retry, async (attempt) => {
      // Each attempt has its own IsTuno: a lost attempt may have used its number up.
      const r = await callNh(w, gate, { api, isTuno: freshIsTuno(), fintechApsno: order.fintechApsno, fields, log: { ...log, attempt } });
      return readCheck(w, api, order, r);
    });
  } catch (err) {
    if (err instanceof Transient) return { kind: 'unanswered', reason: `result check unanswered (last: ${err.reason})` };
    throw err;
  }
}

function readCheck(w: Wire, api: ApiNm, order: TransferOrder, r: WireResult): Checked {
  if (r.kind !== 'answer') throw new Transient(r.reason);
  const { Rpcd, Rsms } = r.header;
  if (Rpcd !== RPCD_OK) {
    const cls = w.codeBook(api, Rpcd);
    if (cls === 'not_found') return { kind: 'not_found' };
    // Asking again cannot change a refusal the operator classed final.
    if (cls === 'final') return { kind: 'unanswered', reason: `result check refused with ${Rpcd}: ${Rsms}` };
    throw new Transient(`${Rpcd} ${Rsms}`);
  }
  // Pcrs is the ORIGINAL transaction's result; it means something only under
  // Rpcd 00000 (checkResponse has made sure Pcrs and Prtm are there and well-formed).
  const pcrs = r.body['Pcrs'] as string;
  const prtm = r.body['Prtm'] as string;
  if (pcrs === RPCD_OK) return { kind: 'settled', result: succeeded(order.tsymd + prtm, 'result_check') };
  return { kind: 'settled', result: failed(pcrs, `the result check says the original ended with ${pcrs}`, 'result_check') };
}
