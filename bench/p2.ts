import { createNhBankClient } from '../src/bank/client.js';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import type { BankSimulator } from '../src/bank-sim/simulator.js';
import { kstYmd } from '../src/nh/contract.js';
import { fintechApsnoOf, loanAccountNo } from '../src/seed.js';
import { TOKEN } from './context.js';
import { CHUNK_KRW, KIND } from './fixtures.js';

export interface P2Result {
  /** Calls actually made one after another; N·L is extrapolated from them. */
  sampleCalls: number;
  latencyMsMeasured: number;
  sequentialMsExtrapolated: number;
  speedup: number;
  target: number;
}

/**
 * P2: what the original system did — one payout after another with one NH
 * client (no limiter) against the same simulator latency. A sample of calls
 * gives the real per-call time L; N·L is compared with P1's wall.
 */
export async function runP2(sim: BankSimulator, n: number, p1WallMs: number, maxInFlight: number, sample = 40): Promise<P2Result> {
  const bank = createNhBankClient({
    baseUrl: sim.url,
    iscd: '000001',
    fintechApsno: '001',
    accessToken: TOKEN,
    perCallLimit: 100_000n,
    timeoutMs: 10_000,
  });
  // The loan accounts' fin-accounts, as fundSimulator registered them.
  const admin = simAdminClient(sim.url);
  const finAcnos = await Promise.all(Array.from({ length: 50 }, async (_, i) => (await admin.account('011', loanAccountNo(1 + i))).finAcno!));
  // Digits only, 18 long, starting with 1 like the database's transfer IsTunos.
  const run = `1${Date.now()}`;
  const pay = async (i: number) => {
    const r = await bank.transfer({
      purpose: 'payout',
      isTuno: `${run}${String(i).padStart(4, '0')}`,
      tsymd: kstYmd(new Date()),
      fintechApsno: fintechApsnoOf(KIND),
      finAcno: finAcnos[i % 50]!,
      amount: BigInt(CHUNK_KRW),
      memo: 'bench p2',
      sendable: true,
      resume: false,
    });
    if (r.status !== 'succeeded') throw new Error(`P2 sequential payout ${i}: ${JSON.stringify(r)}`);
  };
  try {
    for (let i = 0; i < 3; i++) await pay(9000 + i); // warm-up: connection, JIT
    const t0 = performance.now();
    for (let i = 0; i < sample; i++) await pay(i);
    const latency = (performance.now() - t0) / sample;
    const sequential = n * latency;
    return { sampleCalls: sample, latencyMsMeasured: latency, sequentialMsExtrapolated: sequential, speedup: sequential / p1WallMs, target: 0.9 * maxInFlight };
  } finally {
    bank.close();
  }
}
