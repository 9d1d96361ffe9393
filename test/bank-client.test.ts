/**
 * The NH client's exactly-once rules against the real simulator over HTTP. Each
 * test starts its own simulator on a random port and closes it. Faults are forced
 * deterministically: a fault rate of 1 for exactly the calls under test, switched
 * off from inside the limiter (which sees every HTTP call) once enough calls went.
 */
import t from 'tap';
import http from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BankConsistencyError, BankInputError, BankRejectedError } from '../src/bank/errors.js';
import { createNhBankClient, type NhBankClientOptions } from '../src/bank/nh-client.js';
import { CLIENT_CODES } from '../src/bank/rpcd.js';
import { createSemaphore } from '../src/bank/semaphore.js';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import { mulberry32 } from '../src/bank-sim/sim-rng.js';
import { planRequest } from '../src/bank-sim/sim-faults.js';
import { runtimeConfigOf, parseSimOptions, type SimOptionsInput } from '../src/bank-sim/sim-options.js';
import { startBankSimulator, type BankSimulator } from '../src/bank-sim/simulator.js';
import type { BankLimiter, TransferRequest } from '../src/bank/types.js';

const TOKEN = 'test-token-7f3a9c';
const ISCD = '000123';
/** 2025-03-14 10:00 KST: a fixed clock, so dates do not depend on when tests run. */
const DAY = '20250314';
const AT_10AM = new Date('2025-03-14T01:00:00Z');
const LOAN = '3020000001001';
const LOAN2 = '3020000001002';
const SETTLE = '3020000009001';
const CORP = '3020000009002';

interface Harness {
  sim: BankSimulator;
  admin: ReturnType<typeof simAdminClient>;
  client: ReturnType<typeof createNhBankClient>;
}

/** Starts a funded simulator and a client for it; both are closed when the test ends. */
async function harness(
  tt: { teardown(fn: () => unknown): void },
  simOpts: SimOptionsInput = {},
  clientOpts: Partial<NhBankClientOptions> = {},
): Promise<Harness> {
  const sim = await startBankSimulator({ accessToken: TOKEN, iscd: ISCD, ...simOpts });
  const admin = simAdminClient(sim.url);
  await admin.openAccounts([
    { accountNo: LOAN, balance: 1_000_000n },
    { accountNo: LOAN2, balance: 1_000n },
    { accountNo: SETTLE, balance: 0n },
    { accountNo: CORP, balance: 0n },
  ]);
  const client = createNhBankClient({
    baseUrl: sim.url,
    iscd: ISCD,
    fintechApsno: '001',
    accessToken: TOKEN,
    perCallLimit: 100_000n,
    timeoutMs: 1_000,
    retries: 6,
    minBackoffMs: 5,
    maxBackoffMs: 50,
    now: () => AT_10AM,
    ...clientOpts,
  });
  tt.teardown(async () => {
    client.close();
    await sim.close();
  });
  return { sim, admin, client };
}

/** A limiter that calls `after(n)` when the n-th HTTP call has finished. */
function countingLimiter(after: (n: number) => void): BankLimiter & { calls: () => number } {
  let n = 0;
  return {
    calls: () => n,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      try {
        return await fn();
      } finally {
        after(++n);
      }
    },
  };
}

function payout(isTuno: string, amount: bigint, over: Partial<TransferRequest> = {}): TransferRequest {
  return { kind: 'payout', isTuno, tsymd: DAY, from: LOAN, to: SETTLE, amount, memo: 'tax', ...over };
}

/** The first seed (from 1) whose first transfer request gets `fault` at rate 1. */
function seedWhoseFirstDropIs(fault: 'dropBefore' | 'dropAfter'): number {
  const cfg = runtimeConfigOf(parseSimOptions({ dropRate: 1 }));
  for (let seed = 1; seed < 1000; seed++) {
    if (planRequest(mulberry32(seed), cfg, true).fault === fault) return seed;
  }
  throw new Error(`no seed gives ${fault}`);
}

t.test('a DrawingTransfer moves the money once and is resolved by the call', async (tt) => {
  const { client, admin } = await harness(tt);
  const r = await client.transfer(payout('P1', 70_000n));
  tt.match(r, { status: 'succeeded', bankRef: `${DAY}:P1`, resolvedBy: 'call' });
  tt.equal((await admin.account(LOAN)).balance, 930_000n);
  tt.equal((await admin.account(SETTLE)).balance, 70_000n);
  const transfers = await admin.transfers();
  tt.same(
    transfers.map((x) => [x.isTuno, x.apiNm, x.from, x.to, x.amount]),
    [['P1', 'DrawingTransfer', LOAN, SETTLE, 70_000n]],
  );
  tt.equal(await client.balance(SETTLE), 70_000n);
});

t.test('a ReceivedTransferAccountNumber withdrawal moves the money once', async (tt) => {
  const { client, admin } = await harness(tt);
  await client.transfer(payout('P1', 50_000n));
  const r = await client.transfer({ kind: 'withdrawal', isTuno: 'W1', tsymd: DAY, from: SETTLE, to: CORP, amount: 50_000n });
  tt.match(r, { status: 'succeeded', resolvedBy: 'call' });
  tt.equal((await admin.account(SETTLE)).balance, 0n);
  tt.equal((await admin.account(CORP)).balance, 50_000n);
  const stats = await admin.stats();
  tt.equal(stats.callsByApi['ReceivedTransferAccountNumber'], 1);
  const lines = await client.history(SETTLE, DAY, DAY);
  tt.same(
    lines.map((l) => [l.isTuno, l.direction, l.amount, l.counterparty]),
    [
      ['P1', 'in', 50_000n, LOAN],
      ['W1', 'out', 50_000n, CORP],
    ],
  );
});

t.test('an error before processing is retried under the same IsTuno and booked once', async (tt) => {
  let sim!: BankSimulator;
  const limiter = countingLimiter((n) => n === 2 && sim.configure({ failBeforeRate: 0 }));
  const h = await harness(tt, { failBeforeRate: 1 }, { limiter });
  sim = h.sim;
  const r = await h.client.transfer(payout('P2', 10_000n));
  tt.match(r, { status: 'succeeded', resolvedBy: 'call' });
  const stats = await h.admin.stats();
  tt.equal(stats.faults['failBefore'], 2);
  tt.equal(stats.callsByApi['DrawingTransfer'], 3, 'two refusals, then the booking');
  tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 0, 'A0090 is known not to be processed: no inquiry');
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), ['P2']);
});

t.test('a timeout after booking is resolved by inquiry, with exactly one booking', async (tt) => {
  const { client, admin } = await harness(tt, { timeoutAfterRate: 1 }, { timeoutMs: 150 });
  const r = await client.transfer(payout('P3', 20_000n));
  tt.match(r, { status: 'succeeded', bankRef: `${DAY}:P3`, resolvedBy: 'inquiry' });
  tt.type((r as { processedAt: string | null }).processedAt, 'string');
  const stats = await admin.stats();
  tt.equal(stats.faults['timeoutAfter'], 1);
  tt.equal(stats.callsByApi['DrawingTransfer'], 1, 'never sent twice: the inquiry found it');
  tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 1);
  tt.equal((await admin.transfers()).length, 1);
  tt.equal((await admin.account(SETTLE)).balance, 20_000n);
});

for (const fault of ['dropBefore', 'dropAfter'] as const) {
  t.test(`a connection dropped ${fault === 'dropBefore' ? 'before' : 'after'} booking ends in exactly one booking`, async (tt) => {
    let sim!: BankSimulator;
    const limiter = countingLimiter((n) => n === 1 && sim.configure({ dropRate: 0 }));
    const h = await harness(tt, { dropRate: 1, seed: seedWhoseFirstDropIs(fault) }, { limiter });
    sim = h.sim;
    const r = await h.client.transfer(payout('P4', 30_000n));
    const stats = await h.admin.stats();
    tt.equal(stats.faults[fault], 1);
    tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 1, 'a lost answer is resolved by inquiry');
    if (fault === 'dropBefore') {
      tt.match(r, { status: 'succeeded', resolvedBy: 'call' }, 'not found → sent again under the same IsTuno');
      tt.equal(stats.callsByApi['DrawingTransfer'], 2);
    } else {
      tt.match(r, { status: 'succeeded', resolvedBy: 'inquiry' });
      tt.equal(stats.callsByApi['DrawingTransfer'], 1);
    }
    tt.same((await h.admin.transfers()).map((x) => [x.isTuno, x.amount]), [['P4', 30_000n]]);
  });
}

t.test('a malformed answer is resolved by inquiry (both kinds of garbage)', async (tt) => {
  // Every API request draws one plan in arrival order: transfer, inquiry,
  // transfer, ... So transfers get the even draws; pick a seed whose first two
  // transfers get one garbage kind each.
  const cfg = runtimeConfigOf(parseSimOptions({ malformedRate: 1 }));
  const kindsOf = (seed: number): string[] => {
    const rng = mulberry32(seed);
    return Array.from({ length: 4 }, () => planRequest(rng, cfg, true).malformedKind).filter((_, i) => i % 2 === 0);
  };
  let seed = 1;
  while (new Set(kindsOf(seed)).size < 2) seed++;
  const { client, admin, sim } = await harness(tt, { malformedRate: 1, seed });
  for (const isTuno of ['M1', 'M2']) {
    tt.match(await client.transfer(payout(isTuno, 1_000n)), { status: 'succeeded', resolvedBy: 'inquiry' }, isTuno);
  }
  tt.same((await admin.transfers()).map((x) => x.isTuno), ['M1', 'M2']);
  tt.equal(sim.state.stats.faults.malformed, 2);
  tt.equal(sim.state.stats.callsByApi['DrawingTransfer'], 2);
});

t.test('busy answers are backed off and the transfers still succeed', async (tt) => {
  const { client, admin } = await harness(tt, { maxInFlight: 1, latencyMs: 60 });
  const rs = await Promise.all([client.transfer(payout('B1', 1_000n)), client.transfer(payout('B2', 1_000n)), client.transfer(payout('B3', 1_000n))]);
  for (const r of rs) tt.match(r, { status: 'succeeded', resolvedBy: 'call' });
  const stats = await admin.stats();
  tt.ok(stats.rejected['busy']! >= 2, `busy answers: ${stats.rejected['busy']}`);
  tt.equal(stats.maxInFlight, 1);
  tt.equal((await admin.transfers()).length, 3);
});

t.test('a slow answer within the timeout succeeds without an inquiry', async (tt) => {
  const { client, admin } = await harness(tt, { slowRate: 1, slowMs: 150 }, { timeoutMs: 1_000 });
  const started = performance.now();
  const r = await client.transfer(payout('S1', 5_000n));
  tt.ok(performance.now() - started >= 140, 'it was slow');
  tt.match(r, { status: 'succeeded', resolvedBy: 'call' });
  const stats = await admin.stats();
  tt.equal(stats.faults['slow'], 1);
  tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 0);
});

t.test('insufficient funds: failed, nothing booked; the same call again is a duplicate resolved as failed', async (tt) => {
  const { client, admin } = await harness(tt);
  const req: TransferRequest = { ...payout('F1', 5_000n), from: LOAN2 };
  tt.match(await client.transfer(req), { status: 'failed', code: 'A0211' });
  tt.match(await client.transfer(req), { status: 'failed', code: 'A0211' }, 'A0013 → inquiry → the original failed');
  const stats = await admin.stats();
  tt.equal(stats.rejected['duplicate'], 1);
  tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 1);
  tt.equal((await admin.transfers()).length, 0);
  tt.equal((await admin.account(LOAN2)).balance, 1_000n);
});

t.test('invalid or closed account: failed with A0212, nothing booked, same on retry', async (tt) => {
  const { client, admin } = await harness(tt);
  await admin.closeAccount(SETTLE);
  const req = payout('F2', 5_000n);
  tt.match(await client.transfer(req), { status: 'failed', code: 'A0212' });
  tt.match(await client.transfer(req), { status: 'failed', code: 'A0212' });
  tt.match(await client.transfer(payout('F3', 5_000n, { to: '999999' })), { status: 'failed', code: 'A0212' });
  tt.equal((await admin.transfers()).length, 0);
  tt.equal((await admin.account(LOAN)).balance, 1_000_000n);
});

t.test('a reused IsTuno after success is reported succeeded by inquiry, still one booking', async (tt) => {
  const { client, admin } = await harness(tt);
  tt.match(await client.transfer(payout('R1', 9_000n)), { status: 'succeeded', resolvedBy: 'call' });
  tt.match(await client.transfer(payout('R1', 9_000n)), { status: 'succeeded', bankRef: `${DAY}:R1`, resolvedBy: 'inquiry' });
  tt.equal((await admin.transfers()).length, 1);
  tt.equal((await admin.account(SETTLE)).balance, 9_000n);
});

t.test('an IsTuno booked for another amount is a named error, never a second booking', async (tt) => {
  const { client, admin } = await harness(tt);
  await client.transfer(payout('X1', 9_000n));
  await tt.rejects(client.transfer(payout('X1', 8_000n)), BankConsistencyError);
  tt.equal((await admin.transfers()).length, 1);
});

t.test('bad input is refused before any HTTP call', async (tt) => {
  const { client, admin } = await harness(tt);
  const cases: Array<[Partial<TransferRequest>, string]> = [
    [{ amount: 100_001n }, 'over_per_call_limit'],
    [{ amount: 0n }, 'invalid_amount'],
    [{ amount: -5n }, 'invalid_amount'],
    [{ amount: 5 as unknown as bigint }, 'invalid_amount'],
    [{ isTuno: 'has-dash' }, 'invalid_is_tuno'],
    [{ isTuno: '' }, 'invalid_is_tuno'],
    [{ isTuno: 'A'.repeat(21) }, 'invalid_is_tuno'],
    [{ tsymd: '2025-03-14' }, 'invalid_tsymd'],
    [{ tsymd: '20250230' }, 'invalid_tsymd'],
    [{ to: LOAN }, 'invalid_account'],
    [{ kind: 'refund' as 'payout' }, 'invalid_kind'],
  ];
  for (const [over, code] of cases) {
    await tt.rejects(client.transfer(payout('V1', 1_000n, over)), { name: 'BankInputError', code }, code);
  }
  await tt.rejects(client.history(LOAN, '20250315', '20250314'), BankInputError);
  tt.equal((await admin.stats()).calls, 0, 'the simulator saw no call at all');
});

t.test('a bad access token is a final failure (A0002) and books nothing', async (tt) => {
  const { client, admin } = await harness(tt, {}, { accessToken: 'wrong-token' });
  tt.match(await client.transfer(payout('T1', 1_000n)), { status: 'failed', code: 'A0002' });
  const stats = await admin.stats();
  tt.equal(stats.rejected['token'], 1);
  tt.equal(stats.callsByApi['DrawingTransfer'], 1, 'no retry of a final code');
  tt.equal((await admin.transfers()).length, 0);
});

t.test('an inquiry about an unknown IsTuno answers not_found', async (tt) => {
  const { client } = await harness(tt);
  tt.same(await client.inquire({ kind: 'payout', isTuno: 'NEVER1', tsymd: DAY, from: LOAN }), { status: 'not_found' });
  tt.same(await client.inquire({ kind: 'withdrawal', isTuno: 'NEVER2', tsymd: DAY, from: SETTLE }), { status: 'not_found' });
});

t.test('an inquiry names the original date: a booking of another day is not found', async (tt) => {
  const { client } = await harness(tt);
  await client.transfer(payout('D1', 1_000n));
  tt.match(await client.inquire({ kind: 'payout', isTuno: 'D1', tsymd: DAY, from: LOAN }), { status: 'succeeded', amount: 1_000n });
  tt.same(await client.inquire({ kind: 'payout', isTuno: 'D1', tsymd: '20250313', from: LOAN }), { status: 'not_found' });
  tt.match(
    await client.inquire({ kind: 'withdrawal', isTuno: 'D1', tsymd: DAY, from: LOAN }),
    { status: 'unknown' },
    'a record of another API is never read as not found',
  );
});

t.test('after midnight a transfer is never sent again; only the original date is asked', async (tt) => {
  const NEXT_DAY_0005 = new Date('2025-03-14T15:05:00Z'); // 00:05 KST on the 15th
  const NEXT_DAY_0100 = new Date('2025-03-14T16:00:00Z'); // 01:00 KST on the 15th
  let now = AT_10AM;
  const { client, admin } = await harness(tt, {}, { now: () => now, expiryGraceMs: 30 * 60_000 });
  await client.transfer(payout('N1', 1_000n));
  await client.transfer({ ...payout('N2', 5_000n), from: LOAN2, amount: 5_000n });

  now = NEXT_DAY_0005;
  tt.match(await client.transfer(payout('N1', 1_000n)), { status: 'succeeded', resolvedBy: 'inquiry' }, 'booked yesterday');
  tt.match(await client.transfer({ ...payout('N2', 5_000n), from: LOAN2 }), { status: 'failed', code: 'A0211' }, 'failed yesterday');
  tt.match(await client.transfer(payout('N3', 1_000n)), { status: 'unknown' }, 'never sent, within the grace period');
  now = NEXT_DAY_0100;
  tt.match(await client.transfer(payout('N3', 1_000n)), { status: 'failed', code: CLIENT_CODES.EXPIRED_NOT_BOOKED }, 'after the grace');

  const stats = await admin.stats();
  tt.equal(stats.callsByApi['DrawingTransfer'], 2, 'only the two calls made on the day itself');
  tt.equal(stats.callsByApi['CheckOnDrawingTransfer'], 4);
  tt.equal((await admin.transfers()).length, 1);
});

t.test('midnight passing between retries stops the sending', async (tt) => {
  let now = new Date('2025-03-14T14:59:59Z'); // 23:59:59 KST
  let sim!: BankSimulator;
  const limiter = countingLimiter((n) => {
    if (n === 1) now = new Date('2025-03-14T15:00:01Z'); // 00:00:01 KST next day
  });
  const h = await harness(tt, { failBeforeRate: 1 }, { limiter, now: () => now });
  sim = h.sim;
  const r = await h.client.transfer(payout('M1', 1_000n, { tsymd: DAY }));
  tt.match(r, { status: 'unknown' });
  tt.equal(sim.state.stats.callsByApi['DrawingTransfer'], 1, 'the retry after midnight was not sent');
  tt.equal(sim.state.stats.callsByApi['CheckOnDrawingTransfer'], 1);
});

t.test('a transfer dated ahead of the clock is not sent', async (tt) => {
  const { client, admin } = await harness(tt);
  tt.match(await client.transfer(payout('A1', 1_000n, { tsymd: '20250315' })), { status: 'unknown' });
  tt.equal((await admin.stats()).calls, 0);
});

t.test('the limiter wraps every call and holds the global in-flight limit', async (tt) => {
  const CAP = 4;
  const limiter = createSemaphore(CAP);
  const { client, admin } = await harness(tt, { latencyMs: 10, timeoutAfterRate: 0.2 }, { limiter, timeoutMs: 100 });
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => client.transfer(payout(`L${i}`, 1_000n))));
  for (const r of rs) tt.equal(r.status, 'succeeded');
  const stats = await admin.stats();
  tt.ok(stats.maxArrivals <= CAP, `at most ${CAP} calls reached the bank at once (saw ${stats.maxArrivals})`);
  tt.equal(limiter.most(), CAP);
  tt.equal((await admin.transfers()).length, 40);
});

t.test('a limiter failure before sending is retried like a refused connection', async (tt) => {
  let failures = 1;
  const limiter: BankLimiter = {
    async run(fn) {
      if (failures-- > 0) throw new Error('no slot');
      return fn();
    },
  };
  const { client, admin } = await harness(tt, {}, { limiter });
  tt.match(await client.transfer(payout('LF1', 1_000n)), { status: 'succeeded', resolvedBy: 'call' });
  tt.equal((await admin.stats()).calls, 1);
});

/**
 * A gateway in front of the simulator: `rule(n, body)` decides, per request,
 * whether to forward it (possibly rewritten) and what to answer.
 */
async function gateway(
  tt: { teardown(fn: () => unknown): void },
  target: string,
  rule: (n: number, body: Record<string, unknown>) => { forward?: Record<string, unknown>; status?: number },
): Promise<string> {
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        const r = rule(++n, body);
        let text = '{"error":"bad gateway"}';
        if (r.forward) {
          const up = await fetch(target + (req.url ?? ''), { method: 'POST', body: JSON.stringify(r.forward) });
          text = await up.text();
        }
        res.writeHead(r.status ?? 200, { 'content-type': 'application/json' });
        res.end(text);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise((resolve) => server.close(resolve)));
  server.unref();
  const address = server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

t.test('a gateway 502 before the bank is retried under the same IsTuno', async (tt) => {
  const { sim, admin } = await harness(tt);
  const url = await gateway(tt, sim.url, (n, body) => (n === 1 ? { status: 502 } : { forward: body }));
  const client = createNhBankClient({ baseUrl: url, iscd: ISCD, fintechApsno: '001', accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 1000, minBackoffMs: 5, now: () => AT_10AM });
  tt.teardown(() => client.close());
  tt.match(await client.transfer(payout('GW1', 1_000n)), { status: 'succeeded', resolvedBy: 'call' });
  tt.same((await admin.transfers()).map((x) => x.isTuno), ['GW1']);
});

t.test('after a 502 that hid a booking, a token refusal on the resend is not trusted', async (tt) => {
  const { sim, admin } = await harness(tt);
  const withToken = (body: Record<string, unknown>, token: string): Record<string, unknown> => ({
    ...body,
    Header: { ...(body['Header'] as Record<string, unknown>), AccessToken: token },
  });
  const url = await gateway(tt, sim.url, (n, body) =>
    n === 1 ? { forward: body, status: 502 } : n === 2 ? { forward: withToken(body, 'expired') } : { forward: body },
  );
  const client = createNhBankClient({ baseUrl: url, iscd: ISCD, fintechApsno: '001', accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 1000, minBackoffMs: 5, now: () => AT_10AM });
  tt.teardown(() => client.close());
  tt.match(await client.transfer(payout('GW2', 1_000n)), { status: 'succeeded', resolvedBy: 'inquiry' }, 'A0002 led to an inquiry, which found the booking');
  tt.equal(sim.state.stats.rejected.token, 1);
  tt.same((await admin.transfers()).map((x) => x.isTuno), ['GW2']);
});

t.test('an unreachable bank gives unknown, not an exception', async (tt) => {
  const { sim, client } = await harness(tt, {}, { retries: 2 });
  await sim.close();
  tt.match(await client.transfer(payout('U1', 1_000n)), { status: 'unknown', reason: /bank unavailable/ });
  tt.match(await client.inquire({ kind: 'payout', isTuno: 'U1', tsymd: DAY, from: LOAN }), { status: 'unknown' });
});

t.test('balance and history refusals are named errors', async (tt) => {
  const { client } = await harness(tt);
  await tt.rejects(client.balance('404404'), BankRejectedError);
  await tt.rejects(client.history('404404', DAY, DAY), { name: 'BankRejectedError', rpcd: 'A0212' });
  tt.equal(await client.balance(LOAN), 1_000_000n);
});

t.test('logs have stable events, masked accounts and never the access token', async (tt) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const { client } = await harness(tt, { timeoutAfterRate: 1 }, { logger, timeoutMs: 100 });
  await client.transfer(payout('G1', 1_000n));
  const all = lines.join('');
  tt.notOk(all.includes(TOKEN), 'no access token');
  tt.notOk(all.includes(LOAN), 'no full account number');
  tt.ok(all.includes('****1001'), 'masked account');
  const events = lines.map((l) => (JSON.parse(l) as { event: string }).event);
  for (const e of ['bank:call', 'bank:inquiry', 'bank:result']) tt.ok(events.includes(e), e);
});
