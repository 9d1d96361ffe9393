/**
 * A typed client for the simulator's admin API (/_sim/..., see sim-admin.ts),
 * for tests, the demo, the benchmark and `settle seed`. Amounts are bigint here
 * and decimal strings on the wire. `adminToken` is sent as `authorization:
 * Bearer <token>` (needed when the simulator runs with --admin-token).
 */
import type { SimCodeClass } from './sim-codes.js';

export interface SimTransfer {
  isTuno: string;
  tsymd: string;
  api: string;
  /** Account numbers (Acno) of the paying and receiving accounts. */
  from: string;
  to: string;
  fromBncd: string;
  toBncd: string;
  amount: bigint;
  /** ISO timestamp of the booking (the simulator's clock). */
  processedAt: string;
  /** The bank's own transaction number, as printed on the statement. */
  tuno: string;
  /** Tuno of the admin cancellation, when cancelled. */
  cancelTuno: string | null;
}

export interface SimAccountView {
  bncd: string;
  acno: string;
  balance: bigint;
  finAcno: string | null;
  open: boolean;
}

export interface SimCodeView {
  rpcd: string;
  meaning: string;
  apis: string[];
  class: SimCodeClass;
}

/** `GET /_sim/stats` (amounts as strings). */
export interface SimStatsView {
  calls: number;
  callsByApi: Record<string, number>;
  booked: number;
  bookedAmount: string;
  rejected: Record<string, number>;
  faults: Record<string, number>;
  inFlight: number;
  maxInFlight: number;
  arrivals: number;
  maxArrivals: number;
}

export interface SimAdminClient {
  openAccounts(accounts: ReadonlyArray<{ bncd?: string; acno: string; balance: bigint }>): Promise<number>;
  account(bncd: string, acno: string): Promise<SimAccountView>;
  closeAccount(bncd: string, acno: string): Promise<void>;
  registerContracts(contracts: ReadonlyArray<{ iscd: string; fintechApsno: string; bncd: string; acno: string }>): Promise<number>;
  /** Admin shortcut for registering many fin-accounts (withdrawals allowed); `finAcno` forces a number. */
  registerFinAccounts(accounts: ReadonlyArray<{ bncd: string; acno: string; finAcno?: string }>): Promise<Array<{ bncd: string; acno: string; finAcno: string }>>;
  transfers(): Promise<SimTransfer[]>;
  stats(): Promise<SimStatsView>;
  resetStats(): Promise<void>;
  configure(patch: Record<string, unknown>): Promise<Record<string, unknown>>;
  codes(): Promise<SimCodeView[]>;
  /** Every API request received (AccessToken '***'), with when it arrived; needs the recordRequests option. */
  requests(): Promise<Array<{ api: string; body: unknown; at: string }>>;
  /** Books a cancellation of the transfer with this Tuno; the cancellation's Tuno. */
  cancel(tuno: string): Promise<string>;
}

export function simAdminClient(baseUrl: string, adminToken?: string): SimAdminClient {
  const base = baseUrl.replace(/\/+$/, '');
  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (adminToken !== undefined) headers['authorization'] = `Bearer ${adminToken}`;
    const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    if (!res.ok) throw new Error(`bank simulator ${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }
  const seg = encodeURIComponent;
  return {
    async openAccounts(accounts) {
      const r = await call<{ opened: number }>('POST', '/_sim/accounts', {
        accounts: accounts.map((a) => ({ ...(a.bncd === undefined ? {} : { bncd: a.bncd }), acno: a.acno, balance: a.balance.toString() })),
      });
      return r.opened;
    },
    async account(bncd, acno) {
      const a = await call<Omit<SimAccountView, 'balance'> & { balance: string }>('GET', `/_sim/accounts/${seg(bncd)}/${seg(acno)}`);
      return { ...a, balance: BigInt(a.balance) };
    },
    async closeAccount(bncd, acno) {
      await call('POST', `/_sim/accounts/${seg(bncd)}/${seg(acno)}/close`);
    },
    async registerContracts(contracts) {
      return (await call<{ registered: number }>('POST', '/_sim/contracts', { contracts })).registered;
    },
    async registerFinAccounts(accounts) {
      return (await call<{ accounts: Array<{ bncd: string; acno: string; finAcno: string }> }>('POST', '/_sim/fin-accounts', { accounts })).accounts;
    },
    async transfers() {
      const list = await call<Array<Omit<SimTransfer, 'amount'> & { amount: string }>>('GET', '/_sim/transfers');
      return list.map((t) => ({ ...t, amount: BigInt(t.amount) }));
    },
    stats: () => call<SimStatsView>('GET', '/_sim/stats'),
    async resetStats() {
      await call('POST', '/_sim/reset-stats');
    },
    configure: (patch) => call('POST', '/_sim/config', patch),
    async codes() {
      return (await call<{ codes: SimCodeView[] }>('GET', '/_sim/codes')).codes;
    },
    requests: () => call('GET', '/_sim/requests'),
    async cancel(tuno) {
      return (await call<{ cancelTuno: string }>('POST', '/_sim/cancel', { tuno })).cancelTuno;
    },
  };
}
