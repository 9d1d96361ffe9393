import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import { enqueueStage } from '../../src/db/operations.js';
import { configureReconcile } from '../../src/db/reconcile.js';
import { KINDS } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';
import { ledgerMirrorsStatements, waitReconcile } from '../helpers/reconcile.js';

const seedArg = Number(process.env.SETTLE_CHAOS_SEED ?? 11);

// Issue 9's "a day settled under faults reconciles with no break": two
// business days of every kind, paid by two real worker processes against a
// simulator that fails, drops, times out and garbles requests. Every kind
// shares the loan accounts, and with a negative grace a date's statement is
// final at once, so a loan account's statement is read for one kind while
// other kinds (and the other day) are still booking on it: those reads must
// not count for transfers that settled after them.
t.test(`two days of every kind settled under bank faults reconcile with no break (seed ${seedArg})`, async (t) => {
  const { url, db } = await freshDb(t);
  const sim = await startSim(t, {
    latencyMs: 10, jitterMs: 5, maxInFlight: 6, seed: seedArg,
    failBeforeRate: 0.08, timeoutAfterRate: 0.05, dropRate: 0.05, slowRate: 0.05, malformedRate: 0.05,
  });
  const dates = [pastDate(2), pastDate(1)];
  for (const [i, D] of dates.entries()) await seed(db, { date: D, accounts: 20, seed: i + 1 });
  await prepareSim(db, sim);
  await configureReconcile(db, '-1 day');
  const env = workerEnv(url, sim.url, { BANK_TIMEOUT_MS: '400', WORKER_CONCURRENCY: '5', BANK_MAX_IN_FLIGHT: '10' });
  await Promise.all([spawnWorker(t, env), spawnWorker(t, env)]);
  for (const D of dates) await enqueueStage(db, 'record', D, null);
  await waitAllWithdrawn(db, dates, KINDS.length, 240_000);
  for (const D of dates) await waitReconcile(db, D, KINDS, 'done', 180_000);

  const stats = sim.statsSnapshot() as { faults: Record<string, number> };
  const injected = Object.values(stats.faults).reduce((a, b) => a + b, 0);
  t.comment(`faults injected: ${JSON.stringify(stats.faults)}`);
  t.ok(injected > 10, `faults were really injected (${injected})`);

  const breaks = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.breaks`);
  t.equal(breaks, 0n, 'no break was ever recorded (none resolved away either)');
  // Each side of each succeeded transfer at NH (other banks' statements are
  // not available through NH): exactly one line, found by its reference.
  const c = await db.one(sql.type(z.object({ succeeded: z.bigint(), sides: z.bigint(), matched: z.bigint(), unmatched_ours: z.bigint(), days: z.bigint() }))`
    with sides as (
      select t.id, t.is_tuno, v.acno from settlement.transfers t
      cross join lateral (values (t.from_account), (t.to_account)) v(acno)
      join settlement.accounts a on a.account_no = v.acno and a.bank_code in ('011', '012')
      where t.state = 'succeeded')
    select (select count(*) from settlement.transfers where state = 'succeeded') as succeeded,
           (select count(*) from sides) as sides,
           (select count(*) from sides s where (select count(*) from settlement.line_matches m join settlement.statement_lines l on l.id = m.line_id
                                                where m.transfer_id = s.id and m.is_tuno = s.is_tuno and m.rule = 'reference' and l.acno = s.acno) = 1) as matched,
           (select count(*) from settlement.line_matches m where m.rule not in ('reference', 'fallback')) as unmatched_ours,
           (select count(*) from settlement.stage_runs where stage = 'reconcile' and state = 'done') as days`);
  t.ok(c.succeeded > 0n, `${c.succeeded} transfers succeeded, ${c.sides} sides at NH`);
  t.ok(c.sides > c.succeeded, 'both sides of the payouts are at NH');
  t.equal(c.matched, c.sides, 'every NH side of every succeeded transfer is matched by its reference to one line');
  t.equal(c.unmatched_ours, 0n, 'no duplicate, unknown or cancelled line');
  t.equal(c.days, BigInt(dates.length * KINDS.length), 'reconcile done for every (date, kind)');
  await ledgerMirrorsStatements(t, db);
  await checkInvariants(t, db, sim.url);
});
