/**
 * The simulated NH API: one synchronous function from a parsed request body to
 * the bank's answer. Timing, the in-flight cap and faults are the server's
 * business (simulator.ts); this file decides what the bank answers and books.
 *
 * Order of checks:
 *   1. AccessToken / Iscd (options)               → S0002   not processed
 *   2. the published layout, `checkRequest`        → S0230   not processed
 *      (+ a statement may start at most a year back from the simulator's today)
 *   3. (Iscd, Tsymd, IsTuno) already processed     → S0013   with NH's published Rsms
 *   4. the API's own processing: booked (00000) or refused after processing
 *      (S0211 funds, S0212 account, S0213 contract, S0214 registration,
 *      S0220 per-call limit, S0231/S0300 result checks, S0310 bank code).
 * Every request that reaches step 4 uses up its (Iscd, Tsymd, IsTuno), for every
 * API; a request stopped at 1-3 (or by busy/S0090 in the server) does not, so it
 * can be sent again under the same IsTuno. Header.Tsymd is not compared with the
 * simulator's clock (NH publishes no rule); booking times come from the clock.
 */
import {
  APIS,
  NH_BANK_CODES,
  RESPONSE_HEADER,
  RPCD_OK,
  checkRequest,
  formatKrw,
  kstHms,
  kstYmd,
  parseKrw,
  type ApiNm,
  type ApiSvcCodes,
} from '../nh/contract.js';
import { SIM, rsmsOf } from './sim-codes.js';
import { printed, type SimAccount, type SimLedger } from './sim-ledger.js';
import type { RejectReason, SimStats } from './sim-stats.js';
import { maskAccount } from '../mask.js';

export interface SimApiContext {
  ledger: SimLedger;
  stats: SimStats;
  perCallLimit: bigint;
  accessToken: string | undefined;
  iscd: string | undefined;
  svcCodes: ApiSvcCodes;
  now: () => Date;
}

export interface ApiReply {
  status: number;
  body: Record<string, unknown>;
}

type Json = Record<string, unknown>;
type Fields = Readonly<Record<string, string>>;
/** What processing decided: the code, the answer's body fields (00000 only), a detail for Rsms. */
interface Outcome {
  code: string;
  fields?: Record<string, unknown>;
  detail?: string;
}

const REASON: Readonly<Record<string, RejectReason>> = {
  [SIM.BUSY]: 'busy',
  [SIM.REFUSED_TOKEN]: 'token',
  [SIM.DUPLICATE]: 'duplicate',
  [SIM.SYSTEM_ERROR]: 'failBefore',
  [SIM.FUNDS]: 'funds',
  [SIM.ACCOUNT]: 'account',
  [SIM.CONTRACT]: 'contract',
  [SIM.REGISTRATION]: 'registration',
  [SIM.LIMIT]: 'limit',
  [SIM.LAYOUT]: 'invalid',
  [SIM.MISMATCH]: 'mismatch',
  [SIM.NOT_FOUND]: 'notFound',
  [SIM.BANK_CODE]: 'bankCode',
};

const asObject = (v: unknown): Json | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null);

/** The answer: the request's Header echoed (without AccessToken, only RESPONSE_HEADER fields) plus Rpcd and Rsms. */
export function answer(req: unknown, api: ApiNm, rpcd: string, detail?: string, fields: Record<string, unknown> = {}): ApiReply {
  const h = asObject(asObject(req)?.['Header']) ?? {};
  const header: Json = {};
  for (const k of Object.keys(RESPONSE_HEADER)) {
    if (k === 'Rpcd' || k === 'Rsms') continue;
    const v = h[k];
    if (typeof v === 'string') header[k] = v;
    else if (k === 'ApiNm') header[k] = api;
  }
  header['Rpcd'] = rpcd;
  header['Rsms'] = rsmsOf(rpcd, detail);
  return { status: 200, body: { Header: header, ...(rpcd === RPCD_OK ? fields : {}) } };
}

/** A refusal, counted under its reason. */
export function refuse(stats: SimStats, req: unknown, api: ApiNm, rpcd: string, detail?: string): ApiReply {
  const reason = REASON[rpcd];
  if (reason) stats.rejected[reason]++;
  return answer(req, api, rpcd, detail);
}

export function processApi(ctx: SimApiContext, api: ApiNm, body: unknown): ApiReply {
  const req = asObject(body);
  const h = asObject(req?.['Header']);
  if (h && ((ctx.accessToken !== undefined && h['AccessToken'] !== ctx.accessToken) || (ctx.iscd !== undefined && h['Iscd'] !== ctx.iscd))) {
    return refuse(ctx.stats, req, api, SIM.REFUSED_TOKEN);
  }
  const problems = checkRequest(api, body, ctx.svcCodes);
  const now = ctx.now();
  if (problems.length === 0 && api === 'InquireTransactionHistory') {
    const start = oneYearBefore(kstYmd(now));
    if ((req!['Insymd'] as string) < start) problems.push(`body.Insymd must not be before ${start} (one year back)`);
  }
  if (problems.length > 0) return refuse(ctx.stats, body, api, SIM.LAYOUT, problems.join('; '));

  const header = h as Readonly<Record<string, string>>;
  const { Header: _h, ...rest } = req as Json;
  const b = rest as Fields;
  const iscd = header['Iscd']!;
  const tsymd = header['Tsymd']!;
  const isTuno = header['IsTuno']!;
  if (ctx.ledger.processedAt(iscd, tsymd, isTuno)) return refuse(ctx.stats, req, api, SIM.DUPLICATE);

  const out = HANDLERS[api](ctx, header, b, now);
  ctx.ledger.recordProcessed(iscd, tsymd, isTuno, { api, code: out.code, at: now, fields: b });
  if (out.code !== RPCD_OK) return refuse(ctx.stats, req, api, out.code, out.detail);
  return answer(req, api, RPCD_OK, undefined, out.fields);
}

type Handler = (ctx: SimApiContext, h: Fields, b: Fields, now: Date) => Outcome;

/** Why an account cannot be used, or null. */
function unusable(a: SimAccount | undefined, what: string): string | null {
  if (!a) return `${what} unknown`;
  return a.open ? null : `${what} closed`;
}

/** The contracted account of the Header's (Iscd, FintechApsno), or the refusal. */
function contracted(ctx: SimApiContext, h: Fields): SimAccount | Outcome {
  const c = ctx.ledger.contractAccount(h['Iscd']!, h['FintechApsno']!);
  if (c === null) return { code: SIM.CONTRACT, detail: `Iscd ${h['Iscd']} FintechApsno ${h['FintechApsno']}` };
  const why = unusable(c, 'contracted account');
  return why ? { code: SIM.ACCOUNT, detail: why } : c!;
}

const isOutcome = (v: SimAccount | Outcome): v is Outcome => 'code' in v;

function move(ctx: SimApiContext, api: ApiNm, h: Fields, from: SimAccount, to: SimAccount, amount: bigint, fromText: string | null, toText: string | null, now: Date): Outcome | null {
  if (from.balance < amount) return { code: SIM.FUNDS };
  ctx.ledger.book({ api, isTuno: h['IsTuno']!, tsymd: h['Tsymd']!, from, to, amount, fromText, toText, now });
  ctx.stats.booked++;
  ctx.stats.bookedAmount += amount;
  return null;
}

const drawingTransfer: Handler = (ctx, h, b, now) => {
  const amount = parseKrw(b['Tram'])!;
  if (amount > ctx.perCallLimit) return { code: SIM.LIMIT, detail: `at most ${formatKrw(ctx.perCallLimit)}` };
  const from = ctx.ledger.byFinAcno(b['FinAcno']!);
  const why = unusable(from, 'FinAcno');
  if (why) return { code: SIM.ACCOUNT, detail: why };
  if (!from!.drawable) return { code: SIM.ACCOUNT, detail: 'FinAcno not registered for withdrawals (DrtrRgyn)' };
  const to = contracted(ctx, h);
  if (isOutcome(to)) return to;
  // MractOtlt is "not used" for DrawingTransfer: both passbooks print DractOtlt.
  const text = printed(b['DractOtlt']);
  return move(ctx, 'DrawingTransfer', h, from!, to, amount, text, text, now) ?? { code: RPCD_OK, fields: { FinAcno: b['FinAcno'], RgsnYmd: from!.rgsnYmd } };
};

const receivedTransfer = (api: ApiNm): Handler => (ctx, h, b, now) => {
  const amount = parseKrw(b['Tram'])!;
  const from = contracted(ctx, h);
  if (isOutcome(from)) return from;
  const to = ctx.ledger.account(b['Bncd']!, b['Acno']!);
  const why = unusable(to, `account ${b['Bncd']}-${maskAccount(String(b['Acno'] ?? ''))}`);
  if (why) return { code: SIM.ACCOUNT, detail: why };
  return move(ctx, api, h, from, to!, amount, printed(b['DractOtlt']), printed(b['MractOtlt']), now) ?? { code: RPCD_OK, fields: {} };
};

/** A result check: the original processed request of `family` under (Iscd, OrtrYmd, OrtrIsTuno), matching on `same`. */
const resultCheck = (family: readonly ApiNm[], same: readonly string[]): Handler => (ctx, h, b) => {
  const orig = ctx.ledger.processedAt(h['Iscd']!, b['OrtrYmd']!, b['OrtrIsTuno']!);
  if (!orig) return { code: SIM.NOT_FOUND };
  // A record of another API is not "not found": that would invite a resend of a used IsTuno.
  if (!family.includes(orig.api)) return { code: SIM.MISMATCH, detail: `OrtrIsTuno is a ${orig.api}` };
  const differ = same.filter((k) => orig.fields[k] !== b[k]);
  if (differ.length > 0) return { code: SIM.MISMATCH, detail: differ.map((k) => `body.${k}`).join(', ') };
  return { code: RPCD_OK, fields: { Pcrs: orig.code, Prtm: kstHms(orig.at) } };
};

const inquireBalance: Handler = (ctx, _h, b) => {
  const a = ctx.ledger.byFinAcno(b['FinAcno']!);
  const why = unusable(a, 'FinAcno');
  if (why) return { code: SIM.ACCOUNT, detail: why };
  const shown = formatKrw(a!.balance > 0n ? a!.balance : 0n);
  return { code: RPCD_OK, fields: { FinAcno: b['FinAcno'], Ldbl: shown, RlpmAbamt: shown } };
};

const HNIS_CD = '011';
const HNBR_CD = '0110001';

const inquireTransactionHistory: Handler = (ctx, _h, b) => {
  if (!NH_BANK_CODES.includes(b['Bncd']!)) return { code: SIM.BANK_CODE, detail: `Bncd ${b['Bncd']}` };
  const a = ctx.ledger.account(b['Bncd']!, b['Acno']!);
  if (!a) return { code: SIM.ACCOUNT, detail: `account ${b['Bncd']}-${maskAccount(String(b['Acno'] ?? ''))} unknown` };
  const kind = b['TrnsDsnc'] || 'A';
  const lines = a.lines.filter(
    (l) => l.trdd >= b['Insymd']! && l.trdd <= b['Ineymd']! && (kind === 'A' || (kind === 'M') === (l.dsnc === '1' || l.dsnc === '2')),
  );
  if (b['Lnsq'] === 'DESC') lines.reverse();
  const size = Number(b['Dmcnt']);
  const page = Number(b['PageNo'] || '1');
  const rec = lines.slice((page - 1) * size, page * size).map((l) => ({
    Trdd: l.trdd,
    Txtm: l.txtm,
    MnrcDrotDsnc: l.dsnc,
    Tram: formatKrw(l.tram),
    AftrBlnc: formatKrw(l.after < 0n ? -l.after : l.after),
    TrnsAfAcntBlncSmblCd: l.after < 0n ? '-' : '+',
    Smr: l.smr,
    HnisCd: HNIS_CD,
    HnbrCd: HNBR_CD,
    Ccyn: l.ccyn,
    Tuno: l.tuno,
    BnprCntn: l.printed,
  }));
  return {
    code: RPCD_OK,
    fields: { CtntDataYn: page * size < lines.length ? 'Y' : 'N', TotCnt: String(lines.length), Iqtcnt: String(rec.length), REC: rec },
  };
};

const openFinAccountDirect: Handler = (ctx, _h, b, now) => {
  const a = ctx.ledger.account(b['Bncd']!, b['Acno']!);
  const why = unusable(a, `account ${b['Bncd']}-${maskAccount(String(b['Acno'] ?? ''))}`);
  if (why) return { code: SIM.ACCOUNT, detail: why };
  return { code: RPCD_OK, fields: { Rgno: ctx.ledger.register(a!, b['BrdtBrno']!, b['DrtrRgyn'] === 'Y', now) } };
};

const checkOpenFinAccountDirect: Handler = (ctx, _h, b, now) => {
  const a = ctx.ledger.checkRegistration(b['Rgno']!, b['BrdtBrno']!, now);
  if (!a) return { code: SIM.REGISTRATION };
  return { code: RPCD_OK, fields: { FinAcno: a.finAcno, RgsnYmd: a.rgsnYmd } };
};

const HANDLERS: Readonly<Record<ApiNm, Handler>> = {
  DrawingTransfer: drawingTransfer,
  CheckOnDrawingTransfer: resultCheck(['DrawingTransfer'], ['FinAcno', 'Tram']),
  ReceivedTransferAccountNumber: receivedTransfer('ReceivedTransferAccountNumber'),
  ReceivedTransferOtherBank: receivedTransfer('ReceivedTransferOtherBank'),
  CheckOnReceivedTransfer: resultCheck(['ReceivedTransferAccountNumber', 'ReceivedTransferOtherBank'], ['Bncd', 'Acno', 'Tram']),
  InquireTransactionHistory: inquireTransactionHistory,
  InquireBalance: inquireBalance,
  OpenFinAccountDirect: openFinAccountDirect,
  CheckOpenFinAccountDirect: checkOpenFinAccountDirect,
};

/** The money-moving APIs (faults apply to these; to the others only with faultsOnInquiry). */
export const MONEY_APIS: readonly ApiNm[] = APIS.filter((a) => a === 'DrawingTransfer' || a.startsWith('ReceivedTransfer'));

/** YYYYMMDD one year before `ymd` (29 February → 28 February). */
export function oneYearBefore(ymd: string): string {
  const y = String(Number(ymd.slice(0, 4)) - 1).padStart(4, '0');
  const md = ymd.slice(4) === '0229' ? '0228' : ymd.slice(4);
  return y + md;
}
