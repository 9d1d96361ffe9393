/**
 * Calls that move no money: InquireBalance, InquireTransactionHistory and the
 * fin-account registration pair. Asking again is harmless, so every transient
 * failure (no answer, HTTP 5xx/429, a code classed `retry`, an unreadable
 * answer) is retried with backoff under a fresh IsTuno; a definite refusal is
 * a BankRejectedError, and running out of retries a BankUnavailableError (or
 * BankResponseError when the answers kept being unreadable).
 */
import { DMCNT_MAX, HISTORY_MAX_DAYS, parseKrw, RPCD_OK, type ApiNm } from '../nh/contract.js';
import { BankRejectedError, BankResponseError, BankUnavailableError } from './errors.js';
import type { Balance, FinAccount, Gate, StatementLine } from './port.js';
import { callNh, freshIsTuno, isRetryableStatus, Transient, withRetry, type Wire } from './wire.js';

/** Pages of one ≤ 3-month range, at most (100 lines each: 100,000 lines). */
const MAX_PAGES = 1_000;

async function read(w: Wire, gate: Gate, fintechApsno: string, api: ApiNm, fields: Record<string, string>, log: Record<string, unknown>): Promise<Record<string, unknown>> {
  try {
    return await withRetry(w.retry, async (attempt) => {
      const r = await callNh(w, gate, { api, isTuno: freshIsTuno(), fintechApsno, fields, log: { ...log, attempt } });
      switch (r.kind) {
        case 'not_sent':
        case 'lost':
          throw new Transient(r.reason);
        case 'malformed':
          throw new Transient(r.reason, true);
        case 'http_status':
          if (isRetryableStatus(r.status)) throw new Transient(r.reason);
          throw new BankUnavailableError(`${api} answered HTTP ${r.status}`);
        case 'answer':
          break;
      }
      const { Rpcd, Rsms } = r.header;
      if (Rpcd === RPCD_OK) return r.body;
      if (w.codeBook(api, Rpcd) === 'retry') throw new Transient(`${Rpcd} ${Rsms}`);
      throw new BankRejectedError(api, Rpcd, Rsms);
    });
  } catch (err) {
    if (err instanceof Transient) {
      if (err.wasMalformed) throw new BankResponseError(`${api}: ${err.reason}`);
      throw new BankUnavailableError(`${api} unanswered after retries (last: ${err.reason})`);
    }
    throw err;
  }
}

export async function readBalance(w: Wire, gate: Gate, fintechApsno: string, finAcno: string): Promise<Balance> {
  const body = await read(w, gate, fintechApsno, 'InquireBalance', { FinAcno: finAcno }, {});
  const ledger = parseKrw(body['Ldbl']);
  const available = parseKrw(body['RlpmAbamt']);
  if (ledger === null || available === null) throw new BankResponseError('InquireBalance answered an unreadable amount');
  return { ledger, available };
}

export async function openFinAccount(w: Wire, gate: Gate, fintechApsno: string, brdtBrno: string, bncd: string, acno: string): Promise<string> {
  const body = await read(w, gate, fintechApsno, 'OpenFinAccountDirect', { DrtrRgyn: 'Y', BrdtBrno: brdtBrno, Bncd: bncd, Acno: acno }, {});
  return body['Rgno'] as string;
}

export async function checkFinAccount(w: Wire, gate: Gate, fintechApsno: string, brdtBrno: string, rgno: string): Promise<FinAccount> {
  const body = await read(w, gate, fintechApsno, 'CheckOpenFinAccountDirect', { Rgno: rgno, BrdtBrno: brdtBrno }, {});
  return { finAcno: body['FinAcno'] as string, rgsnYmd: body['RgsnYmd'] as string };
}

/**
 * Every line of Bncd + Acno over [fromYmd, toYmd], oldest first. NH answers at
 * most 3 months per request, so a longer range is read in consecutive pieces;
 * each piece is paged (PageNo 1, 2, … while CtntDataYn is Y).
 */
export async function readStatement(w: Wire, gate: Gate, fintechApsno: string, bncd: string, acno: string, fromYmd: string, toYmd: string): Promise<StatementLine[]> {
  const lines: StatementLine[] = [];
  for (const [from, to] of splitRange(fromYmd, toYmd)) {
    for (let page = 1; ; page++) {
      if (page > MAX_PAGES) throw new BankResponseError(`InquireTransactionHistory did not end within ${MAX_PAGES} pages`);
      const fields = { Bncd: bncd, Acno: acno, Insymd: from, Ineymd: to, TrnsDsnc: 'A', Lnsq: 'ASC', PageNo: String(page), Dmcnt: String(DMCNT_MAX) };
      const body = await read(w, gate, fintechApsno, 'InquireTransactionHistory', fields, { page });
      const rec = body['REC'] as Array<Record<string, unknown>>;
      if (Number(body['Iqtcnt']) !== rec.length) throw new BankResponseError(`statement page ${page}: Iqtcnt ${String(body['Iqtcnt'])} but ${rec.length} lines`);
      lines.push(...rec.map(lineOf));
      if (body['CtntDataYn'] !== 'Y') break;
      if (rec.length === 0) throw new BankResponseError(`statement page ${page} is empty but announces more pages`);
    }
  }
  return lines;
}

/** checkResponse has checked every field against STATEMENT_LINE; this only converts. */
function lineOf(r: Record<string, unknown>): StatementLine {
  const opt = (k: string): string | null => (typeof r[k] === 'string' && r[k] !== '' ? (r[k] as string) : null);
  const tram = parseKrw(r['Tram']);
  const aftrBlnc = parseKrw(r['AftrBlnc']);
  if (tram === null || aftrBlnc === null) throw new BankResponseError('statement line with an unreadable amount');
  return {
    trdd: r['Trdd'] as string,
    txtm: r['Txtm'] as string,
    mnrcDrotDsnc: r['MnrcDrotDsnc'] as StatementLine['mnrcDrotDsnc'],
    tram,
    aftrBlnc,
    balanceSign: opt('TrnsAfAcntBlncSmblCd'),
    smr: opt('Smr'),
    hnisCd: opt('HnisCd'),
    hnbrCd: opt('HnbrCd'),
    ccyn: r['Ccyn'] as StatementLine['ccyn'],
    tuno: r['Tuno'] as string,
    bnprCntn: opt('BnprCntn'),
  };
}

/** [from, to] in consecutive pieces of at most HISTORY_MAX_DAYS days between their ends. */
export function splitRange(fromYmd: string, toYmd: string): Array<[string, string]> {
  const pieces: Array<[string, string]> = [];
  let from = fromYmd;
  for (;;) {
    const end = addDays(from, HISTORY_MAX_DAYS);
    if (end >= toYmd) {
      pieces.push([from, toYmd]);
      return pieces;
    }
    pieces.push([from, end]);
    from = addDays(end, 1);
  }
}

function addDays(ymd: string, days: number): string {
  const d = new Date(Date.UTC(Number(ymd.slice(0, 4)), Number(ymd.slice(4, 6)) - 1, Number(ymd.slice(6, 8)) + days));
  return `${String(d.getUTCFullYear()).padStart(4, '0')}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}
