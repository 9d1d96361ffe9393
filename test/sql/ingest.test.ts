/**
 * The ingest door, against a real Postgres with the lending core's own kind
 * of login (settlement_ingest, accrue only): an accrual that would take its
 * (day, kind) over limits.max_chunks_per_day is refused at accrue (ST033,
 * nothing recorded), exactly as many as fit when they come at once, and the
 * day is paid; an ingest transaction left open does not hold up the record
 * stage of another day (a real worker pays it meanwhile), waits for no lock
 * longer than ingest_lock_timeout, and is ended by the server after
 * ingest_idle_timeout, after which its own day is recorded and paid too.
 */
import pg from 'pg';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import { toSettlementError } from '../../src/db/errors.js';
import { dailyStatus, enqueueStage } from '../../src/db/operations.js';
import { runStage } from '../../src/db/stages.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { noonSeoul, pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';

const INGEST = { name: 'settle_test_ingest', password: 'settle-test-ingest', role: 'settlement_ingest' };
const TEN_BILLION = 10_000_000_000n;
const n = z.object({ n: z.bigint() });

async function ingestClient(t: { teardown(fn: () => unknown): void }, url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: await ensureLoginRole(url, INGEST) });
  c.on('error', () => undefined); // a session the server ends (idle timeout) reports it here
  await c.connect();
  t.teardown(() => c.end().catch(() => undefined));
  return c;
}
const accrue = (c: pg.Client, ref: string, account: string, amount: bigint, date: string) =>
  c.query('select settlement.accrue($1, $2, $3, $4, $5) as id', [ref, account, 'tax', amount.toString(), noonSeoul(date)]);
const codeOf = (e: unknown) => (e as { code?: string }).code;

/** The chunks the accruals of (date, tax) need, as pay counts them (per account: ceil(sum / per-call limit)). */
const chunksOf = async (db: Parameters<typeof seed>[0], date: string) =>
  db.oneFirst(sql.type(n)`
    select coalesce(sum(ceil(s::numeric / (select per_call_limit from settlement.config where id))), 0)::bigint as n
    from (select sum(amount) as s from settlement.accruals where settle_date = ${date}::date and kind = 'tax' group by account_no) x`);

t.test('an accrual that would take its day over the chunk limit is refused at accrue (ST033); at once, exactly as many as fit', async (t) => {
  const { url, db } = await freshDb(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  const k0 = await chunksOf(db, D);
  t.ok(k0 > 0n && k0 < 100_000n, `the seeded day needs ${k0} chunks`);
  await db.query(sql.unsafe`update settlement.limits set max_chunks_per_day = 500000`);
  // 10,000,000,000 KRW is 100,000 chunks of 100,000 KRW: 4 fit beside the seeded day, 8 come at once.
  const clients = await Promise.all(Array.from({ length: 8 }, () => ingestClient(t, url)));
  const accounts = ['1000000001', '1000000002', '1000000003', '1000000004'];
  const results = await Promise.allSettled(clients.map((c, i) => accrue(c, `huge-${i}`, accounts[i % 4]!, TEN_BILLION, D)));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal(ok, 4, '4 of 8 concurrent 10-billion accruals fit');
  t.same(refused.map((r) => codeOf(r.reason)), ['ST033', 'ST033', 'ST033', 'ST033'], 'the other 4 refused with ST033');
  const named = toSettlementError(refused[0]!.reason);
  t.equal((named as { code?: string }).code, 'day_chunks_over_limit', 'a named error');
  t.match((named as Error).message, /10000000000 KRW on loan account \*\*\*\*\d{4} would take .* tax to \d+ payout chunks .* over settlement.limits.max_chunks_per_day 500000: refused, nothing recorded/);
  t.notOk(accounts.some((a) => (named as Error).message.includes(a)), 'the account number is masked in the error');
  const huge = await db.oneFirst(sql.type(n)`select count(*) as n from settlement.accruals where source_ref like 'huge-%'`);
  t.equal(huge, 4n, 'nothing recorded for the refused ones');
  const counted = await db.oneFirst(sql.type(n)`select chunks as n from settlement.day_chunk_counts where settle_date = ${D}::date and kind = 'tax'`);
  t.equal(counted, await chunksOf(db, D), `the count kept by accrue is the day's true need (${counted})`);
  t.ok(counted <= 500_000n, 'within the limit');
  // The same accrual again is the same answer (idempotent), not a second count.
  const first = results.findIndex((r) => r.status === 'fulfilled');
  await accrue(clients[0]!, `huge-${first}`, accounts[first % 4]!, TEN_BILLION, D);
  t.equal(await db.oneFirst(sql.type(n)`select chunks as n from settlement.day_chunk_counts where settle_date = ${D}::date and kind = 'tax'`), counted, 'a repeated accrual counts nothing');
  // Small accruals still come in: one that needs no new chunk never touches the count.
  await accrue(clients[0]!, 'small-1', '1000000001', 1n, D);
  t.equal(await db.oneFirst(sql.type(n)`select count(*) as n from settlement.accruals where source_ref = 'small-1'`), 1n);
});

t.test('a refused 10-billion accrual leaves its day payable: every account is paid', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D = pastDate(1);
  await seed(db, { date: D, accounts: 4, kinds: ['tax'] });
  const k0 = await chunksOf(db, D);
  await db.query(sql.unsafe`update settlement.limits set max_chunks_per_day = ${Number(k0) + 5}`);
  const c = await ingestClient(t, url);
  await t.rejects(accrue(c, 'absurd-1', '1000000002', TEN_BILLION, D), { code: 'ST033' }, 'refused at the door');
  await t.rejects(accrue(c, 'absurd-2', '1000000002', TEN_BILLION, D), { code: 'ST033' }, 'again');
  await accrue(c, 'normal-1', '1000000003', 2_500n, D);
  const owed = await db.oneFirst(sql.type(n)`select sum(amount)::bigint as n from settlement.accruals where settle_date = ${D}::date and kind = 'tax'`);
  await prepareSim(db, sim); // the loan accounts hold what was accrued on them
  await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D, 'tax');
  const [row] = await waitAllWithdrawn(db, [D], 1);
  t.equal(row!.withdraw, 'done', 'the day is paid and withdrawn');
  t.equal(row!.amount_withdrawn, owed, `every account's accruals withdrawn, to the won (${owed} KRW)`);
});

t.test('an open ingest transaction holds up no other day, waits for no lock long, and is ended by the server', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const D1 = pastDate(2);
  const D2 = pastDate(1);
  await seed(db, { date: D1, accounts: 3, kinds: ['tax'] });
  await seed(db, { date: D2, accounts: 3, kinds: ['tax'] });
  await prepareSim(db, sim);
  // The accounts are registered at the bank beforehand, as in production (a loan account is
  // registered when it is opened): an open ingest transaction holds its account's row, which
  // the registration writes (see the README).
  await registerAtSimulator(db, sim.url);
  await db.query(sql.unsafe`update settlement.limits set ingest_idle_timeout = '1 hour', ingest_lock_timeout = '200 milliseconds'`);

  // The lending core's session adds an accrual to D1 and leaves its transaction open.
  const a = await ingestClient(t, url);
  await a.query('begin');
  await accrue(a, 'open-1', '1000000001', 1_000n, D1);
  const aPid = (await a.query('select pg_backend_pid() as p')).rows[0].p as number;
  t.same((await a.query(`select current_setting('idle_in_transaction_session_timeout') as i, current_setting('lock_timeout') as l`)).rows[0], { i: '1h', l: '200ms' },
    'accrue bounded the transaction: idle_in_transaction_session_timeout and lock_timeout from settlement.limits');

  const busy = await runStage(db, 'record', D1, 'tax');
  t.equal(busy.outcome, 'busy', 'the record stage of D1 does not wait for the open transaction: busy');
  t.match(busy.detail, /another session holds the day/);
  t.equal((await runStage(db, 'record', D2, 'tax')).outcome, 'done', 'D2 is recorded meanwhile');

  // Another ingest call that needs what the open transaction holds gives up after ingest_lock_timeout.
  const c = await ingestClient(t, url);
  await t.rejects(accrue(c, 'open-2', '1000000001', 500n, D1), { code: '55P03' }, 'an accrual on the held account: lock_timeout, not a wait');

  // A worker pays D2 while the transaction is still open.
  await spawnWorker(t, workerEnv(url, sim.url));
  await enqueueStage(db, 'record', D1, 'tax');
  await enqueueStage(db, 'pay', D2, 'tax');
  await waitAllWithdrawn(db, [D2], 1);
  const state = await db.maybeOneFirst(sql.type(z.object({ s: z.string() }))`select state as s from pg_stat_activity where pid = ${aPid}`);
  t.equal(state, 'idle in transaction', 'D2 withdrawn while the ingest transaction is still open');
  t.not((await dailyStatus(db, D1))[0]?.record, 'done', 'D1 waits for it (its accrual may still come)');

  // A transaction left idle longer than ingest_idle_timeout is ended by the server.
  await db.query(sql.unsafe`update settlement.limits set ingest_idle_timeout = '1 second'`);
  const b = await ingestClient(t, url);
  await b.query('begin');
  await accrue(b, 'open-3', '1000000002', 700n, D1);
  const bPid = (await b.query('select pg_backend_pid() as p')).rows[0].p as number;
  await a.query('rollback'); // the first one ends on its own
  await waitFor('the server ended the idle ingest transaction', async () =>
    (await db.maybeOneFirst(sql.type(z.object({ p: z.number() }))`select pid as p from pg_stat_activity where pid = ${bPid}`)) === null, 60_000, 200);
  await t.rejects(b.query('select 1'), 'its session is gone');
  const [d1] = await waitAllWithdrawn(db, [D1], 1);
  t.equal(d1!.withdraw, 'done', 'then D1 is recorded (the stage came back) and paid');
  const kept = await db.anyFirst(sql.type(z.object({ r: z.string() }))`select source_ref as r from settlement.accruals where source_ref like 'open-%'`);
  t.same(kept, [], 'neither open transaction\'s accrual was recorded (both ended without commit)');
});
