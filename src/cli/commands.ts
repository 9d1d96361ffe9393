import { sql } from 'slonik';
import { z } from 'zod';
import type { Config } from '../config.js';
import { configureReconcile } from '../db/reconcile.js';
import { createDbPool } from '../db/pool.js';
import { asOperator, configure, enqueueStage, workerStatus } from '../db/operations.js';
import { adoptSettings } from '../db/workers.js';
import { dateSchema, kindSchema, stageSchema } from '../domain.js';
import { migrate } from '../db/migrate.js';
import type { Logger } from '../log.js';
import { openDatabase } from '../runtime.js';
import { fundSimulator, isSimulator, seed } from '../seed.js';
import { intFlag, parseCommand, UsageError } from './args.js';

export async function withDb<T>(config: Config, logger: Logger, fn: (db: Awaited<ReturnType<typeof createDbPool>>) => Promise<T>): Promise<T> {
  const database = await openDatabase(config, logger);
  const db = await createDbPool(database.url, { maximumPoolSize: 4, applicationName: 'settle-cli', statementTimeoutMs: config.statementTimeoutMs.command });
  try {
    return await fn(db);
  } finally {
    await db.end();
    await database.stop();
  }
}

export async function cmdMigrate(argv: string[], config: Config, logger: Logger) {
  parseCommand(argv, {}, z.object({}).strict());
  const database = await openDatabase(config, logger, { migrate: false });
  try {
    const r = await migrate(database.url, { logger });
    const done = [
      ...(r.applied.length ? [`applied ${r.applied.join(', ')}`] : []),
      ...(r.logic.length ? [`re-applied sql/logic (${r.logic.length} files)`] : []),
    ];
    console.log(done.length ? done.join('; ') : 'database is up to date');
    // The first migrate writes the shared settings from this environment.
    const db = await createDbPool(database.url, { maximumPoolSize: 1, applicationName: 'settle-cli', statementTimeoutMs: config.statementTimeoutMs.command });
    try {
      const diffs = await adoptSettings(db, config.timeZone, config.bank.perCallLimit, config.bank.maxInFlight);
      for (const d of diffs) console.log(`note: ${d.setting} is ${d.in_database} in the database, ${d.in_environment} here (settle configure changes it)`);
    } finally {
      await db.end();
    }
  } finally {
    await database.stop();
  }
}

/** `settle configure`: the settings every worker shares, from this environment, written on purpose. */
export async function cmdConfigure(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(argv, { reason: { type: 'string' }, 'reconcile-after': { type: 'string' } },
    z.object({ reason: z.string().trim().min(1).max(1000).optional(), reconcileAfter: z.string().trim().min(1, 'must not be empty').max(100).optional() }).strict());
  if (o.reconcileAfter !== undefined) {
    const after = o.reconcileAfter;
    return withDb(config, logger, async (db) => {
      // The database reads the interval (PostgreSQL's syntax: '2 hours', '90 minutes', '-1 day').
      let seconds: number;
      try {
        seconds = await db.oneFirst(sql.type(z.object({ s: z.number() }))`select extract(epoch from ${after}::interval)::float8 as s`);
      } catch {
        throw new UsageError(`--reconcile-after: "${after}" is not an interval (e.g. '2 hours', '30 minutes', '-1 day')`);
      }
      if (seconds < -86_400 || seconds > 30 * 86_400) throw new UsageError(`--reconcile-after: must be between -1 day and 30 days, not "${after}"`);
      const shown = await asOperator(db, o.reason, async (q) => {
        await configureReconcile(q, after);
        return q.oneFirst(sql.type(z.object({ a: z.string() }))`select reconcile_after::text as a from settlement.config where id`);
      });
      console.log(`configured: reconcile_after = ${shown} (a date's bank statement counts as final at its end in KST plus this)`);
    });
  }
  await withDb(config, logger, async (db) => {
    await asOperator(db, o.reason, (q) => configure(q, config.timeZone, config.bank.perCallLimit, config.bank.maxInFlight));
    console.log(`configured: SETTLEMENT_TIMEZONE=${config.timeZone} BANK_PER_CALL_LIMIT=${config.bank.perCallLimit} BANK_MAX_IN_FLIGHT=${config.bank.maxInFlight}`);
  });
}

export async function cmdSeed(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, accounts: { type: 'string' }, 'per-account': { type: 'string' }, kind: { type: 'string' }, seed: { type: 'string' } },
    z.object({
      date: dateSchema,
      accounts: intFlag(1, 10_000_000).default('100'),
      perAccount: intFlag(1, 10_000).optional(),
      kind: kindSchema.optional(),
      seed: intFlag(0, 2_000_000_000).default('1'),
    }).strict(),
  );
  await withDb(config, logger, async (db) => {
    const r = await seed(db, { date: o.date, accounts: o.accounts, ...(o.perAccount ? { perAccount: o.perAccount } : {}), ...(o.kind ? { kinds: [o.kind] } : {}), seed: o.seed });
    console.log(`seeded ${r.accounts} loan accounts and ${r.accruals} accruals (${r.amount} KRW) for ${o.date}`);
    if (config.bank.url && (await isSimulator(config.bank.url))) {
      const n = await fundSimulator(db, config.bank.url, { iscd: config.bank.iscd });
      console.log(`opened and funded ${n} accounts at the bank simulator ${config.bank.url}`);
    }
  });
}

export async function cmdRun(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, kind: { type: 'string' }, reason: { type: 'string' } },
    z.object({ stage: stageSchema, date: dateSchema.optional(), kind: kindSchema.optional(), reason: z.string().trim().min(1).max(1000).optional() }).strict(),
    ['stage'],
  );
  await withDb(config, logger, async (db) => {
    const n = await asOperator(db, o.reason, (q) => enqueueStage(q, o.stage, o.date ?? null, o.kind ?? null));
    const w = await workerStatus(db);
    const who = w.alive > 0 ? `${w.alive} live worker(s) will run them` : 'NO live worker: they wait until a `settle worker` runs';
    console.log(`enqueued ${n} ${o.stage} job(s)${n === 0 ? ' (no open day matches)' : ''}; ${who}`);
  });
}
