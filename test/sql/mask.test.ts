/**
 * Issue 23, item 2: account numbers and FinAcnos are masked where the SQL
 * makes text (settlement.mask_account / mask_json), and an operator reveals
 * one on purpose (settlement.reveal_account): audited, with a reason, refused
 * to every other role; bad input is a named error and changes nothing.
 */
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { seed } from '../../src/seed.js';
import { maskAccount, maskJsonValue } from '../../src/mask.js';
import { freshDb } from '../helpers/db.js';
import { noonSeoul, pastDate } from '../helpers/fixtures.js';
import { roleSessions } from '../helpers/roles.js';

const FIN30 = '008200000000000000000000123456'; // 30 digits

t.test('mask_account and mask_json: the SQL twin of src/mask.ts', async (t) => {
  const { db } = await freshDb(t);
  const m = (v: string | null) => db.oneFirst(sql.type(z.object({ m: z.string().nullable() }))`select settlement.mask_account(${v}::text) as m`);
  t.equal(await m(null), null, 'null stays null');
  t.equal(await m(''), '****', 'empty: ****');
  t.equal(await m('123'), '****', 'short input shows nothing of it');
  t.equal(await m('1234'), '****', 'four characters: nothing of it either');
  t.equal(await m('1000000001'), '****0001', 'a 10-digit account: its last four');
  t.equal(await m('123456'), '****3456', 'a 6-digit account');
  t.equal(await m(FIN30), '****3456', 'a 30-digit FinAcno');
  for (const v of ['123', '1000000001', FIN30]) t.equal(await m(v), maskAccount(v), `SQL and TypeScript agree on ${v.length} digits`);
  t.equal(maskAccount(null), '', 'TypeScript: null shows as nothing');

  const row = { kind: 'tax', settlement_account: '2000000001', corporate_account: '300-000-0001', fin_acno: FIN30, amount: 1234567890123, note: '1000000001 in prose is not a key', nested: [{ to: '1000000002', from: '1000000003' }] };
  const j = await db.oneFirst(sql.type(z.object({ j: z.any() }))`select settlement.mask_json(${JSON.stringify(row)}::jsonb) as j`);
  const want = { kind: 'tax', settlement_account: '****0001', corporate_account: '****0001', fin_acno: '****3456', amount: 1234567890123, note: '1000000001 in prose is not a key', nested: [{ to: '****0002', from: '****0003' }] };
  t.same(j, want, 'strings of digits under account keys masked, at any depth; other values as they are');
  t.same(maskJsonValue(row), want, 'maskJsonValue (TypeScript) masks the same keys');
  t.equal(await db.oneFirst(sql.type(z.object({ j: z.any() }))`select settlement.mask_json(null) as j`), null, 'mask_json(null) is null');
});

t.test('text made in SQL names accounts masked: stage detail, errors, alerts', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 3, kinds: ['tax'] });
  const accounts = await db.anyFirst(sql.type(z.object({ a: z.string() }))`select account_no as a from settlement.accounts order by 1`);
  const noFull = (text: string | null, what: string) => {
    const leaked = accounts.filter((a) => (text ?? '').includes(a));
    t.same(leaked, [], `${what}: no full account number (${text})`);
  };

  // The pay stage waiting for registrations names the loan accounts.
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);
  const detail = await db.oneFirst(sql.type(z.object({ d: z.string().nullable() }))`
    select detail as d from settlement.stage_runs where business_date = ${D}::date and kind = 'tax' and stage = 'pay'`);
  t.match(detail, /waiting for the fin-accounts of \d loan account\(s\) \(\*\*\*\*0001, /, 'the waiting accounts by their last four');
  noFull(detail, 'pay stage detail');

  // An error naming an account (the lending core's accrue of an unknown one).
  const err = await db.query(sql.unsafe`select settlement.accrue('r-x', '9876543210', 'tax', 100, ${noonSeoul(D)}::timestamptz)`).then(() => null, (e: Error) => e.message);
  t.match(err, /\*\*\*\*3210 is not a known loan account/, 'accrue: the unknown account masked');
  t.notMatch(err, /9876543210/, 'and not in full');

  // A refused FinAcno (30 digits): the alert's text and key.
  const r = await db.oneFirst(sql.type(z.object({ r: z.string() }))`select settlement.record_fin_account('1000000001', 'RG1', ${FIN30}, '20260101') as r`);
  t.equal(r, 'refused', 'a FinAcno this system did not ask for is refused');
  const alert = await db.one(sql.type(z.object({ key: z.string(), message: z.string() }))`select key, message from settlement.alerts where problem = 'fin_acno_refused'`);
  t.match(alert.message, /FinAcno \*\*\*\*3456 \(Rgno RG1\) for loan account \*\*\*\*0001 refused/, 'the alert names both masked');
  t.notMatch(alert.message, new RegExp(FIN30), 'not the FinAcno in full');
  noFull(alert.message, 'fin_acno_refused alert');
  noFull(alert.key, 'fin_acno_refused alert key');

  // A proposed change of a kind's corporate account: its alert.
  await db.query(sql.unsafe`select settlement.propose_change('accounts', '{"account_no": "3000000777", "role": "corporate", "bank_code": "011", "holder": "new corp"}', 'test: new corporate account')`);
  const changeAlerts = await db.anyFirst(sql.type(z.object({ m: z.string() }))`select message as m from settlement.alerts where problem like 'change_%'`);
  t.ok(changeAlerts.length > 0, 'the proposal raised an alert');
  for (const m of changeAlerts) {
    t.match(m, /\*\*\*\*0777/, 'the change alert names the account by its last four');
    t.notMatch(m, /3000000777/, 'not in full');
  }
  // A change that cannot apply: its error names the account masked.
  const bad = await db.query(sql.unsafe`select settlement.propose_change('fin_acno', '{"account_no": "2000000001", "fin_acno": "00820000000000000001"}', 'test')`).then(() => null, (e: Error) => e.message);
  t.match(bad, /\*\*\*\*0001 is not a known loan account/, 'a refused change names the account masked');
  noFull(bad, 'refused change');
});

t.test('reveal_account: one account in full, on purpose, audited; operators only; bad input changes nothing', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 3, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082000000000000000' || account_no where role = 'loan'`);
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);
  const transfer = await db.oneFirst(sql.type(z.object({ id: z.bigint() }))`select id from settlement.transfers where from_account = '1000000002' order by id limit 1`);
  const actions = () => db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.operator_actions where action = 'reveal_account'`);

  const as = roleSessions(t, url, 'mask');
  const DENIED = '42501';
  for (const role of ['settlement_viewer', 'settlement_worker', 'settlement_ingest']) {
    const s = await as(role);
    t.equal(await s(`select * from settlement.reveal_account('****0002', 'curious', ${transfer}, 'loan')`), DENIED, `${role}: may not reveal an account`);
  }
  t.equal(await actions(), 0, 'a refused role leaves no trace but the refusal');

  const op = await as('settlement_operator');
  // Seed numbers loan accounts and each kind's accounts ...0001 upwards: ****0001 is a loan, the tax settlement and the tax corporate account.
  t.equal(await op(`select * from settlement.reveal_account('****0001', 'checking a payout')`), 'ST082', 'several accounts end in 0001: ambiguous (ST082)');
  t.equal(await op(`select * from settlement.reveal_account('****0002', null, ${transfer}, 'loan')`), 'ST040', 'no reason: ST040');
  t.equal(await op(`select * from settlement.reveal_account('1000000002', 'x')`), 'ST080', 'a full number is not a reference: ST080');
  t.equal(await op(`select * from settlement.reveal_account(null, 'x')`), 'ST080', 'null reference: ST080');
  t.equal(await op(`select * from settlement.reveal_account('****0002', 'x', null, 'boss')`), 'ST080', 'an unknown role: ST080');
  t.equal(await op(`select * from settlement.reveal_account('****9999', 'x')`), 'ST081', 'no account ends in 9999: ST081');
  t.equal(await op(`select * from settlement.reveal_account('****0002', 'x', 999999, 'loan')`), 'ST008', 'an unknown transfer: ST008');
  t.equal(await actions(), 0, 'bad input changes nothing: no audit row');

  t.equal(await op(`select * from settlement.reveal_account('****0002', 'payout #${transfer} questioned by the borrower', ${transfer}, 'loan')`), 'ok', 'an operator reveals the loan account of a transfer');
  const audit = await db.one(sql.type(z.object({ db_user: z.string(), reason: z.string().nullable(), args: z.any(), result: z.any() }))`
    select db_user, reason, args, result from settlement.operator_actions where action = 'reveal_account'`);
  t.match(audit.db_user, /^settle_t_maskoperator_/, 'the audit says who (the login)');
  t.equal(audit.reason, `payout #${transfer} questioned by the borrower`, 'and why');
  t.same(audit.args, { ref: '****0002', transfer: Number(transfer), role: 'loan' }, 'what was asked');
  t.same(audit.result, { account_no: '1000000002', role: 'loan' }, 'and which account was shown');
  t.equal(maskJsonValue(audit.result) && (maskJsonValue(audit.result) as { account_no: string }).account_no, '****0002', 'what shows the audit masks it (console, maskJson)');

  const shown = await db.one(sql.type(z.object({ account_no: z.string(), role: z.string(), bank_code: z.string(), fin_acno: z.string().nullable() }))`
    select * from settlement.reveal_account('0002', 'owner check', ${transfer}, 'loan')`);
  t.same(shown, { account_no: '1000000002', role: 'loan', bank_code: '011', fin_acno: '00820000000000000001000000002' }, 'the full number and FinAcno');
  t.equal(await actions(), 2, 'each reveal is one audit row');
  // By the FinAcno's digits too, and narrowed by role alone.
  const bySettlement = await db.oneFirst(sql.type(z.object({ a: z.string() }))`select account_no as a from settlement.reveal_account('****0001', 'x', null, 'settlement')`);
  t.equal(bySettlement, '2000000001', 'the settlement account ending in 0001');
});
