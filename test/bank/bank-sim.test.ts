/**
 * The bank simulator on its own, over real HTTP: the published shapes, every
 * kind of refusal (with the simulator's own codes), result checks, statements,
 * registration, the admin API, the in-flight cap and seeded faults. No database.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { simOptionsSchema } from '../../src/bank-sim/sim-options.js';
import { SIM, SIM_CODES, startBankSimulator } from '../../src/bank-sim/simulator.js';
import { DUPLICATE_IS_TUNO_MESSAGE, PRINTED_MAX, checkResponse, type ApiNm } from '../../src/nh/contract.js';
import { APSNO, CORP, ISCD, LOAN, OTHER, OTHER_BNCD, SETTLE, START, TOKEN, nextIsTuno, post, request, world, type Json, type Reply } from '../helpers/sim.js';

const DAY = '20250314';
const ok = (tt: Test, api: ApiNm, r: Reply, what: string = api) => {
  tt.equal(r.status, 200, `${what}: HTTP 200`);
  tt.equal(r.header['Rpcd'], '00000', `${what}: 00000 (${String(r.header['Rsms'])})`);
  tt.same(checkResponse(api, r.body), [], `${what}: the published shape`);
};

t.test('options: defaults, CLI strings, refusals', async (tt) => {
  const d = simOptionsSchema.parse({});
  tt.match(d, { port: 0, latencyMs: 0, maxInFlight: 1000, perCallLimit: 100_000n, seed: 1, recordRequests: false });
  tt.equal(d.apiSvcCodes.DrawingTransfer, 'DrawingTransferA');
  tt.match(simOptionsSchema.parse({ port: '8088', perCallLimit: '50000', dropRate: '0.1', faultsOnInquiry: 'true' }), { port: 8088, perCallLimit: 50_000n, dropRate: 0.1, faultsOnInquiry: true });
  tt.throws(() => simOptionsSchema.parse({ dropRate: 0.6, slowRate: 0.6 }), /more than 1/);
  tt.throws(() => simOptionsSchema.parse({ lantencyMs: 5 }), 'unknown option names are refused');
});

t.test('each API: happy path in the published shape, money where it belongs', async (tt) => {
  const w = await world(tt);
  const pay = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '70000', DractOtlt: '이자 3월' });
  ok(tt, 'DrawingTransfer', pay);
  tt.same(Object.keys(pay.body).sort(), ['FinAcno', 'Header', 'RgsnYmd']);
  tt.equal(pay.body['FinAcno'], w.finAcno);
  tt.same(Object.keys(pay.header), ['ApiNm', 'Tsymd', 'Trtm', 'Iscd', 'FintechApsno', 'ApiSvcCd', 'IsTuno', 'Rpcd', 'Rsms'], 'the header echoed, without AccessToken');
  ok(tt, 'ReceivedTransferAccountNumber', await w.call('ReceivedTransferAccountNumber', { Bncd: '012', Acno: CORP, Tram: '50000', DractOtlt: 'out', MractOtlt: 'in' }));
  ok(tt, 'ReceivedTransferOtherBank', await w.call('ReceivedTransferOtherBank', { Bncd: OTHER_BNCD, Acno: OTHER, Tram: '15000' }));
  const bal = await w.call('InquireBalance', { FinAcno: w.finAcno });
  ok(tt, 'InquireBalance', bal);
  tt.match(bal.body, { FinAcno: w.finAcno, Ldbl: '930000', RlpmAbamt: '930000' });
  tt.equal((await w.admin.account('011', SETTLE)).balance, 5_000n);
  tt.equal((await w.admin.account('012', CORP)).balance, 50_000n);
  tt.equal((await w.admin.account(OTHER_BNCD, OTHER)).balance, 15_000n);
  const transfers = await w.admin.transfers();
  tt.match(transfers, [
    { api: 'DrawingTransfer', from: LOAN, to: SETTLE, fromBncd: '011', toBncd: '011', amount: 70_000n, isTuno: pay.header['IsTuno'], tsymd: DAY },
    { api: 'ReceivedTransferAccountNumber', from: SETTLE, to: CORP, toBncd: '012', amount: 50_000n },
    { api: 'ReceivedTransferOtherBank', from: SETTLE, to: OTHER, toBncd: OTHER_BNCD, amount: 15_000n },
  ]);
  tt.ok(transfers.every((x) => /^\d+$/.test(x.tuno) && x.tuno !== x.isTuno), 'the bank has its own Tuno');
  tt.match(await w.admin.stats(), { calls: 4, booked: 3, bookedAmount: '135000' });
});

t.test('registration: OpenFinAccountDirect + CheckOpenFinAccountDirect', async (tt) => {
  const w = await world(tt);
  await w.admin.openAccounts([{ acno: '3020000000777', balance: 5_000n }]);
  const reg = { Bncd: '011', Acno: '3020000000777', BrdtBrno: '900101' };
  const open = await w.call('OpenFinAccountDirect', { DrtrRgyn: 'Y', ...reg });
  ok(tt, 'OpenFinAccountDirect', open);
  const check = await w.call('CheckOpenFinAccountDirect', { Rgno: open.body['Rgno'], BrdtBrno: '900101' });
  ok(tt, 'CheckOpenFinAccountDirect', check);
  const fin = check.body['FinAcno'] as string;
  tt.match(fin, /^00820\d{25}$/);
  tt.equal(check.body['RgsnYmd'], DAY);
  const again = await w.call('OpenFinAccountDirect', { DrtrRgyn: 'Y', ...reg });
  tt.not(again.body['Rgno'], open.body['Rgno'], 'a fresh Rgno');
  tt.equal((await w.call('CheckOpenFinAccountDirect', { Rgno: again.body['Rgno'], BrdtBrno: '900101' })).body['FinAcno'], fin, 'same account, same FinAcno');
  tt.equal((await w.admin.account('011', '3020000000777')).finAcno, fin);
  tt.equal((await w.call('CheckOpenFinAccountDirect', { Rgno: open.body['Rgno'], BrdtBrno: '900102' })).header['Rpcd'], SIM.REGISTRATION, 'other BrdtBrno');
  tt.equal((await w.call('OpenFinAccountDirect', { DrtrRgyn: 'Y', BrdtBrno: '1', Bncd: '011', Acno: '999' })).header['Rpcd'], SIM.ACCOUNT, 'no such account');
  ok(tt, 'DrawingTransfer', await w.call('DrawingTransfer', { FinAcno: fin, Tram: '1000' }));
  // Registered without withdrawals: the fin-account exists but cannot be drawn.
  await w.admin.openAccounts([{ acno: '3020000000888', balance: 5_000n }]);
  const n = await w.call('OpenFinAccountDirect', { DrtrRgyn: 'N', BrdtBrno: '1', Bncd: '011', Acno: '3020000000888' });
  const finN = (await w.call('CheckOpenFinAccountDirect', { Rgno: n.body['Rgno'], BrdtBrno: '1' })).body['FinAcno'];
  ok(tt, 'InquireBalance', await w.call('InquireBalance', { FinAcno: finN }));
  tt.equal((await w.call('DrawingTransfer', { FinAcno: finN, Tram: '1000' })).header['Rpcd'], SIM.ACCOUNT, 'DrtrRgyn N: no withdrawals');
});

t.test('refusals: layout, token, limit, funds, contract, duplicates — nothing booked', async (tt) => {
  const w = await world(tt, { perCallLimit: 100_000n });
  const code = async (api: ApiNm, fields: Json, header: Json = {}) => (await w.call(api, fields, header)).header;
  const layout = async (what: string, api: ApiNm, fields: Json, header: Json, rsms: RegExp) => {
    const h = await code(api, fields, header);
    tt.equal(h['Rpcd'], SIM.LAYOUT, `${what}: ${SIM.LAYOUT}`);
    tt.match(h['Rsms'], rsms, `${what}: Rsms names it`);
  };
  const fin = w.finAcno;
  await layout('unknown field', 'DrawingTransfer', { FinAcno: fin, Tram: '1', CtrtAcno: SETTLE }, {}, /body\.CtrtAcno is not a field of this API/);
  await layout('over-long', 'DrawingTransfer', { FinAcno: fin, Tram: '1', DractOtlt: 'x'.repeat(26) }, {}, /DractOtlt is longer than 25/);
  await layout('non-digit IsTuno', 'DrawingTransfer', { FinAcno: fin, Tram: '1' }, { IsTuno: 'P1' }, /IsTuno must be digits only/);
  await layout('IsTuno over 20', 'DrawingTransfer', { FinAcno: fin, Tram: '1' }, { IsTuno: '1'.repeat(21) }, /IsTuno is longer than 20/);
  await layout('missing Tram', 'DrawingTransfer', { FinAcno: fin }, {}, /body\.Tram is required/);
  await layout('amount with a sign', 'DrawingTransfer', { FinAcno: fin, Tram: '-5' }, {}, /Tram must be an amount/);
  await layout('wrong ApiSvcCd', 'InquireBalance', { FinAcno: fin }, { ApiSvcCd: 'DrawingTransferA' }, /ApiSvcCd must be ReceivedTransferA/);
  await layout('ApiNm not the path', 'InquireBalance', { FinAcno: fin }, { ApiNm: 'DrawingTransfer' }, /ApiNm must be InquireBalance/);
  await layout('Dmcnt 101', 'InquireTransactionHistory', { Bncd: '011', Acno: SETTLE, Insymd: DAY, Ineymd: DAY, Dmcnt: '101' }, {}, /Dmcnt must be 1\.\.100/);
  await layout('NH Bncd on OtherBank', 'ReceivedTransferOtherBank', { Bncd: '011', Acno: CORP, Tram: '1' }, {}, /use ReceivedTransferAccountNumber/);
  await layout('other Bncd on AccountNumber', 'ReceivedTransferAccountNumber', { Bncd: OTHER_BNCD, Acno: OTHER, Tram: '1' }, {}, /Bncd must be one of 011, 012/);
  tt.equal((await code('InquireBalance', { FinAcno: fin }, { AccessToken: 'wrong' }))['Rpcd'], SIM.REFUSED_TOKEN, 'wrong token');
  tt.equal((await code('DrawingTransfer', { FinAcno: fin, Tram: '100001' }))['Rpcd'], SIM.LIMIT, 'over the per-call limit');
  tt.equal((await code('ReceivedTransferAccountNumber', { Bncd: '011', Acno: LOAN, Tram: '1' }))['Rpcd'], SIM.FUNDS, 'the contracted account is empty');
  tt.equal((await code('DrawingTransfer', { FinAcno: fin, Tram: '1' }, { FintechApsno: '002' }))['Rpcd'], SIM.CONTRACT, 'no contract for 002');
  tt.equal((await code('DrawingTransfer', { FinAcno: '99', Tram: '1' }))['Rpcd'], SIM.ACCOUNT, 'unknown fin-account');
  tt.equal((await code('ReceivedTransferAccountNumber', { Bncd: '011', Acno: '42', Tram: '1' }))['Rpcd'], SIM.ACCOUNT, 'unknown receiving account');
  tt.equal((await w.admin.transfers()).length, 0, 'nothing booked');

  const pay = await w.call('DrawingTransfer', { FinAcno: fin, Tram: '100' });
  const dup = await code('DrawingTransfer', { FinAcno: fin, Tram: '100' }, { IsTuno: pay.header['IsTuno'] });
  tt.same([dup['Rpcd'], dup['Rsms']], [SIM.DUPLICATE, DUPLICATE_IS_TUNO_MESSAGE], 'a reused IsTuno: the published message');
  tt.equal((await code('DrawingTransfer', { FinAcno: fin, Tram: '100' }, { IsTuno: pay.header['IsTuno'], Tsymd: '20250315' }))['Rpcd'], '00000', 'another Tsymd is another triple');
  const bal = await w.call('InquireBalance', { FinAcno: fin });
  tt.equal((await code('InquireBalance', { FinAcno: fin }, { IsTuno: bal.header['IsTuno'] }))['Rpcd'], SIM.DUPLICATE, 'every API uses up its IsTuno');
  const poor = await code('ReceivedTransferAccountNumber', { Bncd: '011', Acno: LOAN, Tram: '999999' });
  tt.equal((await code('ReceivedTransferAccountNumber', { Bncd: '011', Acno: LOAN, Tram: '1' }, { IsTuno: poor['IsTuno'] }))['Rpcd'], SIM.DUPLICATE, 'a refusal after processing uses it up too');
  const refused = await code('DrawingTransfer', { FinAcno: fin, Tram: '100', Bogus: '1' });
  tt.equal((await code('DrawingTransfer', { FinAcno: fin, Tram: '100' }, { IsTuno: refused['IsTuno'] }))['Rpcd'], '00000', 'a layout refusal does not use it up');
  tt.match((await w.admin.stats()).rejected, { invalid: 12, token: 1, limit: 1, funds: 2, contract: 1, account: 2, duplicate: 3 });

  tt.equal((await post(w.url, '/DrawingTransfer.nh', '{"Header":')).status, 400, 'not JSON: HTTP 400');
  tt.equal((await post(w.url, '/Transfer.nh', request('DrawingTransfer', {}))).status, 404, 'unknown API: 404');
  const iscd = await world(tt, { iscd: '000999' });
  tt.equal((await iscd.call('InquireBalance', { FinAcno: iscd.finAcno })).header['Rpcd'], SIM.REFUSED_TOKEN, 'another Iscd');
});

t.test('busy (S0001) processes nothing; the same IsTuno is then accepted', async (tt) => {
  const w = await world(tt, { maxInFlight: 1, latencyMs: 150 });
  const isTuno = nextIsTuno();
  const first = w.call('InquireBalance', { FinAcno: w.finAcno });
  while (w.sim.state.stats.inFlight === 0) await new Promise((r) => setTimeout(r, 2));
  const b = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '10' }, { IsTuno: isTuno });
  tt.equal((await first).header['Rpcd'], '00000');
  tt.equal(b.header['Rpcd'], SIM.BUSY);
  tt.equal((await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '10' }, { IsTuno: isTuno })).header['Rpcd'], '00000', 'resent under the same IsTuno');
});

t.test('onCall reports every request once it has ended: when it arrived and ended, and whether it counted against the cap', async (tt) => {
  const seen: Array<{ api: string; admitted: boolean; arrivedAt: number; endedAt: number }> = [];
  const w = await world(tt, { maxInFlight: 1, latencyMs: 120 }, { onCall: (c) => seen.push(c) });
  const before = performance.now();
  const first = w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '10' });
  while (w.sim.state.stats.inFlight === 0) await new Promise((r) => setTimeout(r, 2));
  tt.equal((await w.call('InquireBalance', { FinAcno: w.finAcno })).header['Rpcd'], SIM.BUSY, 'the second call, while the first holds the only slot: busy');
  tt.equal((await first).header['Rpcd'], '00000');
  while (seen.length < 2) await new Promise((r) => setTimeout(r, 2));
  const [busy, paid] = seen;
  tt.match(busy, { api: 'InquireBalance', admitted: false }, 'the refused call, reported first (it ended first), not counted against the cap');
  tt.match(paid, { api: 'DrawingTransfer', admitted: true }, 'the paid one, counted');
  tt.ok(paid!.arrivedAt >= before && paid!.endedAt - paid!.arrivedAt >= 119, `it took the latency (${(paid!.endedAt - paid!.arrivedAt).toFixed(1)} ms)`);
  tt.ok(busy!.arrivedAt > paid!.arrivedAt && busy!.endedAt < paid!.endedAt, 'times on one clock: the refusal came and went while the payout was in flight');
});

t.test('result checks: booked, refused for funds, never received, mismatched', async (tt) => {
  const w = await world(tt);
  const check = (ortr: Reply, fields: Json) => w.call('CheckOnDrawingTransfer', { OrtrYmd: ortr.header['Tsymd'], OrtrIsTuno: ortr.header['IsTuno'], ...fields });
  const pay = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '30000' });
  w.clock.now = new Date(START.getTime() + 3_600_000);
  const c1 = await check(pay, { FinAcno: w.finAcno, Tram: '30000' });
  ok(tt, 'CheckOnDrawingTransfer', c1);
  tt.match(c1.body, { Pcrs: '00000', Prtm: '101500' }, 'Prtm is the original processing time');
  const wd = await w.call('ReceivedTransferAccountNumber', { Bncd: '012', Acno: CORP, Tram: '999999' });
  tt.equal(wd.header['Rpcd'], SIM.FUNDS);
  const c2 = await w.call('CheckOnReceivedTransfer', { Bncd: '012', Acno: CORP, Tram: '999999', OrtrYmd: DAY, OrtrIsTuno: wd.header['IsTuno'] });
  ok(tt, 'CheckOnReceivedTransfer', c2);
  tt.equal(c2.body['Pcrs'], SIM.FUNDS, 'Pcrs = the refusal code');
  tt.equal((await w.call('CheckOnDrawingTransfer', { FinAcno: w.finAcno, Tram: '1', OrtrYmd: DAY, OrtrIsTuno: '777' })).header['Rpcd'], SIM.NOT_FOUND, 'never received');
  tt.equal((await check(pay, { FinAcno: w.finAcno, Tram: '30001' })).header['Rpcd'], SIM.MISMATCH, 'other Tram');
  tt.equal((await w.call('CheckOnReceivedTransfer', { Bncd: '011', Acno: SETTLE, Tram: '30000', OrtrYmd: DAY, OrtrIsTuno: pay.header['IsTuno'] })).header['Rpcd'], SIM.MISMATCH, 'another family');
  tt.equal((await w.call('CheckOnDrawingTransfer', { FinAcno: w.finAcno, Tram: '30000', OrtrYmd: '20250313', OrtrIsTuno: pay.header['IsTuno'] })).header['Rpcd'], SIM.NOT_FOUND, 'other OrtrYmd');
});

t.test('statement: published line fields, paging, passbook text, period rules, cancellation', async (tt) => {
  const w = await world(tt);
  const memo = '가나다라마바사아자차카타파하-ABCDEFGHIJ'; // 25 characters
  for (let i = 0; i < 250; i++) {
    const r = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: String(100 + i), DractOtlt: memo });
    if (r.header['Rpcd'] !== '00000') tt.fail(`transfer ${i}: ${String(r.header['Rpcd'])}`);
  }
  const hist = (fields: Json) => w.call('InquireTransactionHistory', { Bncd: '011', Acno: SETTLE, Insymd: DAY, Ineymd: DAY, Dmcnt: '100', ...fields });
  const pages: Reply[] = [];
  for (let p = 1; p <= 3; p++) pages.push(await hist({ PageNo: String(p), Lnsq: 'ASC', TrnsDsnc: 'A' }));
  pages.forEach((p, i) => ok(tt, 'InquireTransactionHistory', p, `page ${i + 1}`));
  tt.same(pages.map((p) => p.body['CtntDataYn']), ['Y', 'Y', 'N']);
  tt.same(pages.map((p) => p.body['Iqtcnt']), ['100', '100', '50']);
  tt.same(pages.map((p) => p.body['TotCnt']), ['250', '250', '250']);
  const lines = pages.flatMap((p) => p.body['REC'] as Json[]);
  tt.same(Object.keys(lines[0]!).sort(), ['AftrBlnc', 'BnprCntn', 'Ccyn', 'HnbrCd', 'HnisCd', 'MnrcDrotDsnc', 'Smr', 'Tram', 'Trdd', 'TrnsAfAcntBlncSmblCd', 'Tuno', 'Txtm'].sort());
  tt.match(lines[0], { Trdd: DAY, Txtm: '101500', MnrcDrotDsnc: '2', Tram: '100', AftrBlnc: '100', TrnsAfAcntBlncSmblCd: '+', Smr: '출금이체', Ccyn: '0', BnprCntn: [...memo].slice(0, PRINTED_MAX).join('') });
  tt.equal([...(lines[0]!['BnprCntn'] as string)].length, 20, 'BnprCntn cut to 20 characters');
  tt.equal(lines[249]!['AftrBlnc'], String((250 * 100) + (249 * 250) / 2));
  tt.equal(new Set(lines.map((l) => l['Tuno'])).size, 250);
  tt.equal(((await hist({ Lnsq: 'DESC' })).body['REC'] as Json[])[0]!['Tram'], '349', 'DESC: newest first');
  tt.equal((await hist({ TrnsDsnc: 'D' })).body['TotCnt'], '0', 'no withdrawals on the settlement account');
  const loan = await w.call('InquireTransactionHistory', { Bncd: '011', Acno: LOAN, Insymd: DAY, Ineymd: DAY, Dmcnt: '2' });
  tt.match(loan.body['REC'], [{ MnrcDrotDsnc: '1', Tram: '1000000' }, { MnrcDrotDsnc: '3', Tram: '100', AftrBlnc: '999900', BnprCntn: [...memo].slice(0, 20).join('') }]);
  tt.equal((await hist({ Insymd: '20241201', Ineymd: '20250314' })).header['Rpcd'], SIM.LAYOUT, 'over 3 months');
  tt.equal((await hist({ Insymd: '20250315', Ineymd: '20250314' })).header['Rpcd'], SIM.LAYOUT, 'start after end');
  tt.equal((await hist({ Insymd: '20240301', Ineymd: '20240401' })).header['Rpcd'], SIM.LAYOUT, 'start over a year back');
  tt.equal((await hist({ Insymd: '20240314', Ineymd: '20240401' })).header['Rpcd'], '00000', 'exactly a year back');
  tt.equal((await hist({ Bncd: OTHER_BNCD, Acno: OTHER })).header['Rpcd'], SIM.BANK_CODE, 'another bank\'s statement');
  tt.equal((await hist({ PageNo: '9' })).body['Iqtcnt'], '0', 'past the last page: empty');

  // The next day; then an admin cancellation of the first transfer.
  w.clock.now = new Date('2025-03-15T00:30:00Z');
  const first = (await w.admin.transfers())[0]!;
  await w.admin.cancel(first.tuno);
  const next = await hist({ Insymd: '20250315', Ineymd: '20250315' });
  tt.match(next.body['REC'], [{ Trdd: '20250315', Txtm: '093000', MnrcDrotDsnc: '3', Tram: '100', Ccyn: '1', Smr: '취소' }]);
  tt.equal((await w.admin.account('011', LOAN)).balance, 1_000_000n - 250n * 100n - (249n * 250n) / 2n + 100n);
  tt.equal((await w.admin.transfers())[0]!.cancelTuno !== null, true);
});

t.test('admin API: robust to bad input, optional token, codes, requests', async (tt) => {
  const w = await world(tt, { adminToken: 'adm', recordRequests: true });
  const get = (path: string, token?: string) => fetch(w.url + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  tt.equal((await get('/_sim/stats')).status, 401, 'no token: 401');
  tt.equal((await get('/_sim/stats', 'nope')).status, 401);
  tt.equal((await get('/_sim/accounts/011/%E0%A4%A', 'adm')).status, 400, 'malformed percent-encoding: 400');
  tt.equal((await get('/_sim/nothing', 'adm')).status, 404);
  tt.equal((await get('/_sim/accounts/011/55', 'adm')).status, 404);
  const badJson = await fetch(w.url + '/_sim/accounts', { method: 'POST', headers: { authorization: 'Bearer adm' }, body: '{oops' });
  tt.equal(badJson.status, 400, 'bad JSON: 400');
  const badRow = await fetch(w.url + '/_sim/accounts', { method: 'POST', headers: { authorization: 'Bearer adm' }, body: JSON.stringify({ accounts: [{ acno: 'x', balance: 1 }] }) });
  tt.equal(badRow.status, 400, 'bad rows: 400');
  tt.match(await w.admin.account('011', LOAN), { bncd: '011', acno: LOAN, balance: 1_000_000n, finAcno: w.finAcno, open: true }, 'still alive');
  const codes = await w.admin.codes();
  tt.same(codes.map((c) => c.rpcd), SIM_CODES.map((c) => c.rpcd));
  tt.ok(codes.every((c) => c.rpcd.startsWith('S')), 'every simulator code starts with S');
  tt.match(Object.fromEntries(codes.map((c) => [c.rpcd, c.class])), { S0001: 'retry', S0090: 'retry', S0211: 'final', S0212: 'final', S0213: 'final', S0220: 'final', S0300: 'not_found', S0013: null, S0230: null, S0002: null });
  await w.call('InquireBalance', { FinAcno: w.finAcno });
  const reqs = await w.admin.requests();
  tt.equal(reqs.length, 1);
  tt.match(reqs[0], { api: 'InquireBalance', body: { Header: { AccessToken: '***', Iscd: ISCD, FintechApsno: APSNO }, FinAcno: w.finAcno } });
  await w.admin.closeAccount('011', LOAN);
  tt.equal((await w.call('InquireBalance', { FinAcno: w.finAcno })).header['Rpcd'], SIM.ACCOUNT, 'closed account');
  const plain = await world(tt);
  tt.rejects(plain.admin.requests(), /404/, 'requests are not recorded by default');
});

/** The same sequence of requests, one at a time, against a fresh simulator: what each got. */
async function chaosRun(seed: number): Promise<{ outcomes: string[]; booked: string[]; faults: unknown }> {
  const tt = { teardowns: [] as Array<() => unknown>, teardown(fn: () => unknown) { this.teardowns.push(fn); } };
  const w = await world(tt, { seed, failBeforeRate: 0.15, timeoutAfterRate: 0.1, dropRate: 0.15, slowRate: 0.1, malformedRate: 0.15, slowMs: 5, timeoutHoldMs: 5 });
  const outcomes: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: String(1000 + i) }, { IsTuno: String(5000 + i) }).catch(() => null);
    outcomes.push(r === null ? 'no answer' : String(r.header['Rpcd'] ?? 'no header'));
  }
  await w.sim.whenIdle();
  const result = { outcomes, booked: w.sim.state.ledger.transfers.map((x) => x.isTuno), faults: w.sim.statsSnapshot()['faults'] };
  for (const fn of tt.teardowns) await fn();
  return result;
}

t.test('seeded faults are reproducible; faults hit money-moving APIs only unless asked', async (tt) => {
  const a = await chaosRun(42);
  tt.same(await chaosRun(42), a, 'seed 42 twice: the same outcomes, bookings and faults');
  tt.notSame((await chaosRun(43)).outcomes, a.outcomes, 'seed 43 differs');
  tt.ok(['S0090', 'no answer', 'no header', '00000'].every((o) => a.outcomes.includes(o)), `all kinds happened: ${a.outcomes.join(',')}`);
  const w = await world(tt, { failBeforeRate: 1 });
  tt.equal((await w.call('InquireBalance', { FinAcno: w.finAcno })).header['Rpcd'], '00000', 'reads are not faulted');
  const isTuno = nextIsTuno();
  tt.equal((await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '5' }, { IsTuno: isTuno })).header['Rpcd'], SIM.SYSTEM_ERROR);
  w.sim.configure({ failBeforeRate: 0, faultsOnInquiry: true, timeoutAfterRate: 1, timeoutHoldMs: 5 });
  tt.equal(await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '5' }, { IsTuno: isTuno }).then(() => 'answered', () => 'no answer'), 'no answer', 'timeout-after: held, then cut');
  tt.equal((await w.admin.transfers()).length, 1, 'booked although unanswered (S0090 had not used up the IsTuno)');
  tt.equal(await w.call('InquireBalance', { FinAcno: w.finAcno }).then(() => 'answered', () => 'no answer'), 'no answer', 'faultsOnInquiry');
});

t.test('never more than max-in-flight processed at once', async (tt) => {
  const w = await world(tt, { maxInFlight: 4, latencyMs: 40, jitterMs: 10 });
  const replies = await Promise.all(Array.from({ length: 20 }, () => w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '1' })));
  const codes = replies.map((r) => r.header['Rpcd']);
  const stats = await w.admin.stats();
  tt.ok(stats.maxInFlight <= 4, `max in flight ${stats.maxInFlight}`);
  tt.ok(codes.includes(SIM.BUSY), 'the cap was reached');
  tt.equal(codes.filter((c) => c === '00000').length + codes.filter((c) => c === SIM.BUSY).length, 20);
  tt.equal(stats.booked, codes.filter((c) => c === '00000').length);
  tt.equal(stats.rejected['busy'], codes.filter((c) => c === SIM.BUSY).length);
});

t.test('close() ends promptly even with a held socket', async (tt) => {
  const s = await startBankSimulator({ timeoutAfterRate: 1, timeoutHoldMs: 60_000 });
  const answered = new Promise<string>((resolve) => {
    const req = http.request(`${s.url}/DrawingTransfer.nh`, { method: 'POST' }, () => resolve('answered'));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end(JSON.stringify(request('DrawingTransfer', { FinAcno: '1', Tram: '5' })));
  });
  while (s.state.ledger.processed.size === 0) await new Promise((r) => setImmediate(r));
  tt.equal(s.state.stats.inFlight, 1);
  const t0 = performance.now();
  await s.close();
  tt.ok(performance.now() - t0 < 1000, 'closed promptly');
  tt.equal(await answered, 'ECONNRESET');
});
