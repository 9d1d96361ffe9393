/**
 * The NH client's exactly-once rules against the real simulator over HTTP. Each
 * test starts its own simulator (recording every request) on a random port and
 * ends by checking that every request the client sent follows NH's published
 * layout. Faults are forced deterministically: a fault rate of 1 for exactly
 * the calls under test, switched off from inside a gate (which sees every HTTP
 * call) once enough calls went.
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BankInputError, BankRejectedError, BankUnavailableError } from '../../src/bank/errors.js';
import { createNhBankClient, type NhBankClient, type NhBankClientOptions } from '../../src/bank/client.js';
import { emptyCodeBook, type CodeBook, type Gate, type PayoutOrder, type TransferOrder, type WithdrawalOrder } from '../../src/bank/port.js';
import { simAdminClient, type SimAdminClient, type SimCodeView } from '../../src/bank-sim/sim-admin-client.js';
import { planRequest } from '../../src/bank-sim/sim-faults.js';
import { parseSimOptions, runtimeConfigOf, type SimOptionsInput } from '../../src/bank-sim/sim-options.js';
import { mulberry32 } from '../../src/bank-sim/sim-rng.js';
import { startBankSimulator, type BankSimulator } from '../../src/bank-sim/simulator.js';
import { checkRequest, DMCNT_MAX, type ApiNm } from '../../src/nh/contract.js';

const TOKEN = 'test-token-7f3a9c';
const ISCD = '000123';
const APSNO = '001';
const BRDT = '900101';
/** 2025-03-14 10:00 KST: a fixed clock for the client and the simulator. */
const DAY = '20250314';
const AT_10AM = new Date('2025-03-14T01:00:00Z');
const LOAN = '3020000001001';
const POOR = '3020000001002';
const SETTLE = '3020000009001';
const CORP = '3020000009002';
const OTHER_BNCD = '004';
const OTHER = '555000111222';

interface Harness {
  sim: BankSimulator;
  admin: SimAdminClient;
  client: NhBankClient;
  codes: SimCodeView[];
  /** LOAN's and POOR's fin-accounts. */
  fin: { loan: string; poor: string };
  /** Every request the client sent follows the published layout. */
  allConform(tt: Test): Promise<void>;
  calls(api: ApiNm): Promise<number>;
}

/** The simulator's code table as an operator would enter it in settlement.bank_codes. */
function codeBookOf(codes: readonly SimCodeView[]): CodeBook {
  return (api, rpcd) => codes.find((c) => c.rpcd === rpcd && c.apis.includes(api))?.class ?? undefined;
}

type ClientOpts = Partial<NhBankClientOptions> & { simCodes?: boolean };

async function harness(tt: Test, simOpts: SimOptionsInput = {}, clientOpts: ClientOpts = {}): Promise<Harness> {
  const sim = await startBankSimulator({ accessToken: TOKEN, iscd: ISCD, recordRequests: true, ...simOpts }, { now: () => AT_10AM });
  const admin = simAdminClient(sim.url);
  await admin.openAccounts([
    { acno: LOAN, balance: 1_000_000n },
    { acno: POOR, balance: 1_000n },
    { acno: SETTLE, balance: 0n },
    { bncd: '012', acno: CORP, balance: 0n },
    { bncd: OTHER_BNCD, acno: OTHER, balance: 0n },
  ]);
  await admin.registerContracts([{ iscd: ISCD, fintechApsno: APSNO, bncd: '011', acno: SETTLE }]);
  const [loan, poor] = await admin.registerFinAccounts([
    { bncd: '011', acno: LOAN },
    { bncd: '011', acno: POOR },
  ]);
  const codes = await admin.codes();
  const { simCodes, ...rest } = clientOpts;
  const client = createNhBankClient({
    baseUrl: sim.url,
    iscd: ISCD,
    fintechApsno: APSNO,
    accessToken: TOKEN,
    brdtBrno: BRDT,
    perCallLimit: 100_000n,
    timeoutMs: 1_000,
    retries: 4,
    minBackoffMs: 5,
    maxBackoffMs: 20,
    codeBook: simCodes === false ? emptyCodeBook : codeBookOf(codes),
    now: () => AT_10AM,
    ...rest,
  });
  tt.teardown(async () => {
    client.close();
    await sim.close();
  });
  return {
    sim,
    admin,
    client,
    codes,
    fin: { loan: loan!.finAcno, poor: poor!.finAcno },
    async allConform(tt2) {
      const reqs = await admin.requests();
      const bad = reqs.flatMap((r) => checkRequest(r.api as ApiNm, r.body).map((p) => `${r.api}: ${p}`));
      tt2.same(bad, [], `all ${reqs.length} requests follow the published layout`);
    },
    calls: async (api) => (await admin.stats()).callsByApi[api] ?? 0,
  };
}

/** A gate that calls `after(n)` when the n-th HTTP call has finished. */
function countingGate(after: (n: number) => void): Gate & { calls(): number } {
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

/** Transfer IsTunos as the database makes them: 18 digits starting with 1. */
const tuno = (n: number): string => '1' + String(n).padStart(17, '0');

function payout(h: Harness, n: number, amount: bigint, over: Partial<PayoutOrder> = {}): PayoutOrder {
  return { purpose: 'payout', isTuno: tuno(n), tsymd: DAY, fintechApsno: APSNO, finAcno: h.fin.loan, amount, memo: 'tax 0314', sendable: true, resume: false, ...over };
}

function withdrawal(n: number, amount: bigint, over: Partial<WithdrawalOrder> = {}): WithdrawalOrder {
  return { purpose: 'withdrawal', isTuno: tuno(n), tsymd: DAY, fintechApsno: APSNO, bncd: '012', acno: CORP, amount, memo: 'tax out 0314', sendable: true, resume: false, ...over };
}

/** The first seed (from 1) whose first money request gets `fault` at dropRate 1. */
function seedWhoseFirstDropIs(fault: 'dropBefore' | 'dropAfter'): number {
  const cfg = runtimeConfigOf(parseSimOptions({ dropRate: 1 }));
  for (let seed = 1; seed < 1000; seed++) if (planRequest(mulberry32(seed), cfg, true).fault === fault) return seed;
  throw new Error(`no seed gives ${fault}`);
}

const bodiesOf = async (h: Harness, api: ApiNm) =>
  (await h.admin.requests()).filter((r) => r.api === api).map((r) => r.body as Record<string, unknown> & { Header: Record<string, string> });

t.test('a payout (DrawingTransfer) moves the money once, decided by the answer', async (tt) => {
  const h = await harness(tt);
  const r = await h.client.transfer(payout(h, 1, 70_000n));
  tt.same(r, { status: 'succeeded', processedAt: `${DAY}100000`, by: 'answer' });
  tt.equal((await h.admin.account('011', LOAN)).balance, 930_000n);
  tt.equal((await h.admin.account('011', SETTLE)).balance, 70_000n);
  tt.same((await h.admin.transfers()).map((x) => [x.isTuno, x.api, x.from, x.to, x.amount]), [[tuno(1), 'DrawingTransfer', LOAN, SETTLE, 70_000n]]);
  const [sent] = await bodiesOf(h, 'DrawingTransfer');
  tt.match(sent, { Header: { Tsymd: DAY, Trtm: '100000', Iscd: ISCD, FintechApsno: APSNO, ApiSvcCd: 'DrawingTransferA', IsTuno: tuno(1), AccessToken: '***' }, FinAcno: h.fin.loan, Tram: '70000', DractOtlt: 'tax 0314' });
  tt.notOk('MractOtlt' in sent!, 'MractOtlt ("not used" for DrawingTransfer) is not sent');
  tt.same(await h.client.balance(h.fin.loan), { ledger: 930_000n, available: 930_000n });
  await h.allConform(tt);
});

t.test('withdrawals: ReceivedTransferAccountNumber for NH (012), ReceivedTransferOtherBank for another bank', async (tt) => {
  const h = await harness(tt);
  await h.client.transfer(payout(h, 1, 90_000n));
  tt.match(await h.client.transfer(withdrawal(2, 50_000n)), { status: 'succeeded', by: 'answer' });
  tt.match(await h.client.transfer(withdrawal(3, 15_000n, { bncd: OTHER_BNCD, acno: OTHER })), { status: 'succeeded', by: 'answer' });
  tt.equal((await h.admin.account('012', CORP)).balance, 50_000n);
  tt.equal((await h.admin.account(OTHER_BNCD, OTHER)).balance, 15_000n);
  tt.equal((await h.admin.account('011', SETTLE)).balance, 25_000n);
  tt.equal(await h.calls('ReceivedTransferAccountNumber'), 1);
  tt.equal(await h.calls('ReceivedTransferOtherBank'), 1);
  const [nh] = await bodiesOf(h, 'ReceivedTransferAccountNumber');
  tt.match(nh, { Bncd: '012', Acno: CORP, Tram: '50000', DractOtlt: 'tax out 0314', MractOtlt: 'tax out 0314' });
  await h.allConform(tt);
});

t.test('insufficient funds: with an empty code book the result check decides; with the sim codes the code does', async (tt) => {
  const empty = await harness(tt, {}, { simCodes: false });
  const r1 = await empty.client.transfer(payout(empty, 1, 5_000n, { finAcno: empty.fin.poor }));
  tt.match(r1, { status: 'failed', code: 'S0211', by: 'result_check' });
  tt.equal(await empty.calls('CheckOnDrawingTransfer'), 1);
  await empty.allConform(tt);

  const classed = await harness(tt);
  const r2 = await classed.client.transfer(payout(classed, 1, 5_000n, { finAcno: classed.fin.poor }));
  tt.same(r2, { status: 'failed', code: 'S0211', message: '[sim] insufficient funds', by: 'bank_code' });
  tt.equal(await classed.calls('CheckOnDrawingTransfer'), 0, 'a final code needs no result check');
  tt.same(await classed.admin.transfers(), []);
});

t.test('an error before processing (S0090): classed retry → resent under the same IsTuno, booked once', async (tt) => {
  let sim!: BankSimulator;
  const gate = countingGate((n) => n === 2 && sim.configure({ failBeforeRate: 0 }));
  const h = await harness(tt, { failBeforeRate: 1 });
  sim = h.sim;
  tt.match(await h.client.transfer(payout(h, 1, 10_000n), gate), { status: 'succeeded', by: 'answer' });
  tt.equal(await h.calls('DrawingTransfer'), 3, 'two refusals, then the booking');
  tt.equal(await h.calls('CheckOnDrawingTransfer'), 0);
  tt.same(new Set((await bodiesOf(h, 'DrawingTransfer')).map((b) => b.Header.IsTuno)), new Set([tuno(1)]), 'one IsTuno');
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1)]);
  await h.allConform(tt);
});

t.test('an error before processing with an empty code book: result check, nothing classed not_found → unresolved, never resent', async (tt) => {
  const h = await harness(tt, { failBeforeRate: 1 }, { simCodes: false });
  const r = await h.client.transfer(payout(h, 1, 10_000n));
  tt.equal(r.status, 'unresolved');
  tt.match(r, { reason: /S0300/ });
  tt.equal(await h.calls('DrawingTransfer'), 1, 'sent once');
  tt.same(await h.admin.transfers(), []);
  await h.allConform(tt);
});

t.test('only not_found classed: S0090 → result check → not found → resent under the same IsTuno', async (tt) => {
  let sim!: BankSimulator;
  const gate = countingGate((n) => n === 1 && sim.configure({ failBeforeRate: 0 }));
  const h = await harness(tt, { failBeforeRate: 1 }, { simCodes: false, codeBook: (_api, rpcd) => (rpcd === 'S0300' ? 'not_found' : undefined) });
  sim = h.sim;
  tt.match(await h.client.transfer(payout(h, 1, 10_000n), gate), { status: 'succeeded', by: 'answer' });
  tt.equal(await h.calls('DrawingTransfer'), 2);
  tt.equal(await h.calls('CheckOnDrawingTransfer'), 1);
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1)]);
});

t.test('a timeout after booking is resolved by the result check, with exactly one booking', async (tt) => {
  const h = await harness(tt, { timeoutAfterRate: 1 }, { timeoutMs: 150 });
  const r = await h.client.transfer(payout(h, 1, 20_000n));
  tt.same(r, { status: 'succeeded', processedAt: `${DAY}100000`, by: 'result_check' });
  tt.equal(await h.calls('DrawingTransfer'), 1, 'never sent again');
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1)]);
  const [check] = await bodiesOf(h, 'CheckOnDrawingTransfer');
  tt.match(check, { Header: { FintechApsno: APSNO }, FinAcno: h.fin.loan, Tram: '20000', OrtrYmd: DAY, OrtrIsTuno: tuno(1) });
  tt.match(check!.Header.IsTuno, /^9[0-9]{19}$/, 'a fresh 20-digit IsTuno starting with 9');
  await h.allConform(tt);
});

t.test('a connection dropped before processing: check → not found → resent under the same IsTuno → booked once', async (tt) => {
  let sim!: BankSimulator;
  const gate = countingGate((n) => n === 1 && sim.configure({ dropRate: 0 }));
  const h = await harness(tt, { dropRate: 1, seed: seedWhoseFirstDropIs('dropBefore') });
  sim = h.sim;
  tt.match(await h.client.transfer(payout(h, 1, 30_000n), gate), { status: 'succeeded', by: 'answer' });
  tt.equal((await h.admin.stats()).faults['dropBefore'], 1);
  tt.equal(await h.calls('DrawingTransfer'), 2);
  tt.same(new Set((await bodiesOf(h, 'DrawingTransfer')).map((b) => b.Header.IsTuno)), new Set([tuno(1)]));
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1)]);
  await h.allConform(tt);
});

t.test('a connection dropped after processing: the result check finds the booking', async (tt) => {
  const h = await harness(tt, { dropRate: 1, seed: seedWhoseFirstDropIs('dropAfter') });
  tt.match(await h.client.transfer(payout(h, 1, 30_000n)), { status: 'succeeded', by: 'result_check' });
  tt.equal(await h.calls('DrawingTransfer'), 1);
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1)]);
});

t.test('malformed answers (not JSON, no Header) go to the result check', async (tt) => {
  const h = await harness(tt, { malformedRate: 1 });
  const rs = [];
  for (let i = 1; i <= 4; i++) rs.push(await h.client.transfer(payout(h, i, 1_000n)));
  tt.same(rs.map((r) => r.status + '/' + (r.status === 'succeeded' ? r.by : '')), Array(4).fill('succeeded/result_check'));
  tt.equal(await h.calls('DrawingTransfer'), 4);
  tt.equal((await h.admin.transfers()).length, 4);
});

t.test('resume asks first: a booked transfer is not sent again; an unknown one is sent after not found', async (tt) => {
  const h = await harness(tt);
  await h.client.transfer(payout(h, 1, 40_000n));
  tt.match(await h.client.transfer(payout(h, 1, 40_000n, { resume: true })), { status: 'succeeded', by: 'result_check' });
  tt.equal(await h.calls('DrawingTransfer'), 1, 'not sent again');
  tt.match(await h.client.transfer(payout(h, 2, 5_000n, { resume: true })), { status: 'succeeded', by: 'answer' });
  const apis = (await h.admin.requests()).map((r) => r.api);
  tt.same(apis.slice(-2), ['CheckOnDrawingTransfer', 'DrawingTransfer'], 'asked, then sent');
  tt.same((await h.admin.transfers()).map((x) => x.isTuno), [tuno(1), tuno(2)]);
  await h.allConform(tt);
});

t.test('sendable=false never sends: only asks', async (tt) => {
  const h = await harness(tt);
  await h.client.transfer(payout(h, 1, 40_000n));
  tt.match(await h.client.transfer(payout(h, 1, 40_000n, { sendable: false })), { status: 'succeeded', by: 'result_check' });
  tt.same(await h.client.transfer(payout(h, 2, 40_000n, { sendable: false, resume: true })), { status: 'unresolved', reason: 'not found; date over: the statement decides' });
  tt.same(await h.client.transfer(withdrawal(3, 1_000n, { sendable: false })), { status: 'unresolved', reason: 'not found; date over: the statement decides' });
  tt.equal(await h.calls('DrawingTransfer'), 1);
  tt.equal(await h.calls('ReceivedTransferAccountNumber'), 0);
  tt.equal(await h.calls('CheckOnReceivedTransfer'), 1);
  await h.allConform(tt);
});

t.test("NH's duplicate message is recognised by its text, whatever the code says", async (tt) => {
  // An operator mistake: the duplicate code classed final. The text still wins.
  const h = await harness(tt, {}, { codeBook: (_a, rpcd) => (rpcd === 'S0013' ? 'final' : undefined) });
  await h.client.transfer(payout(h, 1, 40_000n));
  const r = await h.client.transfer(payout(h, 1, 40_000n));
  tt.match(r, { status: 'succeeded', by: 'result_check' });
  tt.equal((await h.admin.stats()).rejected['duplicate'], 1);
  tt.equal(h.codes.find((c) => c.rpcd === 'S0013')?.class ?? null, null);
  tt.equal(await h.calls('CheckOnDrawingTransfer'), 1, 'the duplicate was asked about, not taken as final');
  tt.same((await h.admin.transfers()).length, 1);
});

t.test('a withdrawal whose answer is lost is found by CheckOnReceivedTransfer', async (tt) => {
  const h = await harness(tt, { timeoutAfterRate: 1 }, { timeoutMs: 150 });
  h.sim.configure({ timeoutAfterRate: 0 });
  await h.client.transfer(payout(h, 1, 60_000n));
  h.sim.configure({ timeoutAfterRate: 1 });
  tt.match(await h.client.transfer(withdrawal(2, 60_000n)), { status: 'succeeded', by: 'result_check' });
  const [check] = await bodiesOf(h, 'CheckOnReceivedTransfer');
  tt.match(check, { Bncd: '012', Acno: CORP, Tram: '60000', OrtrYmd: DAY, OrtrIsTuno: tuno(2) });
  tt.equal((await h.admin.transfers()).length, 2);
  await h.allConform(tt);
});

t.test('a statement of 250 lines is read in pages of 100, strictly parsed', async (tt) => {
  const h = await harness(tt);
  for (let i = 0; i < 250; i += 25) {
    await Promise.all(Array.from({ length: 25 }, (_, j) => h.client.transfer(payout(h, 1 + i + j, BigInt(100 + i + j), { memo: `m${i + j}` }))));
  }
  const lines = await h.client.statement('011', SETTLE, DAY, DAY);
  tt.equal(lines.length, 250);
  tt.equal(lines.reduce((s, l) => s + l.tram, 0n), (await h.admin.account('011', SETTLE)).balance);
  tt.ok(lines.every((l) => l.trdd === DAY && l.mnrcDrotDsnc === '2' && l.ccyn === '0' && typeof l.tram === 'bigint' && /^m[0-9]+$/.test(l.bnprCntn ?? '')));
  tt.equal(lines[249]!.aftrBlnc, lines.reduce((s, l) => s + l.tram, 0n), 'oldest first: the last line carries the final balance');
  const pages = await bodiesOf(h, 'InquireTransactionHistory');
  tt.same(pages.map((p) => [p['PageNo'], p['Dmcnt']]), [['1', String(DMCNT_MAX)], ['2', '100'], ['3', '100']]);
  await h.allConform(tt);
});

t.test('a range longer than 3 months is read in pieces of at most 92 days', async (tt) => {
  const h = await harness(tt);
  await h.client.transfer(payout(h, 1, 1_000n));
  const lines = await h.client.statement('011', SETTLE, '20240315', DAY);
  tt.equal(lines.length, 1);
  const ranges = (await bodiesOf(h, 'InquireTransactionHistory')).map((p) => [p['Insymd'], p['Ineymd']] as [string, string]);
  tt.equal(ranges[0]![0], '20240315');
  tt.equal(ranges.at(-1)![1], DAY);
  tt.ok(ranges.length >= 4, `${ranges.length} pieces`);
  await h.allConform(tt);
});

t.test('fin-account registration; reads refused or unanswered are named errors', async (tt) => {
  const h = await harness(tt);
  await h.admin.openAccounts([{ acno: '3020000001003', balance: 7_000n }]);
  const rgno = await h.client.openFinAccount('011', '3020000001003');
  tt.match(rgno, /^[0-9]{1,20}$/);
  const fin = await h.client.checkFinAccount(rgno);
  tt.match(fin, { finAcno: /^[0-9]{1,30}$/, rgsnYmd: DAY });
  tt.same(await h.client.balance(fin.finAcno), { ledger: 7_000n, available: 7_000n });
  const [open] = await bodiesOf(h, 'OpenFinAccountDirect');
  tt.match(open, { DrtrRgyn: 'Y', BrdtBrno: BRDT, Bncd: '011', Acno: '3020000001003' });
  await tt.rejects(h.client.checkFinAccount('12345'), BankRejectedError);
  await tt.rejects(h.client.balance('999999'), BankRejectedError);
  await tt.rejects(h.client.statement('004', OTHER, DAY, DAY), BankRejectedError);
  await h.allConform(tt);
  // Nobody listening: nothing is ever sent, the retries run out.
  const down = createNhBankClient({ baseUrl: 'http://127.0.0.1:9', iscd: ISCD, fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: 1n, timeoutMs: 200, retries: 2, minBackoffMs: 1, maxBackoffMs: 2 });
  tt.teardown(() => down.close());
  await tt.rejects(down.balance('123'), BankUnavailableError);
  tt.match(await down.transfer(payout(h, 9, 1n)), { status: 'unresolved' });
});

t.test('bad orders and arguments are refused before any HTTP call', async (tt) => {
  const h = await harness(tt);
  const before = (await h.admin.stats()).calls;
  const base = payout(h, 1, 1_000n);
  const bad: Array<[string, TransferOrder]> = [
    ['invalid_amount', { ...base, amount: 0n }],
    ['invalid_amount', { ...base, amount: -5n }],
    ['invalid_amount', { ...base, amount: 1000 as unknown as bigint }],
    ['over_per_call_limit', { ...base, amount: 100_001n }],
    ['invalid_is_tuno', { ...base, isTuno: 'P1' }],
    ['invalid_is_tuno', { ...base, isTuno: '1'.repeat(21) }],
    ['invalid_is_tuno', { ...base, isTuno: '' }],
    ['invalid_tsymd', { ...base, tsymd: '20250230' }],
    ['invalid_tsymd', { ...base, tsymd: '2025-03-14' }],
    ['invalid_account', { ...base, finAcno: '12-34' }],
    ['invalid_account', { ...base, finAcno: '1'.repeat(31) }],
    ['invalid_account', withdrawal(2, 1n, { bncd: '11' })],
    ['invalid_account', withdrawal(2, 1n, { acno: 'ABC' })],
    ['invalid_fintech_apsno', { ...base, fintechApsno: '1' }],
    ['invalid_memo', { ...base, memo: 'x'.repeat(21) }],
    ['invalid_memo', { ...base, memo: 'tab\there' }],
    ['invalid_memo', { ...base, memo: 'zero\u200bwidth' }],
    ['invalid_purpose', { ...base, purpose: 'refund' } as unknown as TransferOrder],
  ];
  for (const [code, order] of bad) {
    await tt.rejects(h.client.transfer(order), { constructor: BankInputError, code }, `${code}: ${JSON.stringify(order, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  }
  await tt.rejects(h.client.statement('011', SETTLE, DAY, '20250313'), { constructor: BankInputError, code: 'invalid_date_range' });
  await tt.rejects(h.client.statement('011', SETTLE, '20250231', DAY), { constructor: BankInputError, code: 'invalid_date_range' });
  await tt.rejects(h.client.balance('12a'), { constructor: BankInputError, code: 'invalid_account' });
  await tt.rejects(h.client.openFinAccount('11', LOAN), { constructor: BankInputError, code: 'invalid_account' });
  await tt.rejects(h.client.checkFinAccount('x'), { constructor: BankInputError, code: 'invalid_rgno' });
  tt.equal((await h.admin.stats()).calls, before, 'no call reached the bank');
  tt.match(await h.client.transfer(withdrawal(3, 500_000n, { sendable: false })), { status: 'unresolved' }, 'the per-call limit is for payouts only');
  tt.throws(() => createNhBankClient({ baseUrl: h.sim.url, iscd: 'ABC', fintechApsno: APSNO, accessToken: TOKEN, perCallLimit: 1n, timeoutMs: 1 }), RangeError);
});

t.test('logs: at most debug per call, accounts masked, the access token never written', async (tt) => {
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  let sim!: BankSimulator;
  const gate = countingGate((n) => n === 1 && sim.configure({ failBeforeRate: 0 }));
  const h = await harness(tt, { failBeforeRate: 1 }, { logger, timeoutMs: 300 });
  sim = h.sim;
  await h.client.transfer(payout(h, 1, 10_000n), gate);
  await h.client.transfer(withdrawal(2, 5_000n));
  await h.client.balance(h.fin.loan);
  await h.client.statement('011', SETTLE, DAY, DAY);
  await h.client.transfer(payout(h, 3, 5_000n, { resume: true }));
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  tt.ok(lines.length >= 6, `${lines.length} log lines`);
  tt.ok(lines.every((l) => l['level'] === 20), 'every line is debug');
  tt.notOk(text.includes(TOKEN), 'no access token');
  tt.notOk(text.includes(LOAN) || text.includes(CORP) || text.includes(h.fin.loan), 'no full account number');
  tt.match(lines[0], { event: 'bank:call', api: 'DrawingTransfer', is_tuno: tuno(1), purpose: 'payout', amount: '10000', rpcd: 'S0090' });
});
