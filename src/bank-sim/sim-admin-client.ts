/**
 * A typed client for the simulator's admin API (/_sim/...), for tests, the demo and
 * `settle seed` when BANK_URL points at a simulator.
 */
export interface SimTransfer {
  isTuno: string;
  tsymd: string;
  apiNm: string;
  from: string;
  to: string;
  amount: bigint;
  processedAt: string;
}

export interface SimAccountView {
  accountNo: string;
  balance: bigint;
  open: boolean;
}

export interface SimAdminClient {
  openAccounts(accounts: ReadonlyArray<{ accountNo: string; balance: bigint }>): Promise<void>;
  closeAccount(accountNo: string): Promise<void>;
  account(accountNo: string): Promise<SimAccountView>;
  transfers(): Promise<SimTransfer[]>;
  stats(): Promise<SimStatsView>;
  resetStats(): Promise<void>;
  configure(patch: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** `GET /_sim/stats` as JSON (amounts as strings). */
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

export function simAdminClient(baseUrl: string): SimAdminClient {
  const base = baseUrl.replace(/\/+$/, '');
  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(base + path, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const json: unknown = await res.json();
    if (!res.ok) throw new Error(`bank simulator ${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json as T;
  }
  return {
    async openAccounts(accounts) {
      await call('POST', '/_sim/accounts', {
        accounts: accounts.map((a) => ({ accountNo: a.accountNo, balance: a.balance.toString() })),
      });
    },
    async closeAccount(accountNo) {
      await call('POST', `/_sim/accounts/${encodeURIComponent(accountNo)}/close`);
    },
    async account(accountNo) {
      const a = await call<{ accountNo: string; balance: string; open: boolean }>('GET', `/_sim/accounts/${encodeURIComponent(accountNo)}`);
      return { accountNo: a.accountNo, balance: BigInt(a.balance), open: a.open };
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
  };
}
