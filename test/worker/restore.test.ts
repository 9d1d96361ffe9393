import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { createDbPool } from '../../src/db/pool.js';
import { enqueueStage } from '../../src/db/operations.js';
import { KINDS } from '../../src/domain.js';
import { registerAtSimulator, seed, settlementAccountNo } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDatabase, freshDb, TEST_STATEMENT_TIMEOUT_MS } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { simulatorTransfers } from '../helpers/bank-record.js';
import { waitReconcile } from '../helpers/reconcile.js';

/**
 * A backup taken the way pg_dump takes one: every table of the database's
 * schemas read in ONE repeatable-read snapshot (the machine's pg_dump is
 * version 15 and refuses the tests' PostgreSQL 18 server), plus the
 * sequences. restore() loads it into another database as pg_restore
 * --disable-triggers would (session_replication_role = replica).
 */
const SCHEMAS = ['settlement', 'settlement_meta', 'graphile_worker'];
interface Dump { tables: { name: string; cols: string[]; rows: string }[]; sequences: { name: string; last: string | null }[] }

async function dump(url: string): Promise<Dump> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin isolation level repeatable read read only');
    const tables = await c.query<{ name: string; cols: string[] }>(`
      select format('%I.%I', n.nspname, r.relname) as name,
             array_agg(format('%I', a.attname) order by a.attnum) as cols
      from pg_class r join pg_namespace n on n.oid = r.relnamespace
      join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      where r.relkind in ('r', 'p') and n.nspname = any($1) group by 1 order by 1`, [SCHEMAS]);
    const out: Dump = { tables: [], sequences: [] };
    for (const tb of tables.rows) {
      const r = await c.query<{ rows: string }>(`select coalesce(json_agg(x), '[]')::text as rows from ${tb.name} x`);
      out.tables.push({ ...tb, rows: r.rows[0]!.rows });
    }
    const seqs = await c.query<{ name: string; last: string | null }>(`
      select format('%I.%I', schemaname, sequencename) as name, last_value::text as last from pg_sequences where schemaname = any($1)`, [SCHEMAS]);
    out.sequences = seqs.rows;
    await c.query('commit');
    return out;
  } finally {
    await c.end();
  }
}

async function restore(url: string, d: Dump): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('begin');
    await c.query("set local session_replication_role = 'replica'");
    for (const tb of d.tables) await c.query(`delete from ${tb.name}`);
    for (const tb of d.tables) {
      const cols = tb.cols.join(', ');
      await c.query(`insert into ${tb.name} (${cols}) overriding system value select ${cols} from json_populate_recordset(null::${tb.name}, $1::json)`, [tb.rows]);
    }
    for (const s of d.sequences) {
      await c.query(s.last === null ? `select setval('${s.name}', 1, false)` : `select setval('${s.name}', ${s.last}, true)`);
    }
    await c.query('commit');
  } finally {
    await c.end();
  }
}

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
 * A real pg_dump when this machine's pg_dump can read the server (the local
 * PostgreSQL 15 with DATABASE_URL), restored by pg_restore into an empty
 * database and migrated, as docs/deploy/restore.md says; otherwise (the
 * embedded PostgreSQL 18, which pg_dump 15 refuses) the snapshot dump above.
 */
const run = promisify(execFile);
type Backup = { kind: 'pg_dump'; file: string } | { kind: 'snapshot'; dump: Dump };

async function pgDumpMajor(): Promise<number | null> {
  try {
    const { stdout } = await run('pg_dump', ['--version']);
    const m = /(\d+)\.\d+/.exec(stdout);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function backup(t: { teardown(fn: () => unknown): void }, url: string): Promise<Backup> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const server = Number((await c.query<{ v: string }>(`select current_setting('server_version_num') as v`)).rows[0]!.v) / 10000 | 0;
  await c.end();
  const tool = await pgDumpMajor();
  if (tool === null || tool < server) return { kind: 'snapshot', dump: await dump(url) };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'backup.dump');
  await run('pg_dump', ['--format=custom', '--file', file, '--dbname', url]);
  return { kind: 'pg_dump', file };
}

async function restoreBackup(t: { teardown(fn: () => unknown): void }, b: Backup): Promise<string> {
  if (b.kind === 'snapshot') {
    const { url } = await freshDatabase(t);
    await restore(url, b.dump);
    return url;
  }
  const { url } = await freshDatabase(t, { empty: true });
  await run('pg_restore', ['--exit-on-error', '--dbname', url, b.file]);
  return url;
}

const payoutRow = z.object({ entry_id: z.bigint(), seq: z.number(), is_tuno: z.string(), tsymd: z.string().nullable(), state: z.string() });

t.test('restore a backup taken before the day was planned, the day paid after it: each chunk is adopted under its forgotten number, nothing is paid twice', async (t) => {
  const a = await freshDb(t);
  const sim = await startSim(t, { latencyMs: 30, jitterMs: 10 });
  const D = pastDate(1);
  await seed(a.db, { date: D, accounts: 40, kinds: ['tax', 'platform_fee'] });
  await prepareSim(a.db, sim);
  await registerAtSimulator(a.db, sim.url);
  await a.db.query(sql.unsafe`select settlement.configure_reconcile('-1 day')`);
  // The day is recorded (no worker yet): its pay jobs wait; nothing is planned.
  for (const k of KINDS) await a.db.query(sql.unsafe`select * from settlement.run_stage('record', ${D}::date, ${k}::settlement.kind)`);
  t.equal(await a.db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'nothing is planned when the backup is taken');

  const b = await backup(t, a.url);
  t.pass(`backup taken with ${b.kind === 'pg_dump' ? 'pg_dump --format=custom' : 'one repeatable-read snapshot (pg_dump cannot read this server)'}`);

  // The original database plans, pays and withdraws the day; then it is lost.
  const env = (url: string) => workerEnv(url, sim.url, { WORKER_CONCURRENCY: '4', BANK_MAX_IN_FLIGHT: '4' });
  const wa = await spawnWorker(t, env(a.url));
  await waitAllWithdrawn(a.db, [D], KINDS.length, 150_000);
  wa.child.kill('SIGTERM');
  t.equal(await wa.exited, 0, 'the first worker stopped cleanly');
  const booked = await simulatorTransfers(sim.url);
  const paidBefore = await a.db.any(sql.type(z.object({ entry_id: z.bigint(), seq: z.number(), is_tuno: z.string() }))`
    select entry_id, seq, is_tuno from settlement.transfers where purpose = 'payout' and state = 'succeeded' order by entry_id, seq`);
  t.ok(paidBefore.length > 0 && paidBefore.length + 2 === booked.length, `the original paid ${paidBefore.length} chunks and 2 withdrawals`);
  const sameAmount = await a.db.oneFirst(sql.type(count)`
    select count(*) as n from (select entry_id from settlement.transfers where purpose = 'payout' group by entry_id, amount having count(*) > 1) x`);
  t.ok(sameAmount > 0n, `${sameAmount} entries were paid in several chunks of the same amount (told apart by nothing but their numbers)`);

  // Restored into a new database, migrated, after-restore, as docs/deploy/restore.md says.
  const url = await restoreBackup(t, b);
  // (with the production environment: a first migrate writes the shared settings from it)
  const mig = await runCli(['migrate'], { DATABASE_URL: url, BANK_MAX_IN_FLIGHT: '4' });
  t.equal(mig.code, 0, `settle migrate on the restored database\n${mig.stdout}${mig.stderr}`);
  const db = await createDbPool(url, { maximumPoolSize: 4, statementTimeoutMs: TEST_STATEMENT_TIMEOUT_MS });
  t.teardown(() => db.end());
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.transfers`), 0n, 'the restored database has planned nothing');
  const cliEnv = { DATABASE_URL: url, BANK_URL: sim.url, BANK_ACCESS_TOKEN: TOKEN, BANK_TIMEOUT_MS: '5000' };
  const r = await runCli(['after-restore', '--reason', 'restored the backup taken before the day was planned'], cliEnv);
  t.equal(r.code, 0, `after-restore exits 0\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, new RegExp(`${KINDS.length} day\\(s\\) before today were not paid out in the backup`), 'it counts the (day, kind)s not paid out in the backup');
  t.notMatch(r.stdout, /PAUSED/, 'every booking since the backup point is explained: nothing is paused');
  t.equal(await db.oneFirst(sql.type(count)`select count(*) as n from settlement.pauses where resumed_at is null`), 0n, 'no pause');

  // Workers against the restored database, the SAME bank.
  await spawnWorker(t, env(url));
  await waitAllWithdrawn(db, [D], KINDS.length, 150_000);
  await waitReconcile(db, D, ['tax', 'platform_fee'], 'done', 150_000);
  const after = await simulatorTransfers(sim.url);
  t.equal(after.length, booked.length, `the bank booked nothing more (${booked.length} transfers before the restore, ${after.length} after)`);
  const planned = await db.any(sql.type(payoutRow)`
    select entry_id, seq, is_tuno, tsymd, state::text as state from settlement.transfers where purpose = 'payout' order by entry_id, seq`);
  t.same(planned.map((x) => `${x.entry_id}#${x.seq} ${x.is_tuno}`), paidBefore.map((x) => `${x.entry_id}#${x.seq} ${x.is_tuno}`),
    'every chunk is planned under the very number it was paid under after the backup point');
  t.ok(planned.every((x) => x.state === 'succeeded' && x.tsymd !== null), 'each is succeeded, asked about under its date');
  const details = await db.anyFirst(sql.type(z.object({ detail: z.string() }))`
    select detail from settlement.stage_runs where business_date = ${D}::date and stage = 'pay' and kind in ('tax', 'platform_fee') order by kind`);
  t.ok(details.every((d) => /booked already under forgotten IsTunos/.test(d)), `the pay stage says what it adopted: ${details.join(' | ')}`);
  const w = await db.anyFirst(sql.type(z.object({ is_tuno: z.string() }))`select is_tuno from settlement.transfers where purpose = 'withdrawal' and state = 'succeeded'`);
  t.ok(w.length === 2 && w.every((x) => booked.some((b) => b.isTuno === x)), 'the withdrawals are adopted too');
  await checkInvariants(t, db, sim.url);
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
