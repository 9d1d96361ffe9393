/**
 * The NH Developers wire protocol shared by the client and the simulator:
 * `POST {baseUrl}/{ApiNm}.nh` with a JSON body whose `Header` identifies the call.
 *
 * | ApiNm                           | ApiSvcCd                  | used for                                  |
 * |---------------------------------|---------------------------|-------------------------------------------|
 * | `DrawingTransfer`               | `DrawingTransferA`        | payout: loan account → settlement account |
 * | `ReceivedTransferAccountNumber` | `ReceivedTransferA`       | withdrawal: settlement → corporate        |
 * | `CheckOnDrawingTransfer`        | `CheckOnDrawingTransferA` | result check of a DrawingTransfer         |
 * | `CheckOnReceivedTransfer`       | `CheckOnReceivedTransferA`| result check of a ReceivedTransfer…       |
 * | `InquireBalance`                | `ReceivedTransferA`       | balance of one account                    |
 * | `InquireTransactionHistory`     | `ReceivedTransferA`       | statement of one account                  |
 *
 * Our documented extensions to NH's bodies (NH fixes them by contract; we name them):
 * - `DrawingTransfer.CtrtAcno`: the contracted settlement account that receives the payout.
 * - `ReceivedTransferAccountNumber.FromAcno`: which of our accounts pays the withdrawal.
 * - `CheckOnReceivedTransfer.FromAcno`: the paying account of the original.
 * - transfer success responses carry `Prtm` (processing time, YYYYMMDDHHMMSS);
 *   inquiry responses carry `Tram` (the booked amount) and `Prtm`.
 * - `InquireTransactionHistory` records carry `IsTuno` and `Counterparty`.
 */
import type { TransferKind } from './types.js';

export const API = {
  DrawingTransfer: 'DrawingTransfer',
  ReceivedTransferAccountNumber: 'ReceivedTransferAccountNumber',
  CheckOnDrawingTransfer: 'CheckOnDrawingTransfer',
  CheckOnReceivedTransfer: 'CheckOnReceivedTransfer',
  InquireBalance: 'InquireBalance',
  InquireTransactionHistory: 'InquireTransactionHistory',
} as const;

export type ApiNm = (typeof API)[keyof typeof API];

export const API_SVC_CD: Readonly<Record<ApiNm, string>> = {
  DrawingTransfer: 'DrawingTransferA',
  ReceivedTransferAccountNumber: 'ReceivedTransferA',
  CheckOnDrawingTransfer: 'CheckOnDrawingTransferA',
  CheckOnReceivedTransfer: 'CheckOnReceivedTransferA',
  InquireBalance: 'ReceivedTransferA',
  InquireTransactionHistory: 'ReceivedTransferA',
};

export const ALL_APIS: readonly ApiNm[] = Object.values(API);

export function isApiNm(name: string): name is ApiNm {
  return Object.hasOwn(API_SVC_CD, name);
}

export const TRANSFER_API: Readonly<Record<TransferKind, ApiNm>> = {
  payout: API.DrawingTransfer,
  withdrawal: API.ReceivedTransferAccountNumber,
};

export const CHECK_API: Readonly<Record<TransferKind, ApiNm>> = {
  payout: API.CheckOnDrawingTransfer,
  withdrawal: API.CheckOnReceivedTransfer,
};

/** The inquiry API that checks a given transfer API, and back. */
export const CHECKED_BY: Readonly<Partial<Record<ApiNm, ApiNm>>> = {
  CheckOnDrawingTransfer: API.DrawingTransfer,
  CheckOnReceivedTransfer: API.ReceivedTransferAccountNumber,
};

export function isTransferApi(api: ApiNm): boolean {
  return api === API.DrawingTransfer || api === API.ReceivedTransferAccountNumber;
}

/** NH bank code of Nonghyup, used as `Bncd` for deposits to NH accounts. */
export const NH_BANK_CODE = '011';

/** IsTuno: 1..20 characters [0-9A-Za-z], unique per (Iscd, Tsymd) at the bank. */
export const IS_TUNO_PATTERN = /^[0-9A-Za-z]{1,20}$/;

export interface RequestHeader {
  ApiNm: ApiNm;
  Tsymd: string;
  Trtm: string;
  Iscd: string;
  FintechApsno: string;
  ApiSvcCd: string;
  IsTuno: string;
  AccessToken: string;
}

export interface ResponseHeader {
  ApiNm: string;
  Tsymd: string;
  Trtm: string;
  Iscd: string;
  FintechApsno: string;
  ApiSvcCd: string;
  IsTuno: string;
  Rpcd: string;
  Rsms: string;
}

export function apiPath(api: ApiNm): string {
  return `/${api}.nh`;
}
