import { kstYmd } from '../src/bank/kst.js';
import { createNhBankClient } from '../src/bank/nh-client.js';
import type { BankSimulator } from '../src/bank-sim/simulator.js';
import { loanAccountNo } from '../src/seed.js';
import { TOKEN } from './context.js';
import { CHUNK_KRW, SETTLEMENT_ACCOUNT } from './fixtures.js';

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
  const run = Date.now().toString(36).toUpperCase();
  const pay = async (i: number) => {
    const r = await bank.transfer({
      kind: 'payout',
      isTuno: `BP2${run}${String(i).padStart(4, '0')}`,
      tsymd: kstYmd(new Date()),
      from: loanAccountNo(1 + (i % 50)),
      to: SETTLEMENT_ACCOUNT,
      amount: BigInt(CHUNK_KRW),
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
