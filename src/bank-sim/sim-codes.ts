/**
 * The SIMULATOR's own response codes. NH publishes only `00000`; every other
 * Rpcd below is this simulator's invention, prefixed `S` so nobody mistakes it
 * for one of NH's. A real institution fills `settlement.bank_codes` from its NH
 * contract documents; `settle seed` / the tests fill it from this table
 * (served at `GET /_sim/codes`).
 *
 * `class` is the code's class for `settlement.bank_codes` (src/bank/port.ts
 * CodeClass): 'retry' = not processed, send again under the same IsTuno;
 * 'final' = refused, nothing booked, for good; 'not_found' = a result check
 * found no original; null = no class (the client resolves it by result check,
 * or it is a bug/configuration error that must surface).
 */
import { APIS, DUPLICATE_IS_TUNO_MESSAGE, RPCD_OK, type ApiNm } from '../nh/contract.js';

export type SimCodeClass = 'retry' | 'final' | 'not_found' | null;

export interface SimCode {
  readonly rpcd: string;
  readonly meaning: string;
  /** The Rsms the simulator answers with (details may be appended after ': '). */
  readonly rsms: string;
  readonly apis: readonly ApiNm[];
  readonly class: SimCodeClass;
}

const MONEY: readonly ApiNm[] = ['DrawingTransfer', 'ReceivedTransferAccountNumber', 'ReceivedTransferOtherBank'];
const CHECKS: readonly ApiNm[] = ['CheckOnDrawingTransfer', 'CheckOnReceivedTransfer'];

/** NH's published text for a normal answer. */
export const RSMS_OK = '정상처리 되었습니다.';

export const SIM = {
  BUSY: 'S0001',
  REFUSED_TOKEN: 'S0002',
  DUPLICATE: 'S0013',
  SYSTEM_ERROR: 'S0090',
  FUNDS: 'S0211',
  ACCOUNT: 'S0212',
  CONTRACT: 'S0213',
  REGISTRATION: 'S0214',
  LIMIT: 'S0220',
  LAYOUT: 'S0230',
  MISMATCH: 'S0231',
  NOT_FOUND: 'S0300',
  BANK_CODE: 'S0310',
} as const;
export type SimRpcd = (typeof SIM)[keyof typeof SIM];

export const SIM_CODES: readonly SimCode[] = [
  { rpcd: SIM.BUSY, meaning: 'simulator busy: in-flight cap reached, nothing processed', rsms: '[sim] busy, try again', apis: APIS, class: 'retry' },
  { rpcd: SIM.REFUSED_TOKEN, meaning: 'access token or Iscd refused, nothing processed', rsms: '[sim] access token or Iscd refused', apis: APIS, class: null },
  { rpcd: SIM.DUPLICATE, meaning: 'IsTuno already processed on this Tsymd (Rsms is NH\'s published text); ask with a result check', rsms: DUPLICATE_IS_TUNO_MESSAGE, apis: APIS, class: null },
  { rpcd: SIM.SYSTEM_ERROR, meaning: 'system error before processing, nothing processed', rsms: '[sim] system error, not processed', apis: APIS, class: 'retry' },
  { rpcd: SIM.FUNDS, meaning: 'insufficient funds in the paying account, nothing booked', rsms: '[sim] insufficient funds', apis: MONEY, class: 'final' },
  { rpcd: SIM.ACCOUNT, meaning: 'unknown, closed or unregistered account or fin-account', rsms: '[sim] unknown or unusable account', apis: [...MONEY, 'InquireBalance', 'InquireTransactionHistory', 'OpenFinAccountDirect'], class: 'final' },
  { rpcd: SIM.CONTRACT, meaning: 'no contracted account for (Iscd, FintechApsno)', rsms: '[sim] no contract for this Iscd and FintechApsno', apis: MONEY, class: 'final' },
  { rpcd: SIM.REGISTRATION, meaning: 'registration number unknown or BrdtBrno does not match it', rsms: '[sim] unknown registration', apis: ['CheckOpenFinAccountDirect'], class: 'final' },
  { rpcd: SIM.LIMIT, meaning: 'amount over the per-call limit of the contract', rsms: '[sim] over the per-call limit', apis: ['DrawingTransfer'], class: 'final' },
  { rpcd: SIM.LAYOUT, meaning: 'request outside the published layout (Rsms names the fields), nothing processed', rsms: '[sim] layout', apis: APIS, class: null },
  { rpcd: SIM.MISMATCH, meaning: 'result check: fields do not match the original transaction', rsms: '[sim] fields do not match the original', apis: CHECKS, class: null },
  { rpcd: SIM.NOT_FOUND, meaning: 'result check: no original under (Iscd, OrtrYmd, OrtrIsTuno)', rsms: '[sim] original transaction not found', apis: CHECKS, class: 'not_found' },
  { rpcd: SIM.BANK_CODE, meaning: 'statement not available for this bank code (only 011/012)', rsms: '[sim] statement not available for this bank code', apis: ['InquireTransactionHistory'], class: 'final' },
];

const BY_RPCD = new Map(SIM_CODES.map((c) => [c.rpcd, c]));

/** The Rsms for a code, with an optional detail; at most 100 characters (RESPONSE_HEADER). */
export function rsmsOf(rpcd: string, detail?: string): string {
  if (rpcd === RPCD_OK) return RSMS_OK;
  const base = BY_RPCD.get(rpcd)?.rsms ?? '[sim]';
  const text = detail && rpcd !== SIM.DUPLICATE ? `${base}: ${detail}` : base;
  const chars = [...text];
  return chars.length <= 100 ? text : chars.slice(0, 99).join('') + '…';
}

/** `GET /_sim/codes`. */
export function codesJson(): { codes: Array<{ rpcd: string; meaning: string; apis: string[]; class: string | null }> } {
  return { codes: SIM_CODES.map((c) => ({ rpcd: c.rpcd, meaning: c.meaning, apis: [...c.apis], class: c.class })) };
}
