/**
 * NH Developers' JSON API as NH publishes it — the executable copy of
 * `../shared/NH-API.md`. The bank client (src/bank) builds requests from these
 * tables and the simulator (src/bank-sim) refuses anything outside them, so the
 * two cannot drift apart; the conformance test checks every request the client
 * sends against `checkRequest`.
 *
 * Only fields NH publishes are here. Where NH publishes nothing (response codes
 * other than 00000, the result checks' ApiSvcCd, what a result check answers for
 * a call the bank never received) nothing is hard-coded: those are settings or
 * rows of `settlement.bank_codes`.
 */

/** Every API this project calls, by `ApiNm` (also the URL path `/{ApiNm}.nh`). */
export const APIS = [
  'DrawingTransfer',
  'CheckOnDrawingTransfer',
  'ReceivedTransferAccountNumber',
  'ReceivedTransferOtherBank',
  'CheckOnReceivedTransfer',
  'InquireTransactionHistory',
  'InquireBalance',
  'OpenFinAccountDirect',
  'CheckOpenFinAccountDirect',
] as const;
export type ApiNm = (typeof APIS)[number];

export function isApiNm(name: string): name is ApiNm {
  return (APIS as readonly string[]).includes(name);
}

export function apiPath(api: ApiNm): string {
  return `/${api}.nh`;
}

/**
 * Default `ApiSvcCd` per API. `published: true` values are NH's; the others are
 * not published (the institution's contract documents give them) and default to
 * what public clients send. Every one is a setting (src/config.ts,
 * `BANK_SVC_<API>`), and the simulator accepts only the configured value.
 */
export const DEFAULT_API_SVC_CD: Readonly<Record<ApiNm, { code: string; published: boolean }>> = {
  DrawingTransfer: { code: 'DrawingTransferA', published: true },
  CheckOnDrawingTransfer: { code: 'DrawingTransferA', published: false },
  ReceivedTransferAccountNumber: { code: 'ReceivedTransferA', published: true },
  ReceivedTransferOtherBank: { code: 'ReceivedTransferA', published: false },
  CheckOnReceivedTransfer: { code: 'ReceivedTransferA', published: false },
  InquireTransactionHistory: { code: 'ReceivedTransferA', published: true },
  InquireBalance: { code: 'ReceivedTransferA', published: true },
  OpenFinAccountDirect: { code: 'DrawingTransferA', published: false },
  CheckOpenFinAccountDirect: { code: 'DrawingTransferA', published: false },
};

export type ApiSvcCodes = Readonly<Record<ApiNm, string>>;

export function defaultApiSvcCodes(): ApiSvcCodes {
  return Object.fromEntries(APIS.map((a) => [a, DEFAULT_API_SVC_CD[a].code])) as Record<ApiNm, string>;
}

/** `BANK_SVC_DRAWING_TRANSFER`, `BANK_SVC_CHECK_ON_DRAWING_TRANSFER`, ... */
export function apiSvcEnvName(api: ApiNm): string {
  return 'BANK_SVC_' + api.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

/** How a field's value must look. Lengths are maxima, counted in characters. */
export type FieldFormat =
  | 'digits' // 0-9 only
  | 'ymd' // YYYYMMDD, a real date
  | 'hms' // HHMMSS
  | 'amount' // KRW as a digit string, no sign, no leading zero (except "0")
  | 'text' // any printable text, no control characters
  | 'yn' // Y or N
  | 'code'; // letters, digits, underscore

export interface FieldSpec {
  readonly len: number;
  readonly required: boolean;
  readonly format: FieldFormat;
  /** When set, the value must be one of these. */
  readonly oneOf?: readonly string[];
}

const f = (len: number, required: boolean, format: FieldFormat, oneOf?: readonly string[]): FieldSpec =>
  oneOf ? { len, required, format, oneOf } : { len, required, format };

/** The request Header (every API). `AccessToken`'s length is not published. */
export const REQUEST_HEADER: Readonly<Record<string, FieldSpec>> = {
  ApiNm: f(100, true, 'code'),
  Tsymd: f(8, true, 'ymd'),
  Trtm: f(6, true, 'hms'),
  Iscd: f(6, true, 'digits'),
  FintechApsno: f(3, true, 'digits'),
  ApiSvcCd: f(20, true, 'code'),
  IsTuno: f(20, true, 'digits'),
  AccessToken: f(1000, true, 'text'),
};

/** The answer's Header: the request's echoed (without the token) plus the result. */
export const RESPONSE_HEADER: Readonly<Record<string, FieldSpec>> = {
  ApiNm: f(100, true, 'code'),
  Tsymd: f(8, true, 'ymd'),
  Trtm: f(6, true, 'hms'),
  Iscd: f(6, true, 'digits'),
  FintechApsno: f(3, true, 'digits'),
  ApiSvcCd: f(20, true, 'code'),
  IsTuno: f(20, true, 'digits'),
  Rpcd: f(5, true, 'code'),
  Rsms: f(100, false, 'text'),
};

/** NH's bank codes for its own accounts: 011 농협은행, 012 상호금융. */
export const NH_BANK_CODES: readonly string[] = ['011', '012'];

/** Request body fields per API (besides `Header`). */
export const REQUEST_FIELDS: Readonly<Record<ApiNm, Readonly<Record<string, FieldSpec>>>> = {
  DrawingTransfer: {
    FinAcno: f(30, true, 'digits'),
    Tram: f(15, true, 'amount'),
    DractOtlt: f(25, false, 'text'),
    // Published as "not used" for DrawingTransfer: a client sends nothing in it.
    MractOtlt: f(25, false, 'text'),
  },
  CheckOnDrawingTransfer: {
    FinAcno: f(30, true, 'digits'),
    Tram: f(15, true, 'amount'),
    OrtrYmd: f(8, true, 'ymd'),
    OrtrIsTuno: f(20, true, 'digits'),
  },
  ReceivedTransferAccountNumber: {
    Bncd: f(3, true, 'digits', NH_BANK_CODES),
    Acno: f(20, true, 'digits'),
    Tram: f(15, true, 'amount'),
    DractOtlt: f(25, false, 'text'),
    MractOtlt: f(25, false, 'text'),
  },
  ReceivedTransferOtherBank: {
    Bncd: f(3, true, 'digits'),
    Acno: f(20, true, 'digits'),
    Tram: f(15, true, 'amount'),
    DractOtlt: f(25, false, 'text'),
    MractOtlt: f(25, false, 'text'),
  },
  CheckOnReceivedTransfer: {
    Bncd: f(3, true, 'digits'),
    Acno: f(20, true, 'digits'),
    Tram: f(15, true, 'amount'),
    OrtrYmd: f(8, true, 'ymd'),
    OrtrIsTuno: f(20, true, 'digits'),
  },
  InquireTransactionHistory: {
    Bncd: f(3, true, 'digits'),
    Acno: f(20, true, 'digits'),
    Insymd: f(8, true, 'ymd'),
    Ineymd: f(8, true, 'ymd'),
    TrnsDsnc: f(1, false, 'code', ['A', 'M', 'D']),
    Lnsq: f(10, false, 'code', ['ASC', 'DESC']),
    PageNo: f(4, false, 'digits'),
    Dmcnt: f(10, true, 'digits'),
  },
  InquireBalance: {
    FinAcno: f(30, true, 'digits'),
  },
  OpenFinAccountDirect: {
    DrtrRgyn: f(1, true, 'yn'),
    BrdtBrno: f(10, true, 'digits'),
    Bncd: f(3, true, 'digits'),
    Acno: f(20, true, 'digits'),
  },
  CheckOpenFinAccountDirect: {
    Rgno: f(20, true, 'digits'),
    BrdtBrno: f(10, true, 'digits'),
  },
};

/** Answer body fields per API (besides `Header`). */
export const RESPONSE_FIELDS: Readonly<Record<ApiNm, Readonly<Record<string, FieldSpec>>>> = {
  DrawingTransfer: { FinAcno: f(30, true, 'digits'), RgsnYmd: f(8, true, 'ymd') },
  CheckOnDrawingTransfer: { Pcrs: f(5, true, 'code'), Prtm: f(6, true, 'hms') },
  ReceivedTransferAccountNumber: {},
  ReceivedTransferOtherBank: {},
  CheckOnReceivedTransfer: { Pcrs: f(5, true, 'code'), Prtm: f(6, true, 'hms') },
  InquireTransactionHistory: {
    CtntDataYn: f(1, true, 'yn'),
    TotCnt: f(10, false, 'digits'),
    Iqtcnt: f(10, true, 'digits'),
    // REC: an array of STATEMENT_LINE, checked separately.
  },
  InquireBalance: { FinAcno: f(30, true, 'digits'), Ldbl: f(15, true, 'amount'), RlpmAbamt: f(15, true, 'amount') },
  OpenFinAccountDirect: { Rgno: f(20, true, 'digits') },
  CheckOpenFinAccountDirect: { FinAcno: f(30, true, 'digits'), RgsnYmd: f(8, true, 'ymd') },
};

/** One line of `InquireTransactionHistory`'s `REC`. */
export const STATEMENT_LINE: Readonly<Record<string, FieldSpec>> = {
  Trdd: f(8, true, 'ymd'),
  Txtm: f(6, true, 'hms'),
  MnrcDrotDsnc: f(1, true, 'digits', ['1', '2', '3', '4']),
  Tram: f(15, true, 'amount'),
  AftrBlnc: f(15, true, 'amount'),
  TrnsAfAcntBlncSmblCd: f(1, false, 'text'),
  Smr: f(50, false, 'text'),
  HnisCd: f(3, false, 'text'),
  HnbrCd: f(7, false, 'text'),
  Ccyn: f(1, true, 'digits', ['0', '1']),
  Tuno: f(50, true, 'text'),
  BnprCntn: f(20, false, 'text'),
};

/** `MnrcDrotDsnc`: 1 opening deposit, 2 deposit, 3 withdrawal, 4 closing withdrawal. */
export const DEPOSIT_CODES: readonly string[] = ['1', '2'];
export const WITHDRAWAL_CODES: readonly string[] = ['3', '4'];

/** The only published response code: processed normally. */
export const RPCD_OK = '00000';
/** NH's published answer to a reused IsTuno (public clients match on this text). */
export const DUPLICATE_IS_TUNO_MESSAGE = '중복된 기관거래고유번호입니다. 다시 확인바랍니다.';
/** Lines per statement page, at most. */
export const DMCNT_MAX = 100;
/** Passbook texts: what we may send (`DractOtlt`/`MractOtlt`) and what a statement line prints (`BnprCntn`). */
export const MEMO_MAX = 25;
export const PRINTED_MAX = 20;
/** History: start at most a year back, period at most 3 months (92 days covers any 3 calendar months). */
export const HISTORY_MAX_DAYS = 92;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]/;

function formatOk(value: string, spec: FieldSpec): string | null {
  switch (spec.format) {
    case 'digits':
      return /^[0-9]+$/.test(value) ? null : 'must be digits only';
    case 'ymd':
      return isValidYmd(value) ? null : 'must be a date YYYYMMDD';
    case 'hms':
      return /^([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$/.test(value) ? null : 'must be a time HHMMSS';
    case 'amount':
      return /^(0|[1-9][0-9]*)$/.test(value) ? null : 'must be an amount in digits';
    case 'yn':
      return value === 'Y' || value === 'N' ? null : 'must be Y or N';
    case 'code':
      return /^[0-9A-Za-z_]+$/.test(value) ? null : 'must be letters, digits or _';
    case 'text':
      return CONTROL.test(value) ? 'must not contain control or zero-width characters' : null;
  }
}

/**
 * Problems of one object against a field table: unknown fields, missing required
 * fields, values that are not strings, too long, or of the wrong format. Empty
 * when the object follows the table exactly.
 */
export function checkFields(where: string, obj: unknown, table: Readonly<Record<string, FieldSpec>>, extra: readonly string[] = []): string[] {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return [`${where} must be a JSON object`];
  const problems: string[] = [];
  const o = obj as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!Object.hasOwn(table, key) && !extra.includes(key)) problems.push(`${where}.${key} is not a field of this API`);
  }
  for (const [key, spec] of Object.entries(table)) {
    const v = o[key];
    if (v === undefined || v === null || v === '') {
      if (spec.required) problems.push(`${where}.${key} is required`);
      continue;
    }
    if (typeof v !== 'string') {
      problems.push(`${where}.${key} must be a string`);
      continue;
    }
    if ([...v].length > spec.len) problems.push(`${where}.${key} is longer than ${spec.len} characters`);
    const bad = formatOk(v, spec);
    if (bad) problems.push(`${where}.${key} ${bad}`);
    if (spec.oneOf && !spec.oneOf.includes(v)) problems.push(`${where}.${key} must be one of ${spec.oneOf.join(', ')}`);
  }
  return problems;
}

/**
 * Everything wrong with a request body for `api` as NH publishes it (empty when
 * it conforms). `svcCodes` are the ApiSvcCd values in force.
 */
export function checkRequest(api: ApiNm, body: unknown, svcCodes: ApiSvcCodes = defaultApiSvcCodes()): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['the body must be a JSON object'];
  const { Header, ...fields } = body as Record<string, unknown>;
  const problems = checkFields('Header', Header, REQUEST_HEADER);
  if (problems.length === 0) {
    const h = Header as Record<string, string>;
    if (h['ApiNm'] !== api) problems.push(`Header.ApiNm must be ${api} (the path), got ${h['ApiNm']}`);
    if (h['ApiSvcCd'] !== svcCodes[api]) problems.push(`Header.ApiSvcCd must be ${svcCodes[api]} for ${api}, got ${h['ApiSvcCd']}`);
  }
  problems.push(...checkFields('body', fields, REQUEST_FIELDS[api]));
  if (problems.length === 0) problems.push(...checkSemantics(api, fields as Record<string, string>));
  return problems;
}

/** Rules between fields that the tables cannot say. */
function checkSemantics(api: ApiNm, b: Record<string, string>): string[] {
  const p: string[] = [];
  if (api === 'InquireTransactionHistory') {
    const n = Number(b['Dmcnt']);
    if (!(n >= 1 && n <= DMCNT_MAX)) p.push(`body.Dmcnt must be 1..${DMCNT_MAX}`);
    if (b['PageNo'] !== undefined && Number(b['PageNo']) < 1) p.push('body.PageNo must be at least 1');
    const from = b['Insymd']!;
    const to = b['Ineymd']!;
    if (from > to) p.push('body.Insymd must not be after body.Ineymd');
    else if (daysBetween(from, to) > HISTORY_MAX_DAYS) p.push('body.Insymd..Ineymd must span at most 3 months');
  }
  if (api === 'ReceivedTransferOtherBank' && NH_BANK_CODES.includes(b['Bncd']!)) {
    p.push('body.Bncd is an NH bank code: use ReceivedTransferAccountNumber');
  }
  if ((api === 'DrawingTransfer' || api === 'ReceivedTransferAccountNumber' || api === 'ReceivedTransferOtherBank') && b['Tram'] === '0') {
    p.push('body.Tram must be more than 0');
  }
  return p;
}

/** Everything wrong with an answer to `api` (empty when it has the published shape). */
export function checkResponse(api: ApiNm, body: unknown): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['the answer must be a JSON object'];
  const { Header, REC, ...fields } = body as Record<string, unknown>;
  const problems = checkFields('Header', Header, RESPONSE_HEADER);
  const ok = problems.length === 0 && (Header as Record<string, string>)['Rpcd'] === RPCD_OK;
  // A refusal carries the header alone; only a normal answer has the body.
  if (!ok) return problems;
  problems.push(...checkFields('body', fields, RESPONSE_FIELDS[api]));
  if (api === 'InquireTransactionHistory') {
    if (!Array.isArray(REC)) problems.push('body.REC must be an array');
    else {
      if (REC.length > DMCNT_MAX) problems.push(`body.REC has more than ${DMCNT_MAX} lines`);
      REC.forEach((line, i) => problems.push(...checkFields(`REC[${i}]`, line, STATEMENT_LINE)));
    }
  } else if (REC !== undefined) problems.push('body.REC is not a field of this API');
  return problems;
}

// ---------------------------------------------------------------------------
// Dates and money as NH writes them.

const KST_OFFSET_MS = 9 * 60 * 60 * 1000;
const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** YYYYMMDD in Korea time (no daylight saving since 1988: a fixed +09:00). */
export function kstYmd(at: Date): string {
  const k = new Date(at.getTime() + KST_OFFSET_MS);
  return `${pad(k.getUTCFullYear(), 4)}${pad(k.getUTCMonth() + 1, 2)}${pad(k.getUTCDate(), 2)}`;
}

/** HHMMSS in Korea time. */
export function kstHms(at: Date): string {
  const k = new Date(at.getTime() + KST_OFFSET_MS);
  return `${pad(k.getUTCHours(), 2)}${pad(k.getUTCMinutes(), 2)}${pad(k.getUTCSeconds(), 2)}`;
}

/** True when `ymd` is a real calendar date written as YYYYMMDD. */
export function isValidYmd(ymd: string): boolean {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(ymd);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}` === ymd;
}

/** Whole days from one YYYYMMDD to another. */
export function daysBetween(from: string, to: string): number {
  const t = (s: string) => Date.UTC(Number(s.slice(0, 4)), Number(s.slice(4, 6)) - 1, Number(s.slice(6, 8)));
  return Math.round((t(to) - t(from)) / 86_400_000);
}

/** ISO date (YYYY-MM-DD) ↔ NH date (YYYYMMDD). */
export const ymdOf = (isoDate: string): string => isoDate.replaceAll('-', '');
export const isoOf = (ymd: string): string => `${ymd.slice(0, 4)}-${ymd.slice(4, 6)}-${ymd.slice(6, 8)}`;

/**
 * KRW on the wire is a decimal string. Parsed strictly into bigint (no sign,
 * decimal point, exponent or whitespace): a lenient parse would turn a garbled
 * amount into money.
 */
export function parseKrw(value: unknown): bigint | null {
  if (typeof value !== 'string' || value.length > 15 || !/^(0|[1-9][0-9]*)$/.test(value)) return null;
  return BigInt(value);
}

export function formatKrw(amount: bigint): string {
  if (amount < 0n) throw new RangeError('KRW on the wire is never negative');
  return amount.toString(10);
}
