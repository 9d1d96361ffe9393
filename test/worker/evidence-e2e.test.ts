/**
 * The bank's evidence always wins (issue 21), end to end: a worker process,
 * the simulator over HTTP, and a second party (a stale attempt, or a stolen
 * worker login) acting through the same SQL functions while the worker's
 * call is in flight. The simulator is held slow while the interleaving is
 * set up, so the worker's call cannot finish before it (its timeouts and
 * retries are the ordinary ones).
 */
import t, { type Test } from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import type { DatabasePool } from '../../src/db/pool.js';
import { configureReconcile, decideUnresolved, reconciliationBreaks } from '../../src/db/reconcile.js';
import { runStage } from '../../src/db/stages.js';
import { registerAtSimulator, seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, TOKEN, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb, pgClient } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { claimTransfer, finishTransfer } from '../helpers/transfers.js';

const transferRow = z.object({ id: z.number(), is_tuno: z.string(), fin_acno: z.string(), fintech_apsno: z.string(), memo: z.string(), amount: z.bigint(), to_account: z.string() });
type Row = z.infer<typeof transferRow>;

async function bookDirectly(simUrl: string, c: Row, tsymd: string) {
  const body = {
    Header: { ApiNm: 'DrawingTransfer', Tsymd: tsymd, Trtm: '120000', Iscd: '000001', FintechApsno: c.fintech_apsno, ApiSvcCd: 'DrawingTransferA', IsTuno: c.is_tuno, AccessToken: TOKEN },
    FinAcno: c.fin_acno, Tram: c.amount.toString(), DractOtlt: c.memo,
  };
  const r = await fetch(`${simUrl}/DrawingTransfer.nh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { Header: { Rpcd: string; Rsms: string } };
  if (j.Header.Rpcd !== '00000') throw new Error(`direct booking failed: ${j.Header.Rpcd} ${j.Header.Rsms}`);
}

async function plannedDay(t: Test, D: string, accounts = 3) {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  await seed(db, { date: D, accounts, kinds: ['tax'] });
  await prepareSim(db, sim);
  await registerAtSimulator(db, sim.url);
  t.equal((await runStage(db, 'record', D, 'tax')).outcome, 'done');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'done');
  const rows = await db.any(sql.type(transferRow)`
    select id::int as id, is_tuno, fin_acno, fintech_apsno, memo, amount, to_account from settlement.transfers where purpose = 'payout' order by id`);
  return { url, db, sim, rows };
}

/** Every IsTuno transfer `id` has held, and how many bookings the bank has under them. */
async function bookingsOf(db: DatabasePool, simUrl: string, id: number) {
  const numbers = await db.anyFirst(sql.type(z.object({ n: z.string() }))`
    select is_tuno as n from settlement.transfers where id = ${id} union select is_tuno from settlement.transfer_attempts where transfer_id = ${id}`);
  const bank = (await (await fetch(`${simUrl}/_sim/transfers`)).json()) as Array<{ isTuno: string; cancelTuno?: string | null }>;
  return bank.filter((b) => numbers.includes(b.isTuno)).length;
}

const claimedByWorker = (db: DatabasePool, id: number, not: string) =>
  waitFor(`transfer ${id} claimed by the worker`, async () => {
    const r = await db.maybeOne(sql.type(z.object({ claimed_by: z.string().nullable(), state: z.string() }))`
      select claimed_by, state::text as state from settlement.transfers where id = ${id}`);
    return r && r.state === 'sending' && r.claimed_by !== null && r.claimed_by !== not ? r : undefined;
  }, 60_000, 20);

t.test('A (e2e): a stale attempt\'s failure cannot undo the booking the live attempt finds; the day is paid once and nothing is retried', async (t) => {
  const D = pastDate(1);
  const { url, db, sim, rows } = await plannedDay(t, D);
  const admin = simAdminClient(sim.url);
  const x = rows[0]!;
  // An attempt that sent x and lost its claim (its lease is over) ...
  const old = await claimTransfer(db, x.id, 'old-pool', 1);
  await bookDirectly(sim.url, x, old.tsymd!);
  // ... and the worker's attempt, held at the bank while the old one answers.
  await admin.configure({ latencyMs: 15_000, jitterMs: 0 });
  await spawnWorker(t, workerEnv(url, sim.url));
  await claimedByWorker(db, x.id, 'old-pool');
  const late = await finishTransfer(db, x.id, x.is_tuno, { outcome: 'failed', code: 'E0001', message: 'the old attempt\'s answer' }, old.claim_token ?? null);
  t.equal(late, 'stale', 'the old attempt\'s failure, without the live claim, is stale');
  await admin.configure({ latencyMs: 5, jitterMs: 3 });

  const settled = await waitFor('x settled', async () => {
    const r = await db.one(sql.type(z.object({ state: z.string(), is_tuno: z.string() }))`select state::text as state, is_tuno from settlement.transfers where id = ${x.id}`);
    return r.state === 'succeeded' || r.state === 'failed' ? r : undefined;
  }, 120_000);
  t.same(settled, { state: 'succeeded', is_tuno: x.is_tuno }, 'x is succeeded under the number the bank booked');
  t.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`select count(*)::int as n from settlement.transfers where state = 'failed'`), 0, 'nothing failed');
  const retried = await db.oneFirst(sql.type(z.object({ n: z.number() }))`select coalesce(sum(retried), 0)::int as n from settlement.retry_day(${D}::date)`);
  t.equal(retried, 0, 'settle retry has nothing to send again');
  await waitAllWithdrawn(db, [D], 1);
  t.equal(await bookingsOf(db, sim.url, x.id), 1, 'the bank booked x once');
  t.same(await reconciliationBreaks(db, D), [], 'no orphan');
  await checkInvariants(t, db, sim.url);
});

t.test('C (e2e): while the worker\'s send is in flight, a forged "unresolved" and an empty statement decide nothing; the transfer is paid once', async (t) => {
  const D = pastDate(1);
  const { url, db, sim, rows } = await plannedDay(t, D);
  const admin = simAdminClient(sim.url);
  const x = rows[0]!;
  await configureReconcile(db, '-1 day');
  await admin.configure({ latencyMs: 15_000, jitterMs: 0 });
  await spawnWorker(t, workerEnv(url, sim.url));
  await claimedByWorker(db, x.id, '');
  // Its lease covers the whole attempt: the wait for a slot (120 s) and three
  // rounds of send and result check, each retried up to 30 s plus the 2 s timeout.
  const leaseS = await db.oneFirst(sql.type(z.object({ s: z.number() }))`
    select extract(epoch from claimed_until - updated_at)::float8 as s from settlement.transfers where id = ${x.id}`);
  t.ok(leaseS >= 120 + 3 * 2 * (30 + 2), `the claim's lease (${leaseS} s) covers the slot wait and every round`);
  const tsymd = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select tsymd as d from settlement.transfers where id = ${x.id}`);
  // A second party with the worker's login: "unresolved" without the claim, then an empty statement read now.
  const c = await pgClient(t, url);
  const r = await c.query(`select settlement.finish_transfers($1::bigint[], $2::text[], '{unresolved}', '{NULL}', '{NULL}', '{forged}', '{}') as r`, [[x.id], [x.is_tuno]]);
  t.same(r.rows[0].r, ['stale'], 'an answer without the live claim is stale');
  await db.query(sql.unsafe`select settlement.record_statement('011', ${x.to_account}, ${tsymd}, ${tsymd}, '[]'::jsonb, settlement.ask_statement('011', ${x.to_account}, ${tsymd}, ${tsymd}))`);
  t.same((await decideUnresolved(db)).filter((d) => Number(d.transfer_id) === x.id), [], 'decide_unresolved decides nothing while the worker may send');
  t.equal(await db.oneFirst(sql.type(z.object({ t: z.string() }))`select is_tuno as t from settlement.transfers where id = ${x.id}`), x.is_tuno, 'no new number');
  await admin.configure({ latencyMs: 5, jitterMs: 3 });
  await waitAllWithdrawn(db, [D], 1);
  t.equal(await bookingsOf(db, sim.url, x.id), 1, 'the bank booked x once');
  await checkInvariants(t, db, sim.url);
});
