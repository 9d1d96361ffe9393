/**
 * The bank simulator on its own, spoken to with raw HTTP: the NH API rules, the
 * admin API, the in-flight cap, seeded faults, prompt close, and its throughput.
 */
import t from 'tap';
import http from 'node:http';
import { createNhBankClient } from '../src/bank/nh-client.js';
import { API_SVC_CD, type ApiNm } from '../src/bank/protocol.js';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import { simOptionsSchema } from '../src/bank-sim/sim-options.js';
import { startBankSimulator, type BankSimulator } from '../src/bank-sim/simulator.js';

const TOKEN = 'sim-token';
const DAY = '20250314';
const A = '1001';
const B = '1002';
const C = '1003';

async function sim(tt: { teardown(fn: () => unknown): void }, opts: Parameters<typeof startBankSimulator>[0] = {}): Promise<BankSimulator> {
  const s = await startBankSimulator({ accessToken: TOKEN, ...opts });
  tt.teardown(() => s.close());
  await simAdminClient(s.url).openAccounts([
    { accountNo: A, balance: 10_000_000n },
    { accountNo: B, balance: 0n },
    { accountNo: C, balance: 0n },
  ]);
  return s;
}

type Json = Record<string, unknown>;

/** One raw NH call; returns the HTTP status and the parsed body. */
async function nh(url: string, api: ApiNm, isTuno: string, fields: Json, header: Json = {}): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${url}/${api}.nh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      Header: {
        ApiNm: api,
        Tsymd: DAY,
        Trtm: '101500',
        Iscd: '000123',
        FintechApsno: '001',
        ApiSvcCd: API_SVC_CD[api],
        IsTuno: isTuno,
        AccessToken: TOKEN,
        ...header,
      },
      ...fields,
    }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

const rpcd = (body: Json): unknown => (body['Header'] as Json | undefined)?.['Rpcd'];
const drawing = (amount: string, from = A, to = B): Json => ({ FinAcno: from, Tram: amount, DractOtlt: 'x', MractOtlt: 'y', CtrtAcno: to });

t.test('options: defaults, CLI strings, and refusals', async (tt) => {
  const d = simOptionsSchema.parse({});
  tt.match(d, { port: 0, host: '127.0.0.1', latencyMs: 0, jitterMs: 0, maxInFlight: 1000, perCallLimit: 100_000n, seed: 1, dropRate: 0 });
  tt.equal(d.accessToken, undefined);
  const fromCli = simOptionsSchema.parse({ port: '8088', latencyMs: '250', perCallLimit: '50000', dropRate: '0.1', faultsOnInquiry: 'true' });
  tt.match(fromCli, { port: 8088, latencyMs: 250, perCallLimit: 50_000n, dropRate: 0.1, faultsOnInquiry: true });
  tt.throws(() => simOptionsSchema.parse({ dropRate: 1.5 }));
  tt.throws(() => simOptionsSchema.parse({ dropRate: 0.6, slowRate: 0.6 }), /more than 1/);
  tt.throws(() => simOptionsSchema.parse({ perCallLimit: '1e5' }));
  tt.throws(() => simOptionsSchema.parse({ latencyMs: -1 }));
  tt.throws(() => simOptionsSchema.parse({ lantencyMs: 5 }), 'unknown option names are refused');
});

t.test('admin API: accounts, close, transfers, stats, config', async (tt) => {
  const s = await sim(tt);
  const admin = simAdminClient(s.url);
  tt.same(await admin.account(A), { accountNo: A, balance: 10_000_000n, open: true });
  await admin.openAccounts([{ accountNo: A, balance: 5n }]);
  tt.equal((await admin.account(A)).balance, 5n, 'opening again SETS the balance');
  await admin.closeAccount(C);
  tt.equal((await admin.account(C)).open, false);
  await tt.rejects(admin.account('nope'), /HTTP 404/);
  await tt.rejects(admin.openAccounts([{ accountNo: 'x y', balance: 1n }]), /HTTP 400/);
  const bad = await fetch(`${s.url}/_sim/accounts`, { method: 'POST', body: '{"accounts":[{"accountNo":"Z","balance":"-1"}]}' });
  tt.equal(bad.status, 400);
  tt.same(await admin.transfers(), []);
  tt.match(await admin.configure({ latencyMs: 5, dropRate: 0.2 }), { latencyMs: 5, dropRate: 0.2 });
  await tt.rejects(admin.configure({ slowRate: 0.9 }), /more than 1/);
  await tt.rejects(admin.configure({ bogus: 1 }), /HTTP 400/);
  tt.equal(s.state.config.slowRate, 0, 'a refused patch changes nothing');
});

t.test('DrawingTransfer: booking, duplicate, and the result check', async (tt) => {
  const s = await sim(tt);
  const ok = await nh(s.url, 'DrawingTransfer', 'T1', drawing('40000'));
  tt.equal(ok.status, 200);
  tt.match(ok.body, { Header: { Rpcd: '00000', IsTuno: 'T1', ApiNm: 'DrawingTransfer' }, FinAcno: A, RgsnYmd: DAY, Prtm: /^\d{14}$/ });
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'T1', drawing('40000'))).body), 'A0013');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'T1', drawing('40000'), { Tsymd: '20250315' })).body), '00000', 'unique per day only');
  const check = await nh(s.url, 'CheckOnDrawingTransfer', 'Q1', { FinAcno: A, OrtrYmd: DAY, OrtrIsTuno: 'T1' });
  tt.match(check.body, { Header: { Rpcd: '00000', IsTuno: 'Q1' }, Pcrs: '00000', Tram: '40000', Prtm: /^\d{14}$/ });
  tt.equal(rpcd((await nh(s.url, 'CheckOnDrawingTransfer', 'Q2', { FinAcno: A, OrtrYmd: DAY, OrtrIsTuno: 'T9' })).body), 'A0300');
  tt.equal(rpcd((await nh(s.url, 'CheckOnDrawingTransfer', 'Q3', { FinAcno: B, OrtrYmd: DAY, OrtrIsTuno: 'T1' })).body), 'A0230', 'another account is a mismatch, not "not found"');
  tt.equal(s.state.ledger.transfers.length, 2);
  tt.equal(s.state.stats.rejected.duplicate, 1);
});

t.test('over the per-call limit: A0220, and the IsTuno is used up', async (tt) => {
  const s = await sim(tt, { perCallLimit: 100_000n });
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'L1', drawing('100001'))).body), 'A0220');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'L1', drawing('100000'))).body), 'A0013');
  const check = await nh(s.url, 'CheckOnDrawingTransfer', 'Q1', { FinAcno: A, OrtrYmd: DAY, OrtrIsTuno: 'L1' });
  tt.match(check.body, { Header: { Rpcd: '00000' }, Pcrs: 'A0220' });
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'L2', drawing('100000'))).body), '00000', 'at the limit is fine');
  tt.equal(s.state.stats.rejected.limit, 1);
  tt.equal(s.state.ledger.transfers.length, 1);
});

t.test('funds and accounts are checked; refusals are recorded, busy/token/malformed are not', async (tt) => {
  const s = await sim(tt);
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'F1', drawing('1', B, A))).body), 'A0211', 'B is empty');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'F2', drawing('1', A, C))).body), '00000', 'C is open');
  await simAdminClient(s.url).closeAccount(C);
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'F3', drawing('1', A, C))).body), 'A0212', 'C is closed');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'F4', drawing('1', A, 'ghost'))).body), 'A0212');
  // A bad token does not use up the IsTuno: the same number books with the right token.
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'K1', drawing('7'), { AccessToken: 'nope' })).body), 'A0002');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'K1', drawing('0'))).body), 'A0230', 'zero amount');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'K1', drawing('1.5'))).body), 'A0230', 'not an integer');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'K1', drawing('7'), { ApiSvcCd: 'Wrong' })).body), 'A0230');
  tt.equal(rpcd((await nh(s.url, 'DrawingTransfer', 'K1', drawing('7'))).body), '00000');
  const raw = await fetch(`${s.url}/DrawingTransfer.nh`, { method: 'POST', body: '{not json' });
  tt.equal(raw.status, 400);
  tt.equal(rpcd((await raw.json()) as Json), 'A0230');
  tt.equal((await fetch(`${s.url}/NoSuchApi.nh`, { method: 'POST', body: '{}' })).status, 404);
  tt.match(s.state.stats.rejected, { funds: 1, account: 2, token: 1, invalid: 4 });
});

t.test('ReceivedTransferAccountNumber, balance and history', async (tt) => {
  const s = await sim(tt);
  const w = (isTuno: string, amount: string, from = A, to = B): Promise<{ status: number; body: Json }> =>
    nh(s.url, 'ReceivedTransferAccountNumber', isTuno, { Bncd: '011', Acno: to, Tram: amount, DractOtlt: 'o', MractOtlt: 'i', FromAcno: from });
  tt.equal(rpcd((await w('W1', '300')).body), '00000');
  tt.equal(rpcd((await w('W2', '200')).body), '00000');
  tt.equal(rpcd((await w('W3', '50', B, C)).body), '00000');
  tt.equal(rpcd((await nh(s.url, 'ReceivedTransferAccountNumber', 'W4', { Bncd: '004', Acno: B, Tram: '1', FromAcno: A })).body), 'A0230');
  const check = await nh(s.url, 'CheckOnReceivedTransfer', 'Q1', { FromAcno: A, OrtrYmd: DAY, OrtrIsTuno: 'W2' });
  tt.match(check.body, { Pcrs: '00000', Tram: '200' });
  tt.equal(rpcd((await nh(s.url, 'CheckOnDrawingTransfer', 'Q2', { FinAcno: A, OrtrYmd: DAY, OrtrIsTuno: 'W2' })).body), 'A0230', 'wrong API');
  const bal = await nh(s.url, 'InquireBalance', 'R1', { FinAcno: B });
  tt.match(bal.body, { Ldbl: '450', RlpmAbamt: '450' });
  const page = (no: string, order: string): Promise<{ status: number; body: Json }> =>
    nh(s.url, 'InquireTransactionHistory', 'R2', { FinAcno: B, Insymd: DAY, Ineymd: DAY, TrnsDsnc: 'A', Lnsq: order, PageNo: no, Dmcnt: '2' });
  const p1 = (await page('1', 'DESC')).body;
  tt.match(p1, { TotCnt: '3', Iqtcnt: '2', CtntDataYn: 'Y' });
  tt.match(p1['REC'], [
    { IsTuno: 'W3', MnrcDrotDsnc: '2', Tram: '50', AftrBlnc: '450', Counterparty: C },
    { IsTuno: 'W2', MnrcDrotDsnc: '1', Tram: '200', AftrBlnc: '500', Counterparty: A },
  ]);
  tt.match((await page('2', 'DESC')).body, { Iqtcnt: '1', CtntDataYn: 'N', REC: [{ IsTuno: 'W1' }] });
  const client = createNhBankClient({ baseUrl: s.url, iscd: '000123', fintechApsno: '001', accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 1000 });
  tt.teardown(() => client.close());
  // 1,000 lines per page: page through 2,500 lines.
  await simAdminClient(s.url).openAccounts([{ accountNo: 'H1', balance: 10_000n }]);
  for (let i = 0; i < 2500; i++) {
    s.state.ledger.transfer({ iscd: 'x', apiNm: 'DrawingTransfer', tsymd: DAY, isTuno: `H${i}`, from: 'H1', to: C, amount: 1n, memoOut: '', memoIn: '', perCallLimit: 10n, now: new Date() });
  }
  const lines = await client.history('H1', DAY, DAY);
  tt.equal(lines.length, 2500);
  tt.equal(lines[0]?.isTuno, 'H0', 'oldest first');
  tt.equal(lines[2499]?.isTuno, 'H2499');
});

t.test('in-flight cap: excess arrivals get A0001 at once; maxInFlight never exceeds the cap', async (tt) => {
  const s = await sim(tt, { maxInFlight: 2, latencyMs: 80 });
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => nh(s.url, 'DrawingTransfer', `C${i}`, drawing('1'))));
  const codes = results.map((r) => rpcd(r.body)).sort();
  tt.same(codes, ['00000', '00000', 'A0001', 'A0001', 'A0001']);
  const busy = results.find((r) => rpcd(r.body) === 'A0001');
  tt.match(busy?.body, { Header: { IsTuno: /^C\d$/ } }, 'a busy answer names the request');
  const stats = await simAdminClient(s.url).stats();
  tt.match(stats, { calls: 5, booked: 2, maxInFlight: 2, inFlight: 0, arrivals: 0, rejected: { busy: 3 } });
  tt.ok(stats.maxArrivals >= 3, 'arrivals count the refused ones too');
  await simAdminClient(s.url).resetStats();
  tt.match(await simAdminClient(s.url).stats(), { calls: 0, maxInFlight: 0, maxArrivals: 0, booked: 0 });
  tt.equal(s.state.ledger.transfers.length, 2, 'reset-stats keeps the books');
});

t.test('latency and jitter stay within their bounds', async (tt) => {
  const s = await sim(tt, { latencyMs: 40, jitterMs: 20 });
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await nh(s.url, 'InquireBalance', `R${i}`, { FinAcno: A });
    const took = performance.now() - t0;
    tt.ok(took >= 19 && took < 200, `took ${took.toFixed(1)} ms`);
  }
});

/** Runs the same sequence of transfers, one at a time, against a fresh simulator. */
async function chaosRun(seed: number): Promise<{ stats: Json; booked: string[]; results: string[] }> {
  const s = await startBankSimulator({ seed, failBeforeRate: 0.1, timeoutAfterRate: 0.1, dropRate: 0.1, slowRate: 0.1, malformedRate: 0.1, slowMs: 5 });
  try {
    await simAdminClient(s.url).openAccounts([
      { accountNo: A, balance: 10_000_000n },
      { accountNo: B, balance: 0n },
    ]);
    const client = createNhBankClient({
      baseUrl: s.url, iscd: '000123', fintechApsno: '001', accessToken: 'any', perCallLimit: 100_000n,
      // Generous against scheduling hiccups: only the timeout-after fault may time out.
      timeoutMs: 200, minBackoffMs: 1, maxBackoffMs: 2, now: () => new Date('2025-03-14T01:00:00Z'),
    });
    const results: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await client.transfer({ kind: 'payout', isTuno: `D${i}`, tsymd: DAY, from: A, to: B, amount: BigInt(1000 + i) });
      results.push(r.status);
    }
    client.close();
    const stats = s.statsSnapshot();
    delete stats['inFlight'];
    delete stats['arrivals'];
    return { stats, booked: s.state.ledger.transfers.map((x) => x.isTuno), results };
  } finally {
    await s.close();
  }
}

t.test('the same seed gives the same faults; another seed gives others', async (tt) => {
  const a = await chaosRun(42);
  const b = await chaosRun(42);
  const c = await chaosRun(43);
  tt.same(a.stats, b.stats, 'identical stats for seed 42');
  tt.same(a.booked, b.booked);
  tt.same(a.results, b.results);
  tt.notSame(a.stats['faults'], c.stats['faults'], 'seed 43 differs');
  const faults = a.stats['faults'] as Record<string, number>;
  tt.ok(Object.values(faults).some((n) => n > 0), `faults happened: ${JSON.stringify(faults)}`);
  tt.equal(new Set(a.booked).size, a.booked.length, 'no IsTuno booked twice');
});

t.test('close() ends promptly even with a held (timeout-after) socket', async (tt) => {
  const s = await startBankSimulator({ timeoutAfterRate: 1, timeoutHoldMs: 60_000 });
  await simAdminClient(s.url).openAccounts([
    { accountNo: A, balance: 10n },
    { accountNo: B, balance: 0n },
  ]);
  const body = JSON.stringify({
    Header: { ApiNm: 'DrawingTransfer', Tsymd: DAY, Trtm: '101500', Iscd: '1', FintechApsno: '001', ApiSvcCd: 'DrawingTransferA', IsTuno: 'H1', AccessToken: 'x' },
    ...drawing('5'),
  });
  const answered = new Promise<string>((resolve) => {
    const req = http.request(`${s.url}/DrawingTransfer.nh`, { method: 'POST' }, () => resolve('answered'));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end(body);
  });
  // Wait until the simulator has booked (and is now holding the socket).
  while (s.state.ledger.transfers.length === 0) await new Promise((r) => setImmediate(r));
  tt.equal(s.state.stats.inFlight, 1);
  const t0 = performance.now();
  await s.close();
  tt.ok(performance.now() - t0 < 1000, 'closed promptly');
  tt.equal(await answered, 'ECONNRESET', 'the held request never got an answer');
});

t.test('throughput with no latency (measured, not asserted)', async (tt) => {
  const s = await sim(tt, { maxInFlight: 10_000 });
  const client = createNhBankClient({
    baseUrl: s.url, iscd: '000123', fintechApsno: '001', accessToken: TOKEN, perCallLimit: 100_000n, timeoutMs: 5000,
    now: () => new Date('2025-03-14T01:00:00Z'),
  });
  tt.teardown(() => client.close());
  const N = 5000;
  const CONCURRENCY = 64;
  let next = 0;
  let succeeded = 0;
  const worker = async (): Promise<void> => {
    while (next < N) {
      const i = next++;
      const r = await client.transfer({ kind: 'payout', isTuno: `TP${i}`, tsymd: DAY, from: A, to: B, amount: 1n });
      if (r.status === 'succeeded') succeeded++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - t0) / 1000;
  tt.equal(succeeded, N);
  tt.equal(s.state.ledger.transfers.length, N);
  tt.comment(
    `simulator throughput: ${Math.round(N / seconds)} transfers/s ` +
      `(${N} DrawingTransfers through the NH client, ${CONCURRENCY} concurrent, latency 0, client and simulator in one process)`,
  );
});
