/**
 * The simulated NH API: one synchronous function per ApiNm from a parsed request
 * body to a reply. Timing and faults are the server's business (simulator.ts);
 * this file only decides what the bank answers and what it books.
 *
 * Checks, in order: Header present → Iscd and AccessToken (A0002) → Header fields
 * (A0230) → the API's own fields (A0230) → the ledger (A0013, A0220, A0212, A0211).
 * Only ledger outcomes use up an IsTuno. Inquiry, balance and history IsTunos are
 * not checked for uniqueness (keeping them would grow memory with every read).
 * The simulator books under the request's Header.Tsymd and does not compare it
 * with its own clock, so tests can play any date.
 */
import { isValidYmd, kstHms, kstStamp } from '../bank/kst.js';
import { parseKrw } from '../bank/money.js';
import { API, API_SVC_CD, CHECKED_BY, IS_TUNO_PATTERN, NH_BANK_CODE, type ApiNm } from '../bank/protocol.js';
import { RPCD, describeRpcd } from '../bank/rpcd.js';
import type { SimLedger } from './sim-ledger.js';
import type { SimStats } from './sim-stats.js';

export interface SimApiContext {
  ledger: SimLedger;
  stats: SimStats;
  perCallLimit: bigint;
  accessToken: string | undefined;
  iscd: string | undefined;
  now: () => Date;
}

export interface ApiReply {
  status: number;
  body: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function asObject(v: unknown): Json | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;
}

function str(o: Json, k: string): string | null {
  const v = o[k];
  return typeof v === 'string' ? v : null;
}

/** The response Header echoes the request's identifying fields, as NH does. */
function reply(req: Json | null, api: ApiNm, rpcd: string, rsms: string, fields: Json = {}): ApiReply {
  const h = asObject(req?.['Header']) ?? {};
  const echo = (k: string): string => str(h, k) ?? '';
  return {
    status: 200,
    body: {
      Header: {
        ApiNm: api,
        Tsymd: echo('Tsymd'),
        Trtm: echo('Trtm'),
        Iscd: echo('Iscd'),
        FintechApsno: echo('FintechApsno'),
        ApiSvcCd: echo('ApiSvcCd'),
        IsTuno: echo('IsTuno'),
        Rpcd: rpcd,
        Rsms: rsms,
      },
      ...fields,
    },
  };
}

export function codeReply(req: Json | null, api: ApiNm, rpcd: string, rsms = describeRpcd(rpcd)): ApiReply {
  return reply(req, api, rpcd, rsms);
}

interface Checked {
  req: Json;
  iscd: string;
  tsymd: string;
  isTuno: string;
}

function checkHeader(ctx: SimApiContext, api: ApiNm, req: Json): Checked | ApiReply {
  const h = asObject(req['Header']);
  if (!h) return invalid(ctx, req, api, 'Header missing');
  const iscd = str(h, 'Iscd');
  if ((ctx.iscd !== undefined && iscd !== ctx.iscd) || (ctx.accessToken !== undefined && str(h, 'AccessToken') !== ctx.accessToken)) {
    ctx.stats.rejected.token++;
    return codeReply(req, api, RPCD.INVALID_TOKEN);
  }
  const tsymd = str(h, 'Tsymd');
  const isTuno = str(h, 'IsTuno');
  if (str(h, 'ApiNm') !== api) return invalid(ctx, req, api, 'ApiNm does not match the URL');
  if (str(h, 'ApiSvcCd') !== API_SVC_CD[api]) return invalid(ctx, req, api, `ApiSvcCd must be ${API_SVC_CD[api]}`);
  if (iscd === null || iscd === '') return invalid(ctx, req, api, 'Iscd missing');
  if (tsymd === null || !isValidYmd(tsymd)) return invalid(ctx, req, api, 'Tsymd must be YYYYMMDD');
  if (!/^\d{6}$/.test(str(h, 'Trtm') ?? '')) return invalid(ctx, req, api, 'Trtm must be HHMMSS');
  if (isTuno === null || !IS_TUNO_PATTERN.test(isTuno)) return invalid(ctx, req, api, 'IsTuno must be 1..20 [0-9A-Za-z]');
  return { req, iscd, tsymd, isTuno };
}

function invalid(ctx: SimApiContext, req: Json | null, api: ApiNm, why: string): ApiReply {
  ctx.stats.rejected.invalid++;
  return codeReply(req, api, RPCD.INVALID_FIELD, `invalid field: ${why}`);
}

export function processApi(ctx: SimApiContext, api: ApiNm, body: unknown): ApiReply {
  const req = asObject(body);
  if (!req) return invalid(ctx, null, api, 'body is not a JSON object');
  const c = checkHeader(ctx, api, req);
  if ('status' in c) return c;
  switch (api) {
    case API.DrawingTransfer:
    case API.ReceivedTransferAccountNumber:
      return transfer(ctx, api, c);
    case API.CheckOnDrawingTransfer:
    case API.CheckOnReceivedTransfer:
      return checkOn(ctx, api, c);
    case API.InquireBalance:
      return balance(ctx, api, c);
    case API.InquireTransactionHistory:
      return history(ctx, api, c);
  }
}

function transfer(ctx: SimApiContext, api: ApiNm, c: Checked): ApiReply {
  const r = c.req;
  const payout = api === API.DrawingTransfer;
  const from = str(r, payout ? 'FinAcno' : 'FromAcno');
  const to = str(r, payout ? 'CtrtAcno' : 'Acno');
  const amount = parseKrw(r['Tram']);
  if (!from || !to) return invalid(ctx, r, api, 'account missing');
  if (from === to) return invalid(ctx, r, api, 'from and to are the same account');
  if (amount === null || amount === 0n) return invalid(ctx, r, api, 'Tram must be a positive decimal string');
  if (!payout && str(r, 'Bncd') !== NH_BANK_CODE) return invalid(ctx, r, api, `Bncd must be ${NH_BANK_CODE}`);

  const now = ctx.now();
  const code = ctx.ledger.transfer({
    iscd: c.iscd,
    apiNm: api,
    tsymd: c.tsymd,
    isTuno: c.isTuno,
    from,
    to,
    amount,
    memoOut: str(r, 'DractOtlt') ?? '',
    memoIn: str(r, 'MractOtlt') ?? '',
    perCallLimit: ctx.perCallLimit,
    now,
  });
  const s = ctx.stats;
  switch (code) {
    case RPCD.OK:
      s.booked++;
      s.bookedAmount += amount;
      return reply(r, api, RPCD.OK, describeRpcd(RPCD.OK), {
        ...(payout ? { FinAcno: from, RgsnYmd: c.tsymd } : {}),
        Prtm: kstStamp(now),
      });
    case RPCD.DUPLICATE:
      s.rejected.duplicate++;
      break;
    case RPCD.OVER_LIMIT:
      s.rejected.limit++;
      break;
    case RPCD.INVALID_ACCOUNT:
      s.rejected.account++;
      break;
    case RPCD.INSUFFICIENT_FUNDS:
      s.rejected.funds++;
      break;
  }
  return codeReply(r, api, code);
}

function checkOn(ctx: SimApiContext, api: ApiNm, c: Checked): ApiReply {
  const r = c.req;
  const ortrYmd = str(r, 'OrtrYmd');
  const ortrIsTuno = str(r, 'OrtrIsTuno');
  const account = str(r, api === API.CheckOnDrawingTransfer ? 'FinAcno' : 'FromAcno');
  if (!ortrYmd || !isValidYmd(ortrYmd) || !ortrIsTuno) return invalid(ctx, r, api, 'OrtrYmd and OrtrIsTuno required');
  if (!account) return invalid(ctx, r, api, 'account missing');
  const tx = ctx.ledger.lookup(c.iscd, ortrYmd, ortrIsTuno);
  if (!tx) {
    ctx.stats.rejected.notFound++;
    return codeReply(r, api, RPCD.NOT_FOUND);
  }
  // A record of another API or account is not "not found": answering A0300 here
  // would invite a resend of something that may be booked.
  if (CHECKED_BY[api] !== tx.apiNm) return invalid(ctx, r, api, `OrtrIsTuno belongs to ${tx.apiNm}`);
  if (account !== tx.from) return invalid(ctx, r, api, 'account does not match the original');
  return reply(r, api, RPCD.OK, describeRpcd(RPCD.OK), {
    OrtrYmd: ortrYmd,
    OrtrIsTuno: ortrIsTuno,
    Pcrs: tx.code,
    Prtm: kstStamp(tx.processedAt),
    Tram: tx.amount.toString(),
  });
}

function balance(ctx: SimApiContext, api: ApiNm, c: Checked): ApiReply {
  const accountNo = str(c.req, 'FinAcno');
  const acct = accountNo ? ctx.ledger.accounts.get(accountNo) : undefined;
  if (!acct) {
    ctx.stats.rejected.account++;
    return codeReply(c.req, api, RPCD.INVALID_ACCOUNT);
  }
  const b = acct.balance.toString();
  return reply(c.req, api, RPCD.OK, describeRpcd(RPCD.OK), { FinAcno: accountNo, Ldbl: b, RlpmAbamt: b });
}

const MAX_PAGE_SIZE = 1000;

function history(ctx: SimApiContext, api: ApiNm, c: Checked): ApiReply {
  const r = c.req;
  const accountNo = str(r, 'FinAcno');
  const fromYmd = str(r, 'Insymd');
  const toYmd = str(r, 'Ineymd');
  const pageNo = Number(str(r, 'PageNo') ?? '1');
  const pageSize = Number(str(r, 'Dmcnt') ?? '100');
  const order = str(r, 'Lnsq') ?? 'DESC';
  if (!fromYmd || !toYmd || !isValidYmd(fromYmd) || !isValidYmd(toYmd)) return invalid(ctx, r, api, 'Insymd/Ineymd must be YYYYMMDD');
  if (!Number.isInteger(pageNo) || pageNo < 1) return invalid(ctx, r, api, 'PageNo');
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) return invalid(ctx, r, api, 'Dmcnt');
  if (order !== 'ASC' && order !== 'DESC') return invalid(ctx, r, api, 'Lnsq must be ASC or DESC');
  if (!accountNo || !ctx.ledger.accounts.has(accountNo)) {
    ctx.stats.rejected.account++;
    return codeReply(r, api, RPCD.INVALID_ACCOUNT);
  }
  const all = ctx.ledger.statement(accountNo, fromYmd, toYmd);
  if (order === 'DESC') all.reverse();
  const page = all.slice((pageNo - 1) * pageSize, pageNo * pageSize);
  const rec = page.map((t) => {
    const out = t.from === accountNo;
    return {
      Trdd: t.tsymd,
      Txtm: kstHms(t.processedAt),
      MnrcDrotDsnc: out ? '2' : '1',
      Tram: t.amount.toString(),
      AftrBlnc: (out ? t.fromBalanceAfter : t.toBalanceAfter).toString(),
      Smr: out ? t.memoOut : t.memoIn,
      HnbrCd: NH_BANK_CODE,
      IsTuno: t.isTuno,
      Counterparty: out ? t.to : t.from,
    };
  });
  return reply(r, api, RPCD.OK, describeRpcd(RPCD.OK), {
    TotCnt: String(all.length),
    Iqtcnt: String(rec.length),
    PageNo: String(pageNo),
    CtntDataYn: pageNo * pageSize < all.length ? 'Y' : 'N',
    REC: rec,
  });
}
