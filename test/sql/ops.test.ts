import pg from 'pg';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../../src/db/pool.js';
import { formatWorkers } from '../../src/cli/oncall.js';
import { activePauses, asOperator, detectAlerts, enqueueStage, pause, problems, resume, retryDay, retryFailed, retryPreview, verdicts, workerStatus } from '../../src/db/operations.js';
import { seed } from '../../src/seed.js';
import { freshDb } from '../helpers/db.js';
import { pastDate, seoulToday } from '../helpers/fixtures.js';
import { roleSessions } from '../helpers/roles.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

/**
 * On-call SQL (sql/0021_operations.sql) without a bank: transfers are claimed
 * and finished by hand, as the transfer task would after the bank's answer.
 */
async function dayWithFailures(db: DatabasePool, D: string, kinds: ('tax' | 'platform_fee')[], poor = '1000000002') {
  await seed(db, { date: D, accounts: 3, kinds });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  for (const k of kinds) {
    await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, ${k}::settlement.kind)`);
    await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, ${k}::settlement.kind)`);
  }
  const xs = await db.any(sql.type(z.object({ id: z.bigint(), from_account: z.string(), kind: z.string() }))`
    select id, from_account, kind::text as kind from settlement.transfers where business_date = ${D}::date and purpose = 'payout' order by id`);
  for (const x of xs) {
    const c = await claimTransfer(db, Number(x.id), 'test-pool', 60_000);
    await finishTransfer(db, Number(x.id), c.is_tuno, x.from_account === poor ? { outcome: 'failed', code: 'S0211', message: 'insufficient funds' } : { outcome: 'succeeded', processedAt: '20260101120000' });
  }
  for (const k of kinds) await db.query(sql.unsafe`select settlement.run_stage('confirm', ${D}::date, ${k}::settlement.kind)`);
  const unpaid = await db.oneFirst(sql.type(z.object({ a: z.bigint() }))`
    select coalesce(sum(amount), 0)::bigint as a from settlement.transfers where business_date = ${D}::date and state = 'failed'`);
  return { unpaid, poor };
}

t.test('verdict: BLOCKED with KRW unpaid and the next command; problems; retry_day clears it', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  const { unpaid, poor } = await dayWithFailures(db, D, ['tax', 'platform_fee']);
  t.ok(unpaid > 0n, `${unpaid} KRW failed`);
  const [v] = await verdicts(db, D);
  t.equal(v?.verdict, 'BLOCKED');
  t.equal(v?.amount_unpaid, unpaid, 'KRW unpaid of the day');
  t.equal(v?.kinds, 'tax, platform_fee', 'names both blocked kinds');
  t.match(v?.next_command, `settle retry --date ${D}`);
  t.match(v?.detail, /KRW unpaid/);

  const ps = await problems(db);
  t.same(ps.filter((p) => p.problem === 'blocked').map((p) => p.key).sort(), [`blocked:${D}:platform_fee`, `blocked:${D}:tax`]);
  t.ok(ps.some((p) => p.problem === 'no_live_worker'), 'no worker is registered: a problem');

  const preview = await retryPreview(db, D, null);
  t.same(preview.map((p) => [p.kind, p.from_account]), [['tax', poor], ['platform_fee', poor]], 'dry run: one line per kind and paying account');
  t.equal(preview.reduce((a, p) => a + p.amount, 0n), unpaid, 'dry run: the whole amount');
  t.equal((await verdicts(db, D))[0]?.verdict, 'BLOCKED', 'the preview changed nothing');

  const r = await asOperator(db, 'account funded by treasury (INC-7)', (q) => retryDay(q, D, null));
  t.same(r.map((x) => x.kind), ['tax', 'platform_fee'], 'retry_day retried every blocked kind');
  t.equal((await verdicts(db, D))[0]?.verdict, 'IN PROGRESS', 'after the retry the day is in progress');
  const audit = await db.one(sql.type(z.object({ action: z.string(), reason: z.string().nullable(), db_user: z.string(), args: z.any() }))`
    select action, reason, db_user, args from settlement.operator_actions order by id desc limit 1`);
  t.equal(audit.action, 'retry_day');
  t.equal(audit.reason, 'account funded by treasury (INC-7)', 'the reason is recorded');
  t.equal(audit.args.business_date, D);
});

t.test('verdict: WAITING until midnight KST, DONE; workers line', async (t) => {
  const { db } = await freshDb(t);
  const today = seoulToday();
  await seed(db, { date: today, accounts: 1, kinds: ['tax'] });
  const [v] = await verdicts(db, today);
  t.equal(v?.verdict, 'WAITING');
  const tomorrow = new Date(`${today}T00:00:00Z`);
  tomorrow.setUTCDate(tomorrow.getUTCDate() + 1);
  t.match(v?.detail, `until ${tomorrow.toISOString().slice(0, 10)} 00:00 KST`);

  const D = pastDate(2);
  await db.query(sql.unsafe`select settlement.ensure_day(${D}::date, 'tax')`);
  for (const s of ['record', 'pay', 'confirm', 'withdraw'] as const) await db.query(sql.unsafe`select settlement.run_stage(${s}, ${D}::date, 'tax')`);
  t.equal((await verdicts(db, D))[0]?.verdict, 'DONE', 'an empty day runs to DONE');

  let w = await workerStatus(db);
  t.equal(w.alive, 0);
  t.equal(w.registered, 0, 'no worker registered: 0, not the left join\'s empty row');
  t.equal(formatWorkers(w), 'workers: none registered — nothing is settling (start `settle worker`)');
  t.match((await problems(db)).find((p) => p.problem === 'no_live_worker')?.message, /^no worker is registered/, 'the problem says no worker is registered');
  await db.query(sql.unsafe`select settlement.worker_beat('pool-a', 'host', 1)`);
  w = await workerStatus(db);
  t.equal(w.alive, 1, 'a beating worker is alive');
  t.equal(w.registered, 1);
  t.notOk((await problems(db)).some((p) => p.problem === 'no_live_worker'));
});

t.test('pause: claim_transfer answers paused, status says PAUSED, resume lets it go; all audited', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 2, kinds: ['tax'] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '0082' || account_no where role = 'loan'`);
  await db.query(sql.unsafe`select settlement.run_stage('record', ${D}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.run_stage('pay', ${D}::date, 'tax')`);
  const [a, b] = (await db.anyFirst(sql.type(z.object({ id: z.bigint() }))`select id from settlement.transfers order by id`)) as [bigint, bigint];

  const code = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);
  t.equal(await code(pause(db, 'tax', '')), 'reason_required', 'a pause needs a reason (ST040)');
  const inFlight = await claimTransfer(db, Number(a), 'pool-1', 60_000);
  t.equal(inFlight.action, 'send', 'claimed before the pause');
  t.equal(await asOperator(db, undefined, (q) => pause(q, 'tax', 'bank incident INC-9')), true);
  t.equal(await pause(db, 'tax', 'again'), false, 'pausing twice is a no-op');
  t.equal(await pause(db, 'platform_fee', 'other kind'), true);
  const held = await claimTransfer(db, Number(b), 'pool-1', 60_000);
  t.equal(held.action, 'paused', 'no new bank call while paused');
  t.equal(held.slot, null, 'and no bank slot taken');
  t.equal(await db.oneFirst(sql.type(z.object({ s: z.string() }))`select state::text as s from settlement.transfers where id = ${b}`), 'pending', 'the transfer is untouched');
  t.equal(await finishTransfer(db, Number(a), inFlight.is_tuno, { outcome: 'succeeded', processedAt: '20260101120000' }), 'succeeded', 'the in-flight call is recorded');
  t.equal((await verdicts(db, D))[0]?.verdict, 'PAUSED');
  t.match((await verdicts(db, D))[0]?.detail, /bank incident INC-9/);

  t.equal(await resume(db, 'tax'), 1);
  t.same((await activePauses(db)).map((p) => p.kind), ['platform_fee'], 'the other pause stays');
  t.equal((await claimTransfer(db, Number(b), 'pool-1', 60_000)).action, 'send', 'after resume the transfer is sent');
  const jobs = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where key = ${'transfer:' + b} and attempts = 0 and run_at <= now()`);
  t.equal(jobs, 1n, 'resume runs the held-back transfer job at once');

  await db.query(sql.unsafe`select settlement.pause(null, 'all')`);
  t.equal((await claimTransfer(db, Number(b), 'pool-2', 60_000)).action, 'paused', 'a pause of every kind covers tax');
  t.equal(await resume(db, null), 2, 'resume(null) lifts every pause');

  const actions = await db.anyFirst(sql.type(z.object({ a: z.string() }))`select action || ':' || coalesce(reason, '-') as a from settlement.operator_actions order by id`);
  t.same(actions, ['pause:bank incident INC-9', 'pause:again', 'pause:other kind', 'resume:-', 'pause:all', 'resume:-']);
  t.equal(await code(db.query(sql.unsafe`update settlement.operator_actions set reason = 'x'`)), 'ST007', 'operator_actions refuses UPDATE');
  t.equal(await code(db.query(sql.unsafe`delete from settlement.operator_actions`)), 'ST007', 'and DELETE');
  t.equal(await code(db.query(sql.unsafe`truncate settlement.operator_actions`)), 'ST007', 'and TRUNCATE');
});

t.test('audit: enqueue_stage and retry_failed keep their signatures and record who and why', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await dayWithFailures(db, D, ['tax']);
  const c = new pg.Client({ connectionString: url, application_name: 'psql-oncall' });
  await c.connect();
  t.teardown(() => c.end());
  await c.query(`set settlement.reason = 'catch up after outage'`);
  await c.query(`select settlement.enqueue_stage('record')`);
  await c.query(`select settlement.enqueue_stage('record', '${D}')`);
  await c.query(`select settlement.enqueue_stage(stage => 'confirm', business_date => '${D}', kind => 'tax')`);
  await c.query(`select settlement.retry_failed('${D}', 'tax')`);
  await enqueueStage(db, 'pay', D, 'tax');
  t.equal(await retryFailed(db, D, 'tax'), 0);
  const rows = await db.any(sql.type(z.object({ action: z.string(), application_name: z.string(), reason: z.string().nullable(), result: z.any() }))`
    select action, application_name, reason, result from settlement.operator_actions order by id`);
  t.same(rows.map((r) => [r.action, r.application_name, r.reason]), [
    ['enqueue_stage', 'psql-oncall', 'catch up after outage'],
    ['enqueue_stage', 'psql-oncall', 'catch up after outage'],
    ['enqueue_stage', 'psql-oncall', 'catch up after outage'],
    ['retry_failed', 'psql-oncall', 'catch up after outage'],
    ['enqueue_stage', '', null],
    ['retry_failed', '', null],
  ]);
  t.equal(rows[1]!.result.enqueued, 6, 'the result is recorded (6 kinds)');
  t.ok(rows[3]!.result.retried > 0, 'retry_failed retried');
  await db.query(sql.unsafe`update settlement.ops_settings set unresolved_alert_after = '5 minutes'`);
  t.equal(await db.oneFirst(sql.type(z.object({ a: z.string() }))`select action as a from settlement.operator_actions order by id desc limit 1`), 'ops_settings', 'a settings change is audited');
});

t.test('alerts: one per condition, job enqueued with it, cleared when the condition is gone', async (t) => {
  const { db } = await freshDb(t);
  const D = pastDate(1);
  await db.query(sql.unsafe`select settlement.worker_beat('pool-a', 'host', 1)`);
  // Yesterday's deadline (its start + 1 day 12 hours) passes at noon KST today:
  // keep it out of the way so the test does not depend on the hour it runs at.
  await db.query(sql.unsafe`update settlement.ops_settings set withdraw_deadline = '30 days'`);
  await dayWithFailures(db, D, ['tax']);
  t.same(await detectAlerts(db), { opened: 1, cleared: 0 });
  t.same(await detectAlerts(db), { opened: 0, cleared: 0 }, 'deduplicated');
  const alert = await db.one(sql.type(z.object({ id: z.bigint(), key: z.string(), message: z.string() }))`select id, key, message from settlement.alerts`);
  t.equal(alert.key, `blocked:${D}:tax`);
  t.match(alert.message, `settle retry --date ${D}`);
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from graphile_worker.jobs where task_identifier = 'alert' and key = ${'alert:' + alert.id}`), 1n, 'its job is in the outbox');
  await retryDay(db, D, null);
  t.same(await detectAlerts(db), { opened: 0, cleared: 1 }, 'cleared after the retry');
  t.ok(await db.oneFirst(sql.type(z.object({ c: z.boolean() }))`select cleared_at is not null as c from settlement.alerts where id = ${alert.id}`));

  // Unresolved past the threshold, and a day past its withdrawal deadline.
  const x = await db.one(sql.type(z.object({ id: z.bigint() }))`select id from settlement.transfers where state = 'pending' order by id limit 1`);
  const c = await claimTransfer(db, Number(x.id), 'pool-a', 60_000);
  await finishTransfer(db, Number(x.id), c.is_tuno, { outcome: 'unresolved', reason: 'timeout' });
  await db.query(sql.unsafe`update settlement.ops_settings set unresolved_alert_after = '1 millisecond', withdraw_deadline = '1 second'`);
  await new Promise((r) => setTimeout(r, 20));
  const keys = (await problems(db)).map((p) => p.key);
  t.ok(keys.includes(`unresolved:${D}:tax`), 'unresolved past the threshold');
  t.ok(keys.includes(`deadline:${D}:tax`), 'not withdrawn by the deadline');
  t.same(await detectAlerts(db), { opened: 2, cleared: 0 });
});

t.test('roles: the viewer reads the verdict, the operator pauses, the worker claims', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await dayWithFailures(db, D, ['tax']);
  const as = roleSessions(t, url, 'ops_');
  const viewer = await as('settlement_viewer');
  t.equal(await viewer(`select * from settlement.verdict`), 'ok', 'viewer: verdict');
  t.equal(await viewer(`select * from settlement.day_verdicts`), 'ok', 'viewer: day_verdicts');
  t.equal(await viewer(`select * from settlement.problems()`), 'ok', 'viewer: problems()');
  t.equal(await viewer(`select * from settlement.worker_status()`), 'ok', 'viewer: worker_status()');
  t.equal(await viewer(`select settlement.pause('tax', 'x')`), '42501', 'viewer: cannot pause');
  const operator = await as('settlement_operator');
  t.equal(await operator(`select settlement.pause('tax', 'x')`), 'ok', 'operator: pause');
  t.equal(await operator(`select settlement.resume('tax')`), 'ok', 'operator: resume');
  t.equal(await operator(`select * from settlement.retry_day('${D}')`), 'ok', 'operator: retry_day');
  t.equal(await operator(`select settlement.retry_failed_core('${D}', 'tax')`), '42501', 'operator: not around the audit');
  t.equal(await operator(`insert into settlement.operator_actions (action) values ('forged')`), '42501', 'operator: cannot forge the audit');
  const worker = await as('settlement_worker');
  t.equal(await worker(`select settlement.claim_transfers('{1}', '{w}', 1000, 0, '{}', 0)`), 'ok', 'worker: claim_transfers');
  t.equal(await worker(`select * from settlement.detect_alerts()`), 'ok', 'worker: detect_alerts');
  t.equal(await worker(`select * from settlement.day_metrics()`), 'ok', 'worker: day_metrics');
  t.equal(await worker(`select settlement.pause('tax', 'x')`), '42501', 'worker: cannot pause');
});
