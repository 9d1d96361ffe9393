import pg from 'pg';
import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { simAdminClient } from '../../src/bank-sim/sim-admin-client.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { simulatorTransfers } from '../helpers/bank-record.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker, waitFor } from '../helpers/procs.js';
import { loginAs } from '../helpers/roles.js';

/** A person's own operator login (its session). */
const person = async (t: { teardown(fn: () => unknown): void }, url: string, tag: string): Promise<pg.Client> =>
  (await loginAs(t, url, 'settlement_operator', `m_${tag}`)).client;

t.test('a payee change mid-day: chunks planned before it are paid to the old account, those planned after to the new', async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t);
  const OLD_DAY = pastDate(2);
  const NEW_DAY = pastDate(1);
  await seed(db, { date: OLD_DAY, accounts: 6, kinds: ['tax'], seed: 1 });
  await prepareSim(db, sim);
  const worker = await spawnWorker(t, workerEnv(url, sim.url));
  t.ok(worker.poolId, 'a real worker (settlement_worker login)');

  // Plan OLD_DAY's chunks while no bank call may start (a pause), so they are in flight when the payee changes.
  await db.query(sql.unsafe`select settlement.pause('tax', 'hold the chunks while the payee changes')`);
  await db.query(sql.unsafe`select settlement.enqueue_stage('record', ${OLD_DAY}::date, 'tax')`);
  await waitFor('OLD_DAY planned', async () =>
    (await db.oneFirst(sql.type(z.object({ s: z.string() }))`select state::text as s from settlement.stage_runs where business_date = ${OLD_DAY} and kind = 'tax' and stage = 'pay'`)) === 'done', 60_000);
  const planned = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.transfers where business_date = ${OLD_DAY} and state in ('pending', 'sending')`);
  t.ok(planned > 0n, `${planned} chunks planned and not sent`);

  // The new payee: a new settlement account under a new NH app, for tax. Two people.
  const NEW_ACC = '2999999999';
  const NEW_APP = '099';
  await simAdminClient(sim.url).openAccounts([{ bncd: '011', acno: NEW_ACC, balance: 0n }]);
  await simAdminClient(sim.url).registerContracts([{ iscd: '000001', fintechApsno: NEW_APP, bncd: '011', acno: NEW_ACC }]);
  const alice = await person(t, url, 'alice');
  const bob = await person(t, url, 'bob');
  for (const [target, change] of [
    ['accounts', { account_no: NEW_ACC, role: 'settlement', bank_code: '011', holder: 'new tax settlement' }],
    ['contracts', { fintech_apsno: NEW_APP, settlement_account: NEW_ACC }],
    ['kind_accounts', { kind: 'tax', settlement_account: NEW_ACC, fintech_apsno: NEW_APP }],
  ] as const) {
    const id = (await alice.query(`select settlement.propose_change($1, $2::jsonb, 'new NH app for tax') as id`, [target, JSON.stringify(change)])).rows[0].id as string;
    await bob.query(`select settlement.approve_change($1, 'checked the NH contract')`, [id]);
  }

  await seed(db, { date: NEW_DAY, accounts: 6, kinds: ['tax'], seed: 2 });
  await prepareSim(db, sim); // funds the new day's loan balances
  await db.query(sql.unsafe`select settlement.enqueue_stage('record', ${NEW_DAY}::date, 'tax')`);
  await db.query(sql.unsafe`select settlement.resume('tax')`);
  await waitAllWithdrawn(db, [OLD_DAY, NEW_DAY], 1);

  const rows = await db.any(sql.type(z.object({ business_date: z.string(), purpose: z.string(), is_tuno: z.string(), from_account: z.string(), to_account: z.string(), fintech_apsno: z.string() }))`
    select business_date::text, purpose::text, is_tuno, from_account, to_account, fintech_apsno from settlement.transfers where state = 'succeeded'`);
  const bank = new Map((await simulatorTransfers(sim.url)).map((b) => [b.isTuno, b]));
  const paidTo = (day: string) => [...new Set(rows.filter((r) => r.business_date === day && r.purpose === 'payout').map((r) => bank.get(r.is_tuno)?.to))];
  t.same(paidTo(OLD_DAY), ['2000000001'], 'the bank credited every chunk planned before the change to the old settlement account');
  t.same(paidTo(NEW_DAY), [NEW_ACC], 'and every chunk planned after it to the new one');
  const withdrawnFrom = (day: string) => rows.filter((r) => r.business_date === day && r.purpose === 'withdrawal').map((r) => bank.get(r.is_tuno)?.from);
  t.same(withdrawnFrom(OLD_DAY), ['2000000001'], 'the old day is withdrawn from where its money went');
  t.same(withdrawnFrom(NEW_DAY), [NEW_ACC], 'the new day from the new account');
  await checkInvariants(t, db, sim.url);
});
