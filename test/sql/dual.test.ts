import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { seed } from '../../src/seed.js';
import { adminQuery, freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { asLogin, roleSessions } from '../helpers/roles.js';

type T = { teardown(fn: () => unknown): void };

/** A real login holding `role`, as a pg client (dropped when the test ends). */
async function person(t: T, url: string, role: string, tag: string): Promise<pg.Client> {
  const name = `settle_p_${tag}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create role ${name} login password 'pw'; grant ${role} to ${name}`);
  const c = new pg.Client({ connectionString: asLogin(url, { name, password: 'pw' }) });
  await c.connect();
  t.teardown(async () => {
    await c.end().catch(() => undefined);
    await adminQuery(`drop role if exists ${name}`).catch(() => undefined);
  });
  return c;
}

/** 'ok' or the error's SQLSTATE. */
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string; message: string }) => e.code ?? e.message);
const one = async <R>(c: pg.Client, q: string, params: unknown[] = []) => (await c.query(q, params)).rows[0] as R;

const TABLE_WRITES: Record<string, string[]> = {
  accounts: [
    `insert into settlement.accounts (account_no, role) values ('9990000001', 'corporate')`,
    `update settlement.accounts set fin_acno = '99912345' where role = 'loan'`,
    `delete from settlement.accounts where account_no = '9990000001'`,
  ],
  contracts: [
    `insert into settlement.contracts (fintech_apsno, settlement_account) values ('099', '2000000001')`,
    `update settlement.contracts set settlement_account = settlement_account`,
    `delete from settlement.contracts where fintech_apsno = '099'`,
  ],
  kind_accounts: [
    `insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno) values ('upfront_fee', '2000000001', '3000000001', '001')`,
    `update settlement.kind_accounts set corporate_account = '3000000002' where kind = 'tax'`,
    `delete from settlement.kind_accounts where kind = 'upfront_fee'`,
  ],
  limits: [`insert into settlement.limits default values`, `update settlement.limits set max_accrual_amount = 99999999999`, `delete from settlement.limits`],
  bank_codes: [
    `insert into settlement.bank_codes (rpcd, api, class) values ('X0001', '*', 'final')`,
    `update settlement.bank_codes set class = 'final'`,
    `delete from settlement.bank_codes`,
  ],
  ops_settings: [`insert into settlement.ops_settings default values`, `update settlement.ops_settings set withdraw_deadline = '30 days'`, `delete from settlement.ops_settings`],
};

t.test('the reference tables refuse direct writes from every application role; operators read the audit; run_stage is audited', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 2, kinds: ['tax'] });
  const as = roleSessions(t, url, 'dw');
  for (const role of ['settlement_ingest', 'settlement_viewer', 'settlement_operator', 'settlement_worker']) {
    const who = await as(role);
    for (const [table, writes] of Object.entries(TABLE_WRITES)) {
      for (const w of writes) t.equal(await who(w), '42501', `${role}: ${table} refuses ${w.split(' ')[0]}`);
    }
  }
  const before = await db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`);
  t.equal(before, '3000000001', 'the payee is untouched');

  const operator = await roleSessions(t, url, 'dx')('settlement_operator');
  t.equal(await operator(`select * from settlement.operator_actions`), 'ok', 'operator: reads the audit');
  t.equal(await operator(`select * from settlement.changes`), 'ok', 'operator: reads the proposed changes');
  t.equal(await operator(`set settlement.reason = 'by hand'; select settlement.run_stage('record', '${D}', 'tax')`), 'ok', 'operator: run_stage');
  const audit = await db.any(sql.type(z.object({ action: z.string(), reason: z.string().nullable(), db_user: z.string(), result: z.unknown() }))`
    select action, reason, db_user, result from settlement.operator_actions where action = 'run_stage'`);
  t.equal(audit.length, 1, 'an operator run_stage writes its operator_actions row');
  t.equal(audit[0]?.reason, 'by hand');
  t.match(audit[0]?.db_user, /^settle_t_dxoperator_/, 'with the login');
  t.match(audit[0]?.result, { outcome: 'done' }, 'and the outcome');
});

t.test('a payee change: proposed by one login, approved by another, applied once, audited with before/after and both people; alerts', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const alice = await person(t, url, 'settlement_operator', 'alice');
  const bob = await person(t, url, 'settlement_operator', 'bob');
  const aliceName = (await one<{ u: string }>(alice, 'select session_user as u')).u;
  const bobName = (await one<{ u: string }>(bob, 'select session_user as u')).u;

  // A new corporate account needs two people too.
  const acc = await one<{ id: string }>(alice, `select settlement.propose_change('accounts', '{"account_no":"3999999999","role":"corporate","bank_code":"011","holder":"new corp"}', 'new tax corporate account') as id`);
  t.equal(await code(db.query(sql.unsafe`select 1 from settlement.accounts where account_no = '3999999999' having count(*) = 0`)), 'ok');
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'checked the contract')`, [acc.id])), 'ok', 'a second login approves the new account');

  const id = (await one<{ id: string }>(alice, `select settlement.propose_change('kind_accounts', '{"kind":"tax","corporate_account":"3999999999"}', 'tax is paid to the new corporate account') as id`)).id;
  const pending = await one<{ state: string; needs_two: boolean; before: { corporate_account: string }; after: { corporate_account: string } }>(
    bob, `select state, needs_two, before, after from settlement.changes where id = $1`, [id]);
  t.same([pending.state, pending.needs_two, pending.before.corporate_account, pending.after.corporate_account], ['pending', true, '3000000001', '3999999999'],
    'pending, needs two people, shows the row before and after');
  t.equal(await db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`), '3000000001', 'nothing applied on a proposal');

  t.equal(await code(alice.query(`select settlement.approve_change($1, 'me again')`, [id])), 'ST064', 'the proposer cannot approve (ST064)');
  t.equal(await code(bob.query(`select settlement.approve_change($1, '')`, [id])), 'ST040', 'an approval needs a reason (ST040)');
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'called the CFO back')`, [id])), 'ok', 'another login approves');
  t.equal(await db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`), '3999999999', 'applied');
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'twice')`, [id])), 'ST062', 'applied once: a second approval is refused (ST062)');
  t.equal(await code(alice.query(`select settlement.reject_change($1, 'too late')`, [id])), 'ST062', 'and so is a rejection after it');

  const audit = await one<{ db_user: string; args: { proposed_by: string; approved_by: string; before: { corporate_account: string }; after: { corporate_account: string } }; reason: string }>(
    alice, `select db_user, args, reason from settlement.operator_actions where action = 'approve_change' and (args ->> 'id')::bigint = $1`, [id]);
  t.equal(audit.db_user, bobName, 'the audit names the approver as the acting login');
  t.same([audit.args.proposed_by, audit.args.approved_by], [aliceName, bobName], 'and both people');
  t.same([audit.args.before.corporate_account, audit.args.after.corporate_account], ['3000000001', '3999999999'], 'and the row before and after');
  t.equal(audit.reason, 'called the CFO back');
  const proposedAudit = await one<{ n: string }>(bob, `select count(*) as n from settlement.operator_actions where action = 'propose_change' and db_user = $1`, [aliceName]);
  t.equal(proposedAudit.n, '2', 'each proposal is audited');
  const alerts = await db.anyFirst(sql.type(z.object({ key: z.string() }))`select key from settlement.alerts where key like ${'change:' + id + ':%'} order by id`);
  t.same(alerts, [`change:${id}:proposed`, `change:${id}:applied`], 'a proposal and an applied change each raise an alert');
  const jobs = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where task_identifier = 'alert'`);
  t.ok(jobs >= 4n, 'with their alert jobs');
});

t.test('an expired proposal cannot be approved; a rejected one neither; a stale one is refused', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const alice = await person(t, url, 'settlement_operator', 'alice');
  const bob = await person(t, url, 'settlement_operator', 'bob');

  const id = (await one<{ id: string }>(alice, `select settlement.propose_change('kind_accounts', '{"kind":"tax","corporate_account":"3000000002"}', 'move tax') as id`)).id;
  const exp = await one<{ h: string }>(alice, `select extract(epoch from expires_at - proposed_at)::int::text as h from settlement.changes where id = $1`, [id]);
  t.equal(exp.h, String(24 * 3600), 'proposals expire after 24 hours by default');
  // Expiry is the database's: move it to just before the database's now.
  await db.query(sql.unsafe`update settlement.changes set expires_at = now() - interval '1 second' where id = ${id}`);
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'ok')`, [id])), 'ST063', 'expired: refused (ST063)');
  t.equal(await db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`), '3000000001', 'nothing changed');
  t.equal((await one<{ s: string }>(bob, `select state as s from settlement.change_list() where id = $1`, [id])).s, 'expired', 'listed as expired');

  const id2 = (await one<{ id: string }>(alice, `select settlement.propose_change('bank_codes', '{"rpcd":"E9999","class":"final","note":"x"}', 'a code') as id`)).id;
  t.equal(await code(bob.query(`select settlement.reject_change($1, '')`, [id2])), 'ST040', 'a rejection needs a reason');
  t.equal(await code(bob.query(`select settlement.reject_change($1, 'no such code in the contract')`, [id2])), 'ok', 'rejected');
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'changed my mind')`, [id2])), 'ST062', 'a rejected change cannot be approved');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.bank_codes where rpcd = 'E9999'`), 0n, 'nothing applied');

  // Raising a limit needs two; lowering is applied at once by one person.
  const raise = (await one<{ id: string }>(alice, `select settlement.propose_change('limits', '{"max_accrual_amount":20000000000}', 'bigger loans') as id`)).id;
  const lower = (await one<{ id: string; }>(alice, `select settlement.propose_change('limits', '{"max_accrual_amount":5000000000}', 'smaller loans') as id`)).id;
  t.equal((await one<{ s: string; n: boolean }>(alice, `select state as s, needs_two as n from settlement.changes where id = $1`, [lower])).s, 'applied', 'lowering a limit: applied by one person');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select max_accrual_amount as n from settlement.limits`), 5000000000n);
  t.equal((await one<{ n: boolean }>(alice, `select needs_two as n from settlement.changes where id = $1`, [raise])).n, true, 'raising needs two');
  t.equal(await code(bob.query(`select settlement.approve_change($1, 'ok')`, [raise])), 'ST065', 'the row changed since the proposal: refused (ST065)');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select max_accrual_amount as n from settlement.limits`), 5000000000n, 'nothing changed');
});

t.test('bad proposals get named errors and change nothing', async (t) => {
  const { url, db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const alice = await person(t, url, 'settlement_operator', 'alice');
  const propose = (target: string, change: string, reason = 'because') =>
    code(alice.query(`select settlement.propose_change($1, $2::jsonb, $3)`, [target, change, reason]));
  t.equal(await propose('transfers', '{"id":1}'), 'ST060', 'unknown target (ST060)');
  t.equal(await propose('kind_accounts', '{"kind":"tax","corporate_account":"3000000002","evil":1}'), 'ST060', 'unknown column (ST060)');
  t.equal(await propose('kind_accounts', '{"kind":"no_such_kind","corporate_account":"3000000002"}'), 'ST060', 'bad kind (ST060)');
  t.equal(await propose('kind_accounts', '{"kind":"tax","corporate_account":"3777777777"}'), 'ST060', 'an account that does not exist (ST060)');
  t.equal(await propose('kind_accounts', '{"kind":"tax","corporate_account":"1000000001"}'), 'ST060', 'a loan account as the corporate account (ST060)');
  t.equal(await propose('kind_accounts', '{"corporate_account":"3000000002"}'), 'ST060', 'no key (ST060)');
  t.equal(await propose('kind_accounts', '[1]'), 'ST060', 'not an object (ST060)');
  t.equal(await propose('limits', '{"max_accrual_amount":-1}'), 'ST060', 'a limit out of range (ST060)');
  t.equal(await propose('ops_settings', '{"withdraw_deadline":"soon"}'), 'ST060', 'an interval that is not one (ST060)');
  t.equal(await propose('accounts', '{"account_no":"1000000001","role":"corporate"}'), 'ST060', 'an account cannot change its role (ST060)');
  t.equal(await propose('accounts', '{"account_no":"1000000001","fin_acno":"123"}'), 'ST060', 'a FinAcno is not an account field (target fin_acno)');
  t.equal(await propose('fin_acno', '{"account_no":"2000000001","fin_acno":"123"}'), 'ST060', 'a FinAcno only for a loan account');
  t.equal(await propose('kind_accounts', '{"kind":"tax","corporate_account":"3000000002"}', ' '), 'ST040', 'a reason is required (ST040)');
  t.equal(await code(alice.query(`select settlement.approve_change(999999, 'x')`)), 'ST061', 'approving an unknown change (ST061)');
  t.equal(await code(alice.query(`select settlement.reject_change(999999, 'x')`)), 'ST061', 'rejecting an unknown change (ST061)');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.changes`), 0n, 'no change recorded');
  t.equal(await db.oneFirst(sql.type(z.object({ x: z.string() }))`select corporate_account as x from settlement.kind_accounts where kind = 'tax'`), '3000000001', 'nothing changed');
});

t.test('loan accounts still arrive from the lending core through the ingest role, and are registered', async (t) => {
  const { url, db } = await freshDb(t);
  const as = roleSessions(t, url, 'la');
  const ingest = await as('settlement_ingest');
  t.equal(await ingest(`select settlement.add_loan_account('1777000001', '011', 'borrower')`), 'ok', 'ingest: add_loan_account');
  t.equal(await ingest(`select settlement.add_loan_account('1777000001', '011', 'borrower')`), 'ok', 'again: idempotent');
  t.equal(await ingest(`select settlement.add_loan_account('1777000001', '012', 'borrower')`), 'ST066', 'the same number with other details: refused');
  t.equal(await ingest(`select settlement.add_loan_account('12', '011', 'x')`), 'ST066', 'a malformed number: refused');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where key = 'register:1777000001'`), 1n, 'its registration is enqueued');
  await db.query(sql.unsafe`insert into settlement.accounts (account_no, role) values ('3000000009', 'corporate')`);
  t.equal(await ingest(`select settlement.add_loan_account('3000000009', '011', 'x')`), 'ST066', 'an existing corporate account cannot become a loan account');
});
