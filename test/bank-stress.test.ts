/**
 * Chaos: 1,000 concurrent transfers against a simulator injecting every fault at
 * 5–8 % and refusing calls above its in-flight cap, with a client timeout of
 * 300 ms. Afterwards the bank's own books must agree with what the client
 * reported, to the won, and no IsTuno may be booked twice. A failing run prints
 * its seed; rerun with BANK_STRESS_SEED=<seed> to replay the faults.
 */
import t, { type Test } from 'tap';
import { createNhBankClient } from '../src/bank/nh-client.js';
import { createSemaphore } from '../src/bank/semaphore.js';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import { startBankSimulator } from '../src/bank-sim/simulator.js';
import type { BankLimiter, TransferRequest, TransferResult } from '../src/bank/types.js';

const N = 1000;
const LOANS = 50;
const SETTLE = '9000000001';
const DAY = '20250314';
/**
 * Like production (BANK_MAX_IN_FLIGHT), calls go through a limiter — set above the
 * simulator's cap so that busy answers happen. The second scenario has no
 * limiter: a thousand fresh connections at once in this one process take longer
 * than the 300 ms timeout just to be accepted, so most first calls time out
 * while the simulator still books them, and inquiries and resends race the
 * bookings (many "duplicate" answers). It must still end exactly-once.
 */
const CLIENT_IN_FLIGHT = 100;
const SIM_IN_FLIGHT = 50;


const seed = Number(process.env['BANK_STRESS_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

interface Scenario {
  limiter?: BankLimiter;
  latencyMs: number;
}

async function chaos(tt: Test, scenario: Scenario): Promise<void> {
  const sim = await startBankSimulator({
    seed,
    latencyMs: scenario.latencyMs,
    jitterMs: 5,
    maxInFlight: SIM_IN_FLIGHT,
    failBeforeRate: 0.08,
    timeoutAfterRate: 0.06,
    dropRate: 0.08,
    slowRate: 0.05,
    malformedRate: 0.08,
    slowMs: 100,
  });
  tt.teardown(() => sim.close());
  const admin = simAdminClient(sim.url);
  const loans = Array.from({ length: LOANS }, (_, i) => `30200000${String(i).padStart(4, '0')}`);
  await admin.openAccounts([...loans.map((accountNo) => ({ accountNo, balance: 100_000_000n })), { accountNo: SETTLE, balance: 0n }]);
  const client = createNhBankClient({
    baseUrl: sim.url,
    iscd: '000123',
    fintechApsno: '001',
    accessToken: 'any',
    perCallLimit: 100_000n,
    timeoutMs: 300,
    ...(scenario.limiter ? { limiter: scenario.limiter } : {}),
    now: () => new Date('2025-03-14T01:00:00Z'),
  });
  tt.teardown(() => client.close());

  // Amounts from a simple LCG on the seed, so a replay sends the same requests.
  let x = seed >>> 0;
  const requests: TransferRequest[] = Array.from({ length: N }, (_, i) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return { kind: 'payout', isTuno: `S${i}`, tsymd: DAY, from: loans[i % LOANS]!, to: SETTLE, amount: BigInt(1 + (x % 100_000)) };
  });
  const t0 = performance.now();
  const took: number[] = [];
  const results: TransferResult[] = await Promise.all(
    requests.map(async (r) => {
      const s0 = performance.now();
      const out = await client.transfer(r);
      took.push(performance.now() - s0);
      return out;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;

  // The bank's own truth, once it has decided every request it received (one
  // whose client gave up is still processed, and may book).
  await sim.whenIdle();
  const booked = await admin.transfers();
  const bookedCount = new Map<string, number>();
  for (const b of booked) bookedCount.set(b.isTuno, (bookedCount.get(b.isTuno) ?? 0) + 1);
  tt.equal(bookedCount.size, booked.length, 'no IsTuno is booked twice');

  let reportedSum = 0n;
  const unknown: TransferRequest[] = [];
  const counts = { succeeded: 0, failed: 0, unknown: 0 };
  requests.forEach((req, i) => {
    const r = results[i]!;
    counts[r.status]++;
    if (r.status === 'succeeded') {
      reportedSum += req.amount;
      if (bookedCount.get(req.isTuno) !== 1) tt.fail(`${req.isTuno} reported succeeded but booked ${bookedCount.get(req.isTuno) ?? 0} times`);
    } else if (r.status === 'failed') {
      if (bookedCount.has(req.isTuno)) tt.fail(`${req.isTuno} reported failed (${r.code}) but is booked`);
    } else {
      unknown.push(req);
    }
  });

  // Unknown results are settled by a later inquiry, with the faults and latency
  // off, a few at a time: each must agree with the bank's books.
  sim.configure({ failBeforeRate: 0, timeoutAfterRate: 0, dropRate: 0, slowRate: 0, malformedRate: 0, latencyMs: 0, jitterMs: 0 });
  const disagreements: string[] = [];
  for (let i = 0; i < unknown.length; i += 25) {
    const batch = unknown.slice(i, i + 25);
    const answers = await Promise.all(batch.map((req) => client.inquire(req)));
    batch.forEach((req, j) => {
      const q = answers[j]!;
      if (q.status === 'succeeded') reportedSum += req.amount;
      if ((q.status === 'succeeded') !== bookedCount.has(req.isTuno)) disagreements.push(`${req.isTuno}: ${q.status}`);
    });
  }
  tt.same(disagreements, [], `later inquiries of ${unknown.length} unknown outcomes agree with the bank`);

  const bookedSum = booked.reduce((s, b) => s + b.amount, 0n);
  tt.equal(bookedSum, reportedSum, 'booked amounts = amounts reported succeeded (to the won)');
  tt.equal((await admin.account(SETTLE)).balance, bookedSum, 'the settlement account holds exactly the booked sum');
  const stats = await admin.stats();
  tt.ok(stats.maxInFlight <= SIM_IN_FLIGHT, 'the cap held');
  if (scenario.limiter) tt.ok(stats.maxArrivals <= CLIENT_IN_FLIGHT, 'the client kept to its limiter');
  const faults = stats.faults as Record<string, number>;
  for (const f of ['failBefore', 'timeoutAfter', 'dropBefore', 'dropAfter', 'slow', 'malformed']) tt.ok(faults[f]! > 0, `fault ${f} happened (${faults[f]})`);
  const reasons = results.flatMap((r) => (r.status === 'unknown' ? [r.reason] : []));
  tt.comment(
    `seed ${seed}: ${JSON.stringify(counts)} in ${seconds.toFixed(1)} s; unknown reasons: ${JSON.stringify([...new Set(reasons)])}; calls ${stats.calls}, ` +
      `maxInFlight ${stats.maxInFlight}, slowest ${took.sort((a, b) => b - a).slice(0, 5).map(Math.round).join('/')} ms, busy ${stats.rejected['busy']}, duplicates ${stats.rejected['duplicate']}, faults ${JSON.stringify(faults)}`,
  );
}

t.test(`1,000 concurrent transfers under faults, through a limiter, stay exactly-once (seed ${seed})`, (tt) =>
  chaos(tt, { limiter: createSemaphore(CLIENT_IN_FLIGHT), latencyMs: 5 }),
);

t.test(`1,000 concurrent transfers with no limiter — a storm of timeouts — stay exactly-once (seed ${seed})`, (tt) =>
  chaos(tt, { latencyMs: 5 }),
);
