import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'slonik';
import { z } from 'zod';
import type { Config } from '../config.js';
import { startBankSimulator } from '../bank/simulator.js';
import { createDbPool, type DatabasePool } from '../db/pool.js';
import { dailyStatus, enqueueStage, KINDS } from '../db/queries.js';
import type { Logger } from '../log.js';
import { openDatabase } from '../runtime.js';
import { formatReconciliation, ledgerTransfers, reconcile, simulatorTransfers } from '../reconcile.js';
import { fundSimulator, seed } from '../seed.js';
import { startWorker } from '../worker/runner.js';
import { intFlag, parseCommand } from './args.js';
import { formatStatus } from './status-table.js';
import { definedOnly, simFlagSpecs, simFlagsShape } from './sim-flags.js';

/** The newest day before today that has never been seeded (a re-run on the same database settles a fresh day). */
async function pickDemoDate(db: DatabasePool): Promise<string> {
  return db.oneFirst(sql.type(z.object({ d: z.string() }))`
    select max(g.d)::text as d
    from generate_series(settlement.today() - 3650, settlement.today() - 1, interval '1 day') as g(d)
    where not exists (select 1 from settlement.days where business_date = g.d::date)`);
}

export async function cmdDemo(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { accounts: { type: 'string' }, 'timeout-s': { type: 'string' }, ...simFlagSpecs },
    z.object({ accounts: intFlag(1, 1_000_000).default('300'), timeoutS: intFlag(1, 86_400).default('600'), ...simFlagsShape }).strict(),
  );
  const { accounts, timeoutS, ...simFlags } = o;
  const t0 = Date.now();
  const database = await openDatabase(config, logger);
  const sim = await startBankSimulator({
    accessToken: config.bank.accessToken,
    perCallLimit: config.bank.perCallLimit,
    latencyMs: 100,
    jitterMs: 50,
    maxInFlight: config.bank.maxInFlight,
    ...definedOnly(simFlags),
  });
  const db = await createDbPool(database.url, { maximumPoolSize: 4, applicationName: 'settle-demo' });
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    const date = await pickDemoDate(db);
    const s = await seed(db, { date, accounts });
    console.log(`seeded ${date}: ${s.accounts} loan accounts, ${s.accruals} accruals, ${s.amount} KRW across ${KINDS.length} kinds`);
    await fundSimulator(db, sim.url);
    console.log(`bank simulator at ${sim.url} (latency ${sim.state.config.latencyMs} ms, in-flight cap ${sim.state.config.maxInFlight})`);

    worker = await startWorker({ config, databaseUrl: database.url, bankUrl: sim.url, logger, crontab: '' });
    await enqueueStage(db, 'record', date, null);

    const deadline = Date.now() + timeoutS * 1000;
    let last = '';
    for (;;) {
      const rows = await dailyStatus(db, date);
      const total = rows.reduce((a, r) => a + r.chunks_total, 0n);
      const ok = rows.reduce((a, r) => a + r.chunks_succeeded, 0n);
      const failed = rows.reduce((a, r) => a + r.chunks_failed, 0n);
      const stages = ['record', 'pay', 'confirm', 'withdraw'] as const;
      const doneCounts = stages.map((st) => `${st} ${rows.filter((r) => r[st] === 'done').length}/${rows.length}`).join('  ');
      const state = `chunks ${ok}/${total} paid${failed ? `, ${failed} failed` : ''} | ${doneCounts}`;
      const line = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${state}`;
      // A terminal gets one line rewritten in place; a log gets a line per change.
      if (process.stdout.isTTY) process.stdout.write(`\r${line}\x1b[K`);
      else if (state !== last) console.log(line);
      last = state;
      const allDone = rows.length === KINDS.length && rows.every((r) => r.withdraw === 'done');
      const blocked = rows.some((r) => r.confirm === 'blocked' || r.withdraw === 'blocked');
      if (allDone || blocked || Date.now() > deadline) break;
      await sleep(250);
    }
    if (process.stdout.isTTY) process.stdout.write('\n');
    await worker.stop();
    worker = undefined;

    const rows = await dailyStatus(db, date);
    console.log('\n' + formatStatus(rows) + '\n');
    const rec = reconcile(await simulatorTransfers(sim.url), await ledgerTransfers(db));
    console.log(formatReconciliation(rec));
    const stats = sim.statsSnapshot() as { maxInFlight?: number };
    console.log(`bank calls in flight at most: ${stats.maxInFlight} (cap ${config.bank.maxInFlight}); wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const allDone = rows.length === KINDS.length && rows.every((r) => r.withdraw === 'done');
    if (!allDone || !rec.ok) {
      console.log('demo FAILED: ' + (!allDone ? 'not every stage finished' : 'the ledger does not match the bank'));
      process.exitCode = 1;
    } else {
      console.log('demo OK: every stage done for every kind, ledger matches the bank to the won');
    }
  } finally {
    await worker?.stop();
    await db.end();
    await sim.close();
    await database.stop();
  }
}
