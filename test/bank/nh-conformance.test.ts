/**
 * Conformance with NH-API.md (src/nh/contract.ts is its executable copy).
 *
 * (a) The simulator: NH's published example request, sent as published after
 *     seeding what it names, is answered in the published shape; and every API,
 *     called with exactly its published request fields, answers exactly its
 *     published answer fields. No database.
 */
import t from 'tap';
import { startBankSimulator } from '../../src/bank-sim/simulator.js';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { APIS, REQUEST_FIELDS, RESPONSE_FIELDS, checkRequest, checkResponse, defaultApiSvcCodes, type ApiNm } from '../../src/nh/contract.js';
import { CORP, LOAN, OTHER, OTHER_BNCD, SETTLE, post, world, type Json } from '../helpers/sim.js';

/** NH-API.md, "Published example (DrawingTransfer)", verbatim (the AccessToken is published as "…"). */
const EXAMPLE_REQUEST = {
  Header: {
    ApiNm: 'DrawingTransfer',
    Tsymd: '20191129',
    Trtm: '125237',
    Iscd: '900001',
    FintechApsno: '001',
    ApiSvcCd: 'DrawingTransferA',
    IsTuno: '201911290000000001',
    AccessToken: '…',
  },
  FinAcno: '00820109000010001413',
  Tram: '1000000',
  DractOtlt: '테스트',
  MractOtlt: '테스트',
};
const EXAMPLE_ANSWER = {
  Header: {
    ApiNm: 'DrawingTransfer',
    Tsymd: '20191129',
    Trtm: '125237',
    Iscd: '900001',
    FintechApsno: '001',
    ApiSvcCd: 'DrawingTransferA',
    IsTuno: '201911290000000001',
    Rpcd: '00000',
    Rsms: '정상처리 되었습니다.',
  },
  FinAcno: '00820100000190001639',
  RgsnYmd: '20191124',
};

t.test('(a) the published DrawingTransfer example is answered in the published shape', async (tt) => {
  tt.same(checkRequest('DrawingTransfer', EXAMPLE_REQUEST), [], 'the example itself follows the published layout');
  tt.same(checkResponse('DrawingTransfer', EXAMPLE_ANSWER), [], 'and so does its answer');

  // The example's institution, app and token; its fin-account registered on 2019-11-24; a contract
  // allowing 1,000,000 KRW per call (NH's example moves that much; the limit is the contract's).
  let now = new Date('2019-11-24T01:00:00Z');
  const sim = await startBankSimulator({ accessToken: '…', iscd: '900001', perCallLimit: 1_000_000n }, { now: () => now });
  tt.teardown(() => sim.close());
  const admin = simAdminClient(sim.url);
  await admin.openAccounts([
    { bncd: '011', acno: '3021234567801', balance: 5_000_000n },
    { bncd: '011', acno: '3029999999901', balance: 0n },
  ]);
  await admin.registerContracts([{ iscd: '900001', fintechApsno: '001', bncd: '011', acno: '3029999999901' }]);
  await admin.registerFinAccounts([{ bncd: '011', acno: '3021234567801', finAcno: '00820109000010001413' }]);
  now = new Date('2019-11-29T03:52:37Z'); // 12:52:37 KST

  const r = await post(sim.url, '/DrawingTransfer.nh', EXAMPLE_REQUEST);
  tt.equal(r.status, 200);
  tt.same(checkResponse('DrawingTransfer', r.body), [], 'published shape');
  tt.same(r.body['Header'], EXAMPLE_ANSWER.Header, 'the published answer header, exactly');
  tt.same(Object.keys(r.body).sort(), Object.keys(EXAMPLE_ANSWER).sort(), 'the published answer fields, no other');
  // NH's example answers another FinAcno than it was asked about; the simulator answers the one asked about.
  tt.same({ FinAcno: r.body['FinAcno'], RgsnYmd: r.body['RgsnYmd'] }, { FinAcno: EXAMPLE_REQUEST.FinAcno, RgsnYmd: EXAMPLE_ANSWER.RgsnYmd });
  tt.equal((await admin.account('011', '3029999999901')).balance, 1_000_000n, 'booked into the contracted account');

  const again = await post(sim.url, '/DrawingTransfer.nh', EXAMPLE_REQUEST);
  tt.equal((again.body['Header'] as Json)['Rsms'], '중복된 기관거래고유번호입니다. 다시 확인바랍니다.', 'sent twice: NH\'s published duplicate message');
});

t.test('(a) every API, called with exactly its published fields, answers exactly its published fields', async (tt) => {
  const w = await world(tt);
  await w.admin.openAccounts([{ acno: '3020000000555', balance: 1n }]);
  const day = '20250314';
  const paid = await w.call('DrawingTransfer', { FinAcno: w.finAcno, Tram: '1000', DractOtlt: '이자', MractOtlt: '이자' });
  const wd = await w.call('ReceivedTransferAccountNumber', { Bncd: '011', Acno: LOAN, Tram: '500', DractOtlt: '출금', MractOtlt: '입금' });
  const rgno = (await w.call('OpenFinAccountDirect', { DrtrRgyn: 'Y', BrdtBrno: '900101', Bncd: '011', Acno: '3020000000555' })).body['Rgno'];
  const requests: Record<ApiNm, Json> = {
    DrawingTransfer: { FinAcno: w.finAcno, Tram: '1000', DractOtlt: '이자', MractOtlt: '이자' },
    CheckOnDrawingTransfer: { FinAcno: w.finAcno, Tram: '1000', OrtrYmd: day, OrtrIsTuno: paid.header['IsTuno'] },
    ReceivedTransferAccountNumber: { Bncd: '012', Acno: CORP, Tram: '100', DractOtlt: '출금', MractOtlt: '입금' },
    ReceivedTransferOtherBank: { Bncd: OTHER_BNCD, Acno: OTHER, Tram: '100', DractOtlt: '출금', MractOtlt: '입금' },
    CheckOnReceivedTransfer: { Bncd: '011', Acno: LOAN, Tram: '500', OrtrYmd: day, OrtrIsTuno: wd.header['IsTuno'] },
    InquireTransactionHistory: { Bncd: '011', Acno: SETTLE, Insymd: day, Ineymd: day, TrnsDsnc: 'A', Lnsq: 'ASC', PageNo: '1', Dmcnt: '100' },
    InquireBalance: { FinAcno: w.finAcno },
    OpenFinAccountDirect: { DrtrRgyn: 'Y', BrdtBrno: '900101', Bncd: '011', Acno: LOAN },
    CheckOpenFinAccountDirect: { Rgno: rgno, BrdtBrno: '900101' },
  };
  for (const api of APIS) {
    tt.same(Object.keys(requests[api]).sort(), Object.keys(REQUEST_FIELDS[api]).sort(), `${api}: every published request field is sent`);
    const r = await w.call(api, requests[api]);
    tt.equal(r.header['Rpcd'], '00000', `${api}: 00000 (${String(r.header['Rsms'])})`);
    tt.same(checkResponse(api, r.body), [], `${api}: the published answer shape`);
    const expected = [...Object.keys(RESPONSE_FIELDS[api]), ...(api === 'InquireTransactionHistory' ? ['REC'] : []), 'Header'];
    tt.same(Object.keys(r.body).sort(), expected.sort(), `${api}: every published answer field, no other`);
    tt.equal(r.header['ApiSvcCd'], defaultApiSvcCodes()[api]);
  }
});
