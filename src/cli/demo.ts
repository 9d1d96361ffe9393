import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { sql } from 'slonik';
import { z } from 'zod';
import type { Config } from '../config.js';
import { startBankSimulator } from '../bank-sim/simulator.js';
import { createDbPool, type DatabasePool } from '../db/pool.js';
import { configureBankWindow, dailyStatus, enqueueStage } from '../db/operations.js';
import { configureReconcile, reconcileSummary, reconciliationBreaks } from '../db/reconcile.js';
import { KINDS } from '../domain.js';
import type { Logger } from '../log.js';
import { migrate } from '../db/migrate.js';
import { EMBEDDED_CONSOLE_LOGIN, serveConsole } from '../console/mount.js';
import { EMBEDDED_WORKER_LOGIN, ensureLoginRole, onShutdown, openDatabase } from '../runtime.js';
import { fundSimulator, seed } from '../seed.js';
import { startWorker } from '../worker/runner.js';
import { intFlag, parseCommand } from './args.js';
import { formatReconcile } from './reconcile.js';
import { formatStatus, money } from './status-table.js';
import { definedOnly, simFlagSpecs, simFlagsShape } from './sim-flags.js';

const DEMO_DB = 'settlement_demo';

/**
 * The demo settles yesterday in a database of its own (`settlement_demo` on
 * the same server), made anew each run, so a run never meets an earlier run's
 * days and the reconcile stage closes this run's day against this run's bank.
 */
async function freshDemoDatabase(serverUrl: string, logger: Logger): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${DEMO_DB} with (force)`);
    await admin.query(`create database ${DEMO_DB}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${DEMO_DB}`;
  await migrate(u.toString(), { logger });
  return u.toString();
}

export async function cmdDemo(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { accounts: { type: 'string' }, 'timeout-s': { type: 'string' }, keep: { type: 'boolean' }, ...simFlagSpecs },
    z.object({ accounts: intFlag(1, 1_000_000).default('300'), timeoutS: intFlag(1, 86_400).default('600'), keep: z.boolean().optional(), ...simFlagsShape }).strict(),
  );
  const { accounts, timeoutS, keep, ...simFlags } = o;
  const t0 = Date.now();
  const database = await openDatabase(config, logger, { migrate: false });
  const sim = await startBankSimulator({
    accessToken: config.bank.accessToken,
    perCallLimit: config.bank.perCallLimit,
    latencyMs: 100,
    jitterMs: 50,
    maxInFlight: config.bank.maxInFlight,
    ...definedOnly(simFlags),
  });
  let db: DatabasePool | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  let web: Awaited<ReturnType<typeof serveConsole>> | undefined;
  let cleanedUp: () => void = () => {};
  const cleanup = new Promise<void>((r) => (cleanedUp = r));
  try {
    const demoUrl = await freshDemoDatabase(database.url, logger);
    db = await createDbPool(demoUrl, { maximumPoolSize: 4, applicationName: 'settle-demo' });
    // The simulator's statement of a date is final at once (a real bank's is
    // final some time after the date ends: settlement.config.reconcile_after).
    await configureReconcile(db, '-1 day');
    // The simulator keeps no quiet hours: the demo settles at whatever hour it runs.
    await configureBankWindow(db, null, null, 'the demo: its bank simulator keeps no quiet hours');
    const date = await db.oneFirst(sql.type(z.object({ d: z.string() }))`select (settlement.today() - 1)::text as d`);
    const s = await seed(db, { date, accounts });
    console.log(`seeded ${date}: ${s.accounts} loan accounts, ${s.accruals} accruals, ${s.amount} KRW across ${KINDS.length} kinds`);
    await fundSimulator(db, sim.url, { iscd: config.bank.iscd });
    console.log(`bank simulator at ${sim.url} (latency ${sim.state.config.latencyMs} ms, in-flight cap ${sim.state.config.maxInFlight})`);

    // One worker with room for the whole in-flight cap, so the demo runs at the bank's pace.
    const workerConfig = { ...config, workerConcurrency: Math.max(config.workerConcurrency, config.bank.maxInFlight + 5) };
    // The worker logs in with the settlement_worker role only, as in production.
    const workerUrl = await ensureLoginRole(demoUrl, EMBEDDED_WORKER_LOGIN).catch((e: Error) => {
      console.log(`(could not create the worker's login role: ${e.message.split('\n')[0]}; the worker uses DATABASE_URL's role)`);
      return demoUrl;
    });
    worker = await startWorker({ config: workerConfig, databaseUrl: workerUrl, bankUrl: sim.url, logger, crontab: '' });
    // The web console on the demo's database (an operator login), so a newcomer can watch and act.
    const consoleUrl = await ensureLoginRole(demoUrl, EMBEDDED_CONSOLE_LOGIN).catch(() => demoUrl);
    // No console user configured: a one-time operator token for this demo, printed below.
    const token = config.console.users.length > 0 ? undefined : randomBytes(12).toString('hex');
    const consoleConfig: Config = { ...config, console: { ...config.console, users: token ? [{ name: 'demo', role: 'operator', token }] : config.console.users, databaseUrl: consoleUrl } };
    const consoleBank = worker.bank;
    web = await serveConsole({ config: consoleConfig, logger, host: config.httpHost, port: config.httpPort, bank: consoleBank }).catch(() =>
      // The port is taken (a worker runs on this host): any free port.
      serveConsole({ config: consoleConfig, logger, host: config.httpHost, port: 0, bank: consoleBank }));
    console.log(`console: ${web.url}${token ? ` (sign in with the token ${token}, made for this demo)` : ' (sign in with your console token)'}${keep ? '' : '; --keep leaves it running after the demo'}`);
    await enqueueStage(db, 'record', date, null);

    const deadline = Date.now() + timeoutS * 1000;
    let last = '';
    for (;;) {
      const rows = await dailyStatus(db, date);
      const total = rows.reduce((a, r) => a + r.chunks_total, 0n);
      const ok = rows.reduce((a, r) => a + r.chunks_succeeded, 0n);
      const failed = rows.reduce((a, r) => a + r.chunks_failed, 0n);
      const stages = ['record', 'pay', 'confirm', 'withdraw', 'reconcile'] as const;
      const doneCounts = stages.map((st) => `${st} ${rows.filter((r) => r[st] === 'done').length}/${rows.length}`).join('  ');
      const registered = await db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
        select count(*) filter (where fin_acno is not null) as n from settlement.accounts where role = 'loan'`);
      const state = `fin-accounts ${registered}/${accounts} | chunks ${ok}/${total} paid${failed ? `, ${failed} failed` : ''} | ${doneCounts}`;
      const line = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${state}`;
      // A terminal gets one line rewritten in place; a log gets a line per change.
      if (process.stdout.isTTY) process.stdout.write(`\r${line}\x1b[K`);
      else if (state !== last) console.log(line);
      last = state;
      const allDone = rows.length === KINDS.length && rows.every((r) => r.reconcile === 'done');
      const blocked = rows.some((r) => stages.some((st) => r[st] === 'blocked'));
      if (allDone || blocked || Date.now() > deadline) break;
      await sleep(250);
    }
    if (process.stdout.isTTY) process.stdout.write('\n');
    if (!keep) {
      await worker.stop();
      worker = undefined;
    }

    const rows = await dailyStatus(db, date);
    console.log('\n' + formatStatus(rows) + '\n');
    // The proof: the reconcile stage read the bank's statements (InquireTransactionHistory)
    // and matched every transfer of the day to its lines and every line of ours to a transfer.
    const summary = await reconcileSummary(db, date);
    const breaks = await reconciliationBreaks(db, date);
    for (const line of formatReconcile(summary, breaks)) console.log(line);
    const moved = await db.one(sql.type(z.object({ transfers: z.bigint(), amount: z.bigint() }))`
      select count(*) as transfers, coalesce(sum(amount), 0)::bigint as amount
      from settlement.transfers where business_date = ${date}::date and state = 'succeeded'`);
    const lines = summary.reduce((a, r) => a + r.matched_lines, 0n);
    const reconciled = summary.length === KINDS.length && summary.every((r) => r.reconcile === 'done') && breaks.length === 0;
    console.log(reconciled
      ? `reconciliation against the bank's statements: ${moved.transfers} transfers (${money(moved.amount)} KRW) matched to ${lines} statement lines, no break: no difference, to the won`
      : `reconciliation against the bank's statements: NOT reconciled (${breaks.length} open break(s))`);
    const stats = sim.statsSnapshot() as { maxInFlight?: number };
    console.log(`bank calls in flight at most: ${stats.maxInFlight} (cap ${config.bank.maxInFlight}); wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const allDone = rows.length === KINDS.length && rows.every((r) => r.withdraw === 'done');
    if (!allDone || !reconciled) {
      console.log('demo FAILED: ' + (!allDone ? 'not every stage finished' : 'the day does not reconcile with the bank\'s statements'));
      process.exitCode = 1;
    } else {
      console.log('demo OK: every stage done for every kind, reconciled with the bank\'s statements to the won');
    }
    if (keep && web) {
      console.log(`\nkept running: the worker, the bank simulator (${sim.url}) and the console at ${web.url} — Ctrl-C to stop`);
      let stopped: () => void = () => {};
      const done = new Promise<void>((r) => (stopped = r));
      // Ctrl-C: stop in order (the finally below), then exit with the demo's own code.
      onShutdown(logger, async () => {
        stopped();
        await cleanup;
        process.exit(Number(process.exitCode ?? 0));
      });
      await done;
    }
  } finally {
    await web?.close();
    await worker?.stop();
    await db?.end();
    await sim.close();
    await database.stop();
    cleanedUp();
  }
}
