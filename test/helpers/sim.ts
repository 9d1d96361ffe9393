/**
 * A bank simulator with a small world (accounts, one contract, a fin-account)
 * and raw NH calls over HTTP, for test/bank-sim.test.ts and
 * test/nh-conformance.test.ts. No database.
 */
import { simAdminClient, type SimAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { startBankSimulator, type BankSimulator, type SimHooks, type SimOptionsInput } from '../../src/bank-sim/simulator.js';
import { defaultApiSvcCodes, kstHms, kstYmd, type ApiNm } from '../../src/nh/contract.js';

export const TOKEN = 'sim-token';
export const ISCD = '000123';
export const APSNO = '001';
export const LOAN = '3020000000001';
export const SETTLE = '3020000000100';
export const CORP = '3020000000200';
export const OTHER_BNCD = '004';
export const OTHER = '123456789012';
/** 10:15 KST on 2025-03-14. */
export const START = new Date('2025-03-14T01:15:00Z');

export type Json = Record<string, unknown>;
export interface Reply {
  status: number;
  body: Json;
  header: Json;
}

export interface World {
  sim: BankSimulator;
  admin: SimAdminClient;
  url: string;
  /** The simulator's clock: set `clock.now` to move it. */
  clock: { now: Date };
  /** LOAN's fin-account. */
  finAcno: string;
  /** One NH call; a fresh digits-only IsTuno unless the header says otherwise. */
  call(api: ApiNm, fields: Json, header?: Json): Promise<Reply>;
}

let isTunoSeq = 0;
export const nextIsTuno = (): string => String(1_000_000_000 + ++isTunoSeq);

export function request(api: ApiNm, fields: Json, header: Json = {}, now = START): Json {
  return {
    Header: {
      ApiNm: api,
      Tsymd: kstYmd(now),
      Trtm: kstHms(now),
      Iscd: ISCD,
      FintechApsno: APSNO,
      ApiSvcCd: defaultApiSvcCodes()[api],
      IsTuno: nextIsTuno(),
      AccessToken: TOKEN,
      ...header,
    },
    ...fields,
  };
}

export async function post(url: string, path: string, body: unknown): Promise<Reply> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed, header: (parsed['Header'] ?? {}) as Json };
}

export async function world(tt: { teardown(fn: () => unknown): void }, opts: SimOptionsInput = {}, hooks: Omit<SimHooks, 'now'> = {}): Promise<World> {
  const clock = { now: START };
  const sim = await startBankSimulator({ accessToken: TOKEN, ...opts }, { ...hooks, now: () => clock.now });
  tt.teardown(() => sim.close());
  const admin = simAdminClient(sim.url, opts.adminToken);
  await admin.openAccounts([
    { acno: LOAN, balance: 1_000_000n },
    { bncd: '011', acno: SETTLE, balance: 0n },
    { bncd: '012', acno: CORP, balance: 0n },
    { bncd: OTHER_BNCD, acno: OTHER, balance: 0n },
  ]);
  await admin.registerContracts([{ iscd: ISCD, fintechApsno: APSNO, bncd: '011', acno: SETTLE }]);
  const [fin] = await admin.registerFinAccounts([{ bncd: '011', acno: LOAN }]);
  return {
    sim,
    admin,
    url: sim.url,
    clock,
    finAcno: fin!.finAcno,
    call: (api, fields, header = {}) => post(sim.url, `/${api}.nh`, request(api, fields, header, clock.now)),
  };
}
