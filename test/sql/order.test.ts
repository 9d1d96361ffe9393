import t from 'tap';
import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from '../../src/db/pool.js';
import { configureReconcile } from '../../src/db/reconcile.js';
import { runStage } from '../../src/db/stages.js';
import { type Stage, STAGES } from '../../src/domain.js';
import { seed } from '../../src/seed.js';
import { checkInvariants, prepareSim, startSim, waitAllWithdrawn, workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { spawnWorker } from '../helpers/procs.js';
import { waitReconcile } from '../helpers/reconcile.js';

const D = pastDate(1);
const KINDS2 = ['tax', 'upfront_fee'] as const;

async function finalState(db: DatabasePool) {
  const balances = await db.any(sql.type(z.object({ ledger_account: z.string(), balance: z.bigint() }))`
    select ledger_account, balance from settlement.ledger_balances order by ledger_account`);
  const status = await db.any(sql.type(z.object({ kind: z.string(), record: z.string(), pay: z.string(), confirm: z.string(), withdraw: z.string(), entries: z.bigint(), amount_recorded: z.bigint(), chunks_total: z.bigint(), amount_paid: z.bigint(), amount_withdrawn: z.bigint() }))`
    select kind::text as kind, record, pay, confirm, withdraw, entries, amount_recorded, chunks_total, amount_paid, amount_withdrawn
    from settlement.daily_status order by kind`);
  return { balances, status };
}

t.test('stages out of order do nothing until their predecessor is done', async (t) => {
  const { db } = await freshDb(t);
  await seed(db, { date: D, accounts: 5, kinds: ['tax'] });
  const before = await finalState(db);
  t.equal((await runStage(db, 'withdraw', D, 'tax')).outcome, 'not_ready');
  t.equal((await runStage(db, 'confirm', D, 'tax')).outcome, 'not_ready');
  t.equal((await runStage(db, 'pay', D, 'tax')).outcome, 'not_ready');
  t.same(await finalState(db), before, 'nothing changed');
});

t.test('stages called in random order, duplicated and concurrently reach the same final state as one orderly run', async (t) => {
  const sim1 = await startSim(t);
  const sim2 = await startSim(t);
  const orderly = await freshDb(t);
  const chaotic = await freshDb(t, { poolSize: 12 });
  for (const x of [orderly, chaotic]) await seed(x.db, { date: D, accounts: 30, kinds: KINDS2 });
  await prepareSim(orderly.db, sim1);
  await prepareSim(chaotic.db, sim2);
  // Statements final at once: reconcile matches while the other calls run.
  for (const x of [orderly, chaotic]) await configureReconcile(x.db, '-1 day');
  await spawnWorker(t, workerEnv(orderly.url, sim1.url));
  await spawnWorker(t, workerEnv(chaotic.url, sim2.url));

  // Orderly: each stage once, in order (the worker's chaining finishes the day).
  for (const k of KINDS2) await runStage(orderly.db, 'record', D, k);

  // Chaotic: 120 calls of random stages, 12 at a time, until the day is done.
  let calls = 0;
  const outcomes = new Map<string, number>();
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const done = async () => (await chaotic.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from settlement.stage_runs where stage = 'reconcile' and state = 'done'`)) === BigInt(KINDS2.length);
  while (calls < 120 || !(await done())) {
    await Promise.all(Array.from({ length: 12 }, async () => {
      const stage: Stage = STAGES[rnd(STAGES.length)]!;
      const r = await runStage(chaotic.db, stage, D, KINDS2[rnd(KINDS2.length)]!);
      outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
    }));
    calls += 12;
    if (calls > 5000) break;
  }
  t.comment(`chaotic calls: ${calls}, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  t.ok((outcomes.get('not_ready') ?? 0) > 0 && (outcomes.get('already_done') ?? 0) > 0, 'out-of-order and repeated calls happened');
  await waitAllWithdrawn(orderly.db, [D], KINDS2.length);
  await waitAllWithdrawn(chaotic.db, [D], KINDS2.length);
  for (const x of [orderly, chaotic]) await waitReconcile(x.db, D, KINDS2, 'done');
  t.same(await finalState(chaotic.db), await finalState(orderly.db), 'same stages, counts, amounts and ledger balances');
  await checkInvariants(t, chaotic.db, sim2.url);
  await checkInvariants(t, orderly.db, sim1.url);
});
