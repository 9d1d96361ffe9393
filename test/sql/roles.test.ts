import t from 'tap';
import { sql } from 'slonik';
import { seed } from '../../src/seed.js';
import { freshDb } from '../helpers/db.js';
import { noonSeoul, pastDate } from '../helpers/fixtures.js';
import { roleSessions } from '../helpers/roles.js';

/** What each role may do, and what it is refused — tried over a real login. */
t.test('each role may do its work and nothing else', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 2, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);

  const as = roleSessions(t, url, '');
  const DENIED = '42501';
  const at = noonSeoul(D);

  const ingest = await as('settlement_ingest');
  t.equal(await ingest(`select settlement.accrue('r-ingest', '1000000001', 'tax', 100, '${at}')`), 'ok', 'ingest: accrue');
  t.equal(await ingest(`select * from settlement.accruals`), DENIED, 'ingest: cannot read tables');
  t.equal(await ingest(`select * from settlement.daily_status`), DENIED, 'ingest: cannot read the views');
  t.equal(await ingest(`insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date) values ('x', '1000000001', 'tax', 1, now(), current_date, current_date)`), DENIED, 'ingest: cannot write tables');
  t.equal(await ingest(`select settlement.enqueue_stage('record')`), DENIED, 'ingest: no operator functions');

  const viewer = await as('settlement_viewer');
  t.equal(await viewer(`select * from settlement.daily_status`), 'ok', 'viewer: daily_status');
  t.equal(await viewer(`select * from settlement.payout_failures`), 'ok', 'viewer: payout_failures');
  t.equal(await viewer(`select * from settlement.transfers`), DENIED, 'viewer: not the tables');
  t.equal(await viewer(`select settlement.accrue('r-viewer', '1000000001', 'tax', 100, '${at}')`), DENIED, 'viewer: cannot accrue');
  t.equal(await viewer(`select settlement.retry_failed('${D}', 'tax')`), DENIED, 'viewer: cannot retry');

  const operator = await as('settlement_operator');
  t.equal(await operator(`select settlement.enqueue_stage('confirm', '${D}', 'tax')`), 'ok', 'operator: enqueue_stage');
  t.equal(await operator(`select settlement.retry_failed('${D}', 'tax')`), 'ok', 'operator: retry_failed');
  t.equal(await operator(`select * from settlement.transfers`), 'ok', 'operator: reads the tables');
  t.equal(await operator(`insert into settlement.bank_codes (rpcd, api, class, note) values ('X0001', '*', 'retry', 'test')`), DENIED, 'operator: bank codes only through propose_change (issue 22)');
  t.equal(await operator(`update settlement.transfers set state = 'failed', fail_code = 'X' where id = 1`), DENIED, 'operator: cannot change a transfer');
  t.equal(await operator(`update settlement.journal_lines set amount = 1`), DENIED, 'operator: cannot rewrite the journal');
  t.equal(await operator(`set session_replication_role = replica`), DENIED, 'operator: cannot switch triggers off');
  t.equal(await operator(`select settlement.finish_transfers('{1}', '{1}', '{succeeded}', '{20260101120000}', '{NULL}', '{NULL}', '{}')`), DENIED, 'operator: cannot record bank answers');
  t.equal(await operator(`select settlement.claim_transfers('{1}', '{w}', 1000, 0, '{}', 0)`), DENIED, 'operator: cannot claim transfers');
  t.equal(await operator(`select graphile_worker.add_job('transfer', '{"transfer_id":1}')`), DENIED, 'operator: cannot add jobs behind the functions');

  const worker = await as('settlement_worker');
  t.equal(await worker(`select * from settlement.claim_transfers('{1}', '{w}', 1000, 0, '{}', 0)`), 'ok', 'worker: claim_transfers');
  t.equal(await worker(`select * from settlement.open_days()`), 'ok', 'worker: open_days');
  t.equal(await worker(`select * from settlement.bank_codes`), 'ok', 'worker: reads the bank codes');
  t.equal(await worker(`update settlement.transfers set amount = 1`), DENIED, 'worker: cannot write tables');
  t.equal(await worker(`insert into settlement.journal_entries (business_date, kind, event, ref) values (current_date, 'tax', 'correction', 'x')`), DENIED, 'worker: cannot post journal entries directly');
  t.equal(await worker(`select settlement.post_journal(current_date, 'tax', 'correction', 'x', '[]', '')`), DENIED, 'worker: no corrections');
  t.equal(await worker(`select settlement.configure('UTC', 1, 1)`), DENIED, 'worker: cannot rewrite the shared settings');
  t.equal(await worker(`select settlement.accrue('r-worker', '1000000001', 'tax', 100, '${at}')`), DENIED, 'worker: cannot accrue');

  for (const who of [ingest, viewer, operator, worker]) {
    t.equal(await who(`select settlement.set_stage('${D}', 'tax', 'withdraw', 'done', 'x')`), DENIED, 'internal functions are owner-only');
  }
});
