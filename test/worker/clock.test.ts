import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { enqueueStage } from '../../src/db/operations.js';
import { addReconcileJob, configureReconcile, reconciliationBreaks } from '../../src/db/reconcile.js';
import { KINDS } from '../../src/domain.js';
import { kstYmd } from '../../src/nh/contract.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { shiftClockEnv } from '../helpers/shift-clock.js';

const DAY_MS = 86_400_000;
/** How long the bank holds worker A's payout requests before it books them. */
const HELD_MS = 20_000;

/*
 * The incident of issue 9: a worker whose clock was a day ahead took over
 * chunks whose requests were still at the bank, asked once, got "not found",
 * concluded from its own clock that their date (Tsymd) was over and re-planned
 * them under new numbers; the bank then booked the originals: paid twice.
 *
 * Here worker A (right clock) sends every payout chunk; the simulator holds
 * each request HELD_MS before processing it (the `slow` fault: the bank books
 * only after the delay, and a result check before that answers not found;
 * NH publishes no timing, so a late booking is allowed behaviour). A is
 * SIGKILLed with all of them still at the bank. Worker B, whose wall clock is
 * a day ahead (test/helpers/shift-clock.ts: Date.now() and new Date() shifted
 * by +1 day, so by its clock A's Tsymd is the day before yesterday in KST and
 * "over"), takes the chunks over, asks the bank, gets not found for numbers
 * that are still in flight, and must send them again under the SAME IsTuno
 * (the database, not B's clock, says the date is today): whichever of A's
 * held request and B's send is processed second is refused as a duplicate.
 *
 * How this catches a product that decides from the worker clock: with a
 * worker-side "the date is over" (sendable or the Tsymd computed from B's
 * Date), B either re-plans the chunk under a new IsTuno (the bank then books
 * the new number AND A's held original: a booking under a number the ledger
 * no longer holds, i.e. an orphan, and a bank total above what is owed: the
 * assertions below on bookings per chunk, the total, `attempt`, and
 * checkInvariants' G6 fail), or leaves it unresolved for the statement, which
 * with the default grace is not final for hours: the day never completes and
 * waitAllWithdrawn times out. A Tsymd taken from B's clock would be the next
 * date: the result check would miss A's booking and a send would book it again
 * under (new Tsymd, same IsTuno): the IsTuno would be booked twice (G3).
 * Checked once by hand: with `sendable` and the re-plan of a not-found
 * taken-over chunk decided by the worker's clock (the behaviour before
 * issue 9, patched in locally), this test fails: the bank booked 38 transfers
 * for 20 in the ledger, and reconcile found 18 orphans in suspense.
 */
t.test('a worker whose clock is a day ahead takes over requests still at the bank: each chunk is booked once', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, { slowRate: 1, slowMs: HELD_MS });
  const admin = simAdminClient(sim.url);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 6, kinds: ['tax', 'platform_fee'] });
  await prepareSim(db, sim);
  // Borrowers' accounts hold more than is owed (as real ones do): a second
  // booking of a chunk would go through, not bounce for lack of funds.
  const loans = await db.anyFirst(sql.type(z.object({ account_no: z.string() }))`select account_no from settlement.accounts where role = 'loan'`);
  for (const acno of loans) {
    const { balance } = await admin.account('011', acno);
    await admin.openAccounts([{ bncd: '011', acno, balance: balance * 3n + 1_000_000n }]);
  }
  // A never gives up on a held request by itself (one request per chunk at the bank when it dies).
  const common = { WORKER_CONCURRENCY: '32', BANK_MAX_IN_FLIGHT: '32' };
  const a = await spawnWorker(t, workerEnv(url, sim.url, { ...common, BANK_TIMEOUT_MS: String(HELD_MS * 3) }));
  await enqueueStage(db, 'record', D, null);

  const chunkCount = z.object({ total: z.bigint(), sent: z.bigint() });
  const chunks = await waitFor('every payout chunk sent by A', async () => {
    const paying = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
      select count(*) as n from settlement.stage_runs where business_date = ${D}::date and stage = 'pay' and state <> 'done'`);
    if (paying > 0n) return undefined;
    const c = await db.one(sql.type(chunkCount)`
      select count(*) as total, count(*) filter (where state = 'sending' and tsymd is not null and claimed_by = ${a.poolId}) as sent
      from settlement.transfers where purpose = 'payout'`);
    if (c.total === 0n || c.sent < c.total) return undefined;
    const st = await admin.stats();
    return (st.callsByApi['DrawingTransfer'] ?? 0) >= Number(c.total) ? c.total : undefined;
  }, 60_000, 100);
  const booked0 = await admin.transfers();
  t.equal(booked0.length, 0, `all ${chunks} chunks are at the bank, none booked yet`);

  a.child.kill('SIGKILL');
  await a.exited;
  // From here on the bank answers at once; A's requests already there keep their delay.
  await admin.configure({ slowRate: 0 });
  await admin.resetStats();

  const b = await spawnWorker(t, workerEnv(url, sim.url, { ...common, ...shiftClockEnv(DAY_MS) }));
  const bTime = Number(JSON.parse(b.logs.find((l) => l.includes('"event":"worker:start"'))!).time);
  t.ok(bTime - Date.now() > DAY_MS - 60_000, `B's wall clock is a day ahead (it logs ${new Date(bTime).toISOString()})`);
  t.not(kstYmd(new Date(bTime)), kstYmd(new Date()), 'B\'s clock is on another KST date than the database\'s');
  t.ok(b.logs.some((l) => l.includes('"event":"worker:clock_skew"') && l.includes('"crontab":false')), 'B says its clock is off and runs no crontab');

  await waitAllWithdrawn(db, [D], KINDS.length, 120_000);
  // A's held requests are processed HELD_MS after they arrived: wait for them.
  await sim.whenIdle();

  const stats = await admin.stats();
  const notFound = stats.rejected['notFound'] ?? 0;
  const duplicate = stats.rejected['duplicate'] ?? 0;
  t.ok(notFound >= 1, `B's result checks found nothing for numbers still at the bank (${notFound} not found)`);
  t.ok(duplicate >= 1, `the bank processed A's held requests after B's booking and refused them as duplicates (${duplicate})`);

  const rows = await db.any(sql.type(z.object({ is_tuno: z.string(), tsymd: z.string(), amount: z.bigint(), attempt: z.number() }))`
    select is_tuno, tsymd, amount, attempt from settlement.transfers where purpose = 'payout' and state = 'succeeded' order by id`);
  t.equal(BigInt(rows.length), chunks, 'every chunk succeeded');
  t.ok(rows.every((r) => r.attempt === 1), 'no chunk was re-planned under a new IsTuno');
  t.ok(rows.every((r) => r.tsymd === kstYmd(new Date())), 'every chunk kept the Tsymd of the database\'s date');
  const bank = await admin.transfers();
  const drawings = bank.filter((x) => x.api === 'DrawingTransfer');
  for (const r of rows) {
    const at = drawings.filter((x) => x.isTuno === r.is_tuno);
    if (at.length !== 1 || at[0]!.amount !== r.amount) t.fail(`chunk ${r.is_tuno} booked ${at.length} time(s): ${at.map((x) => x.amount).join(', ')}`);
  }
  t.equal(drawings.length, rows.length, 'the bank booked one DrawingTransfer per chunk, none for a number the ledger does not hold');
  const owed = await db.oneFirst(sql.type(z.object({ s: z.bigint() }))`
    select coalesce(sum(amount), 0)::bigint as s from settlement.entries where business_date = ${D}::date`);
  t.equal(drawings.reduce((s, x) => s + x.amount, 0n), owed, `the bank moved what is owed (${owed} KRW), not more`);
  const orphans = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.breaks`);
  t.equal(orphans, 0n, 'no orphan or other break recorded');
  await checkInvariants(t, db, sim.url);

  // The final proof: the statement, read as final at once (a simulator's
  // statement is; only now that nothing is left at the bank).
  await configureReconcile(db, '-1 day');
  // One reconcile task: it reads the statements and runs the stage of each
  // open day in turn. (Stage jobs of both kinds at once can collide in
  // match_lines on the loan accounts' shared lines: a unique violation on
  // line_matches, left to the crontab's next tick, which this test has none of.)
  await addReconcileJob(db);
  const stageRows = () => db.any(sql.type(z.object({ kind: z.string(), state: z.string(), detail: z.string() }))`
    select kind::text as kind, state::text as state, detail from settlement.stage_runs where business_date = ${D}::date and stage = 'reconcile' order by kind`);
  const rec = await waitFor('reconcile done', async () => {
    const r = await stageRows();
    return r.length === KINDS.length && r.every((x) => x.state === 'done' || x.state === 'blocked') ? r : undefined;
  }, 120_000, 250).catch(async (e: Error) => {
    const jobs = await db.any(sql.type(z.object({ task_identifier: z.string(), key: z.string().nullable(), run_at: z.string(), attempts: z.number(), locked_by: z.string().nullable(), last_error: z.string().nullable() }))`
      select task_identifier, key, run_at::text as run_at, attempts, locked_by, left(last_error, 300) as last_error from graphile_worker.jobs order by id`);
    const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
    throw new Error(`${e.message}\nreconcile: ${show(await stageRows())}\njobs: ${show(jobs)}\nB's last log lines:\n${b.logs.slice(-15).join('\n')}`);
  });
  t.same(rec.map((r) => r.state), KINDS.map(() => 'done'), `reconcile done for every kind (${rec.map((r) => r.detail).join('; ')})`);
  t.same(await reconciliationBreaks(db, D), [], 'no break: every chunk matches one statement line, no orphan');
  const suspense = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from settlement.journal_lines where ledger_account like 'suspense:%'`);
  t.equal(suspense, 0n, 'nothing in suspense');
  // graphile-worker's cron schedules by the host's clock: B must not have put
  // any cron job, or the crontab's last execution, a day ahead.
  const ahead = await db.any(sql.type(z.object({ what: z.string() }))`
    select 'job ' || key as what from graphile_worker.jobs where key like 'cron:%' and run_at > now() + interval '2 minutes'
    union all
    select 'crontab ' || identifier from graphile_worker._private_known_crontabs where last_execution > now() + interval '2 minutes'`);
  t.same(ahead, [], 'nothing scheduled by B\'s clock');
});
