import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { seed, settlementAccountNo } from '../../src/seed.js';
import { dump, restore } from '../helpers/backup.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDatabase, freshDb, TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { simulatorTransfers } from '../helpers/bank-record.js';
import { waitReconcile } from '../helpers/reconcile.js';

const count = z.object({ n: z.bigint() });

t.test('restore a backup taken mid-payout, run after-restore, finish on the same bank: nothing is paid twice, bank = ledger', async (t) => {
  const a = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 60, jitterMs: 20 });
  const D = pastDate(1);
  await seed(a.db, { date: D, accounts: 60, kinds: ['tax', 'platform_fee'] });
  await prepareSim(a.db, sim);
  // Statements are final at once (the day can be reconciled within the test).
  await a.db.query(sql.unsafe`select settlement.configure_reconcile('-1 day')`);
  const env = (url: string) => workerEnv(url, sim.url, { WORKER_CONCURRENCY: '4', BANK_MAX_IN_FLIGHT: '4' });
  const wa = await spawnWorker(t, env(a.url));
  await enqueueStage(a.db, 'record', D, null);
  const total = await waitFor('chunks planned', async () => {
    const n = await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout'`);
    return n > 0n ? n : undefined;
  });
  await waitFor('a quarter of the chunks paid', async () =>
    (await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where purpose = 'payout' and state = 'succeeded'`)) * 4n >= total);

  const backup = await dump(a.url);
  const inBackup = JSON.parse(backup.tables.find((x) => x.name === 'settlement.transfers')!.rows) as { state: string; purpose: string }[];
  const openInBackup = inBackup.filter((x) => x.state === 'pending' || x.state === 'sending').length;
  t.ok(openInBackup > 0, `the backup was taken mid-payout (${openInBackup} of ${inBackup.length} chunks still open in it)`);
  t.equal(inBackup.filter((x) => x.purpose === 'withdrawal').length, 0, 'the backup has no withdrawal yet');

  // The original database finishes the day (and forgets nothing); then it is lost.
  await waitAllWithdrawn(a.db, [D], KINDS.length, 150_000);
  wa.child.kill('SIGTERM');
  t.equal(await wa.exited, 0, 'the first worker stopped cleanly');
  const booked = await simulatorTransfers(sim.url);

  // Restored into a new database.
  const b = await freshDatabase(t);
  await restore(b.url, backup);
  const db = await createDbPool(b.url, { maximumPoolSize: 4, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers where state in ('pending', 'sending')`), BigInt(openInBackup),
    'the restored database has the backup\'s open transfers');

  // Bad inputs change nothing.
  const cliEnv = { DATABASE_URL: b.url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN, BANK_TIMEOUT_MS: '5000' };
  const noReason = await runCli(['after-restore'], cliEnv);
  t.equal(noReason.code, 2, 'after-restore without --reason is a usage error (exit 2)');
  t.match(noReason.stderr, /--reason/, 'it names the flag');
  const noBank = await runCli(['after-restore', '--reason', 'x'], { ...cliEnv, BANK_URL: '', BANK_SIMULATOR: '' });
  t.not(noBank.code, 0, `after-restore without BANK_URL refuses (exit ${noBank.code}): ${noBank.stderr.trim()}`);
  t.equal(await db.oneFirst(sql.type(z.object({ g: z.number() }))`select generation as g from settlement.is_tuno_space`), 0, 'refusals moved no generation');

  const r = await runCli(['after-restore', '--reason', 'restored the backup taken mid-payout'], cliEnv);
  t.equal(r.code, 0, `after-restore exits 0\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, /IsTuno generation 1/, 'the IsTuno generation moved on');
  t.match(r.stdout, new RegExp(`${openInBackup} open transfer\\(s\\): each is asked about`), 'every open transfer is to be asked about first');
  t.match(r.stdout, /statements: read \d+ account\(s\)/, 'the statements since the backup point were read');
  const asked = await db.oneFirst(sql.type(count)`
    select count(*) as n from settlement.transfers where state in ('pending', 'sending') and tsymd is null`);
  t.equal(asked, 0n, 'no open transfer is left that would be sent without asking the bank first');
  const again = await runCli(['after-restore', '--reason', 'twice'], cliEnv);
  t.equal(again.code, 0, 'running it again is harmless');
  t.equal(await db.oneFirst(sql.type(z.object({ g: z.number() }))`select generation as g from settlement.is_tuno_space`), 2,
    'a second restore of the same database moves the generation again (each restore is its own)');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.operator_actions where action = 'after_restore'`), 2n, 'each is audited');

  // Workers against the restored database, the SAME bank.
  await spawnWorker(t, env(b.url));
  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  await waitReconcile(db, D, ['tax', 'platform_fee'], 'done', 150_000);
  const after = await simulatorTransfers(sim.url);
  t.equal(after.length, booked.length, `the bank booked nothing more (${booked.length} transfers before the restore, ${after.length} after)`);
  const w = await db.any(sql.type(z.object({ is_tuno: z.string(), state: z.string() }))`
    select is_tuno, state::text as state from settlement.transfers where purpose = 'withdrawal' order by kind`);
  t.ok(w.length === 2 && w.every((x) => x.state === 'succeeded' && x.is_tuno.startsWith('1000') && booked.some((b) => b.isTuno === x.is_tuno)),
    `each withdrawal the bank made after the backup point is adopted under its own (generation 0) number, not sent again: ${JSON.stringify(w)}`);
  await checkInvariants(t, db, sim.url);
});

t.test('IsTuno: generation 0 numbers as before; after_restore needs a reason and moves the generation', async (t) => {
  const { db } = await freshDb(t);
  const first = await db.oneFirst(sql.type(z.object({ n: z.string() }))`select settlement.next_is_tuno() as n`);
  t.match(first, /^1000[0-9]{14}$/, `generation 0: '1' + 000 + the sequence (${first})`);
  await t.rejects(db.query(sql.unsafe`select settlement.after_restore(null)`), /reason is required/, 'no reason: ST061');
  await db.query(sql.unsafe`select settlement.after_restore('test')`);
  const next = await db.oneFirst(sql.type(z.object({ n: z.string() }))`select settlement.next_is_tuno() as n`);
  t.match(next, /^1001[0-9]{14}$/, `generation 1 after a restore (${next})`);
  t.ok(next > first, 'numbers only grow');
  const held = await db.oneFirst(sql.type(z.object({ h: z.string().nullable() }))`select settlement.restore_hold() as h`);
  t.match(held ?? '', /not read yet/, 'no stage plans a transfer until the statements are read');
});

/**
 * The pay stage's matching, on statements written by hand (lines under
 * generation-0 numbers, booked today by the database's clock): what it adopts
 * and where it refuses to guess.
 */
const L1 = '1000000001';
const L2 = '1000000002';
const gen0 = (n: number) => `1000${String(n).padStart(14, '0')}`;
interface Booking { acno: string; amount: number; n: number; to?: string }
type TapTest = { teardown(fn: () => unknown): void; ok: Function };

async function restoredWorld(t: TapTest, due: { date: string; acno: string; amount: number }[], bookings: Booking[]) {
  const { db } = await freshDb(t);
  await seed(db, { date: due[0]!.date, accounts: 2, kinds: [] });
  await db.query(sql.unsafe`update settlement.accounts set fin_acno = '9' || account_no where role = 'loan'`);
  for (const [i, x] of due.entries()) {
    await db.query(sql.unsafe`select settlement.ensure_day(${x.date}::date, 'tax')`);
    await db.query(sql.unsafe`
      insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
      values (${'t:' + i}, ${x.acno}, 'tax', ${x.amount}, (${x.date}::date + interval '12 hours') at time zone settlement.time_zone(), ${x.date}::date, ${x.date}::date)`);
  }
  for (const d of [...new Set(due.map((x) => x.date))]) await db.query(sql.unsafe`select * from settlement.run_stage('record', ${d}::date, 'tax')`);
  const restoreId = await db.oneFirst(sql.type(z.object({ id: z.number() }))`select (settlement.after_restore('test') ->> 'restore')::int as id`);
  const needs = await db.anyFirst(sql.type(z.object({ acno: z.string() }))`select acno from settlement.restore_statements()`);
  t.ok([L1, L2].every((x) => !due.some((d) => d.acno === x) || needs.includes(x)), 'the statements to read include the loan accounts of the days not paid out yet');
  for (const [i, b] of bookings.entries()) {
    await db.query(sql.unsafe`
      insert into settlement.statement_lines (bncd, acno, trdd, txtm, mnrc_drot_dsnc, tram, ccyn, tuno, bnpr_cntn)
      values ('011', ${b.acno}, settlement.bank_ymd(), '0100' || lpad(${i}::text, 2, '0'), '3', ${b.amount}, '0', ${'T' + i}, ${'DS' + gen0(b.n)})`);
    if (b.to) {
      await db.query(sql.unsafe`
        insert into settlement.statement_lines (bncd, acno, trdd, txtm, mnrc_drot_dsnc, tram, ccyn, tuno, bnpr_cntn)
        values ('011', ${b.to}, settlement.bank_ymd(), '0100' || lpad(${i}::text, 2, '0'), '1', ${b.amount}, '0', ${'T' + i}, ${'DS' + gen0(b.n)})`);
    }
  }
  await db.query(sql.unsafe`select settlement.restore_statements_read(${restoreId})`);
  const pay = async (d: string) => db.one(sql.type(z.object({ outcome: z.string(), detail: z.string() }))`select * from settlement.run_stage('pay', ${d}::date, 'tax')`);
  return { db, pay };
}

t.test('pay after a restore adopts the chunks the statements show booked under forgotten numbers (IsTuno order for chunks of one amount)', async (t) => {
  const D = pastDate(3);
  const { db, pay } = await restoredWorld(t, [{ date: D, acno: L1, amount: 250_000 }, { date: D, acno: L2, amount: 30_000 }],
    [{ acno: L1, amount: 100_000, n: 902 }, { acno: L1, amount: 100_000, n: 901 }, { acno: L1, amount: 50_000, n: 903, to: settlementAccountNo('tax') }]);
  const r = await pay(D);
  t.equal(r.outcome, 'done', `the pay stage plans the day: ${r.detail}`);
  t.match(r.detail, /4 chunks, 280000 KRW enqueued .*3 of them booked already under forgotten IsTunos/, 'and says what it adopted');
  const rows = await db.any(sql.type(z.object({ acno: z.string(), seq: z.number(), is_tuno: z.string(), tsymd: z.string().nullable(), today: z.string() }))`
    select from_account as acno, seq, is_tuno, tsymd, settlement.bank_ymd() as today from settlement.transfers order by from_account, seq`);
  t.same(rows.slice(0, 3).map((x) => [x.acno, x.seq, x.is_tuno, x.tsymd === x.today]),
    [[L1, 1, gen0(901), true], [L1, 2, gen0(902), true], [L1, 3, gen0(903), true]],
    'each booked chunk is planned under its number and booking date (one amount: IsTuno order for seq order)');
  t.match(rows[3]!, { acno: L2, seq: 1, tsymd: null }, 'a chunk nothing shows booked is planned anew');
  t.match(rows[3]!.is_tuno, /^1001/, 'under a number of the new generation');
  t.equal((await pay(D)).outcome, 'already_done', 'running it again plans nothing more');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.restore_unexplained()`), 0n, 'every booking is explained');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.pauses where resumed_at is null`), 0n, 'nothing is paused');
});

t.test('pay after a restore blocks instead of guessing: a booking two days could own, more bookings than chunks, one nothing explains', async (t) => {
  const D1 = pastDate(3);
  const D2 = pastDate(2);
  await t.test('two days', async (t) => {
    const { db, pay } = await restoredWorld(t, [{ date: D1, acno: L1, amount: 100_000 }, { date: D2, acno: L1, amount: 100_000 }],
      [{ acno: L1, amount: 100_000, n: 901 }]);
    for (const d of [D1, D2]) {
      const r = await pay(d);
      t.equal(r.outcome, 'blocked', `${d} is blocked`);
      t.match(r.detail, new RegExp(`IsTuno ${gen0(901)} .* could be a chunk of ${D1} tax or ${D2} tax`), `the reason names both days: ${r.detail}`);
    }
    t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'nothing is planned');
  });
  await t.test('more bookings than chunks, and a booking that went elsewhere', async (t) => {
    const { db, pay } = await restoredWorld(t, [{ date: D1, acno: L1, amount: 100_000 }, { date: D1, acno: L2, amount: 30_000 }],
      [{ acno: L1, amount: 100_000, n: 901 }, { acno: L1, amount: 100_000, n: 902 }, { acno: L2, amount: 30_000, n: 903, to: settlementAccountNo('platform_fee') }]);
    const paused = await db.maybeOne(sql.type(z.object({ reason: z.string() }))`select reason from settlement.pauses where resumed_at is null and kind is null`);
    t.match(paused?.reason ?? '', /1 booking\(s\) of ours .* none of the chunks still to pay/, 'the booking nothing explains pauses every kind');
    t.same(await db.anyFirst(sql.type(z.object({ ref_is_tuno: z.string() }))`select ref_is_tuno from settlement.restore_unexplained()`), [gen0(903)], 'restore_unexplained names it');
    const r = await pay(D1);
    t.equal(r.outcome, 'blocked', `blocked: ${r.detail}`);
    t.match(r.detail, /2 bookings of 100,000 KRW from \*\*\*\*0001 under forgotten IsTunos, for 1 chunk\(s\)/, 'more bookings than chunks');
    t.match(r.detail, new RegExp(`forgotten IsTuno ${gen0(903)} .* is none of the chunks`), 'a booking that went to another kind\'s account is none of them');
    t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'nothing is planned');
  });
});
