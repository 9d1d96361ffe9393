import { sql } from 'slonik';
import { z } from 'zod';
import { startBankSimulator, type BankSimulator } from '../../src/bank-sim/simulator.js';
import type { DatabasePool } from '../../src/db/pool.js';
import { dailyStatus, type StatusRow } from '../../src/db/operations.js';
import { ledgerTransfers, reconcile, simulatorTransfers } from './bank-record.js';
import { fundSimulator } from '../../src/seed.js';
import { waitFor } from './procs.js';
import { asLogin, TEST_WORKER_LOGIN } from './roles.js';

type T = { teardown(fn: () => unknown): void };
export const TOKEN = 'test-token';

export async function startSim(t: T, opts: Parameters<typeof startBankSimulator>[0] = {}): Promise<BankSimulator> {
  const sim = await startBankSimulator({ accessToken: TOKEN, latencyMs: 5, jitterMs: 3, ...opts });
  t.teardown(() => sim.close());
  return sim;
}

/**
 * Makes the simulator hold what the database's accounts imply (balances, one
 * contract per NH app) and, unless `codes: false`, fills settlement.bank_codes
 * with the simulator's codes (with an empty table every non-00000 answer is
 * resolved by result check, and a request the bank never got stays unresolved).
 */
export async function prepareSim(db: DatabasePool, sim: { url: string }, opts: { codes?: boolean } = {}): Promise<void> {
  await fundSimulator(db, sim.url, { iscd: '000001', codes: opts.codes ?? true });
}

/** The environment a worker process needs for this database and simulator. */
export const workerEnv = (dbUrl: string, bankUrl: string, extra: Record<string, string> = {}) => ({
  // Least privilege: the worker logs in with settlement_worker only.
  DATABASE_URL: asLogin(dbUrl, TEST_WORKER_LOGIN),
  BANK_URL: bankUrl,
  BANK_ACCESS_TOKEN: TOKEN,
  BANK_TIMEOUT_MS: '2000',
  WORKER_CONCURRENCY: '4',
  BANK_MAX_IN_FLIGHT: '8',
  ...extra,
});

export async function waitAllWithdrawn(db: DatabasePool, dates: string[], kinds: number, timeoutMs = 150_000): Promise<readonly StatusRow[]> {
  try {
    return await waitFor(`withdraw done for ${dates.join(', ')}`, async () => {
      const rows = (await dailyStatus(db)).filter((r) => dates.includes(r.business_date));
      return rows.length === dates.length * kinds && rows.every((r) => r.withdraw === 'done') ? rows : undefined;
    }, timeoutMs, 250);
  } catch (e) {
    // Say where it stands, so a timeout is diagnosable from the test output.
    const rows = await dailyStatus(db);
    const jobs = await db.any(sql.type(z.object({ task_identifier: z.string(), key: z.string().nullable(), attempts: z.number(), locked_by: z.string().nullable(), last_error: z.string().nullable() }))`
      select task_identifier, key, attempts, locked_by, left(last_error, 200) as last_error from graphile_worker.jobs order by id limit 20`);
    const chunks = await db.any(sql.type(z.object({ purpose: z.string(), state: z.string(), n: z.bigint(), claimed: z.bigint(), unresolved: z.bigint() }))`
      select purpose::text as purpose, state::text as state, count(*) as n, count(claimed_until) as claimed, count(unresolved_since) as unresolved
      from settlement.transfers group by 1, 2`);
    const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
    throw new Error(`${(e as Error).message}\nstatus: ${show(rows)}\nchunks: ${show(chunks)}\njobs: ${show(jobs)}`);
  }
}

/** Everything the guarantees say, checked against the simulator's own record. */
export async function checkInvariants(t: { equal: Function; ok: Function; same: Function }, db: DatabasePool, simUrl: string) {
  const bank = await simulatorTransfers(simUrl);
  const ledger = await ledgerTransfers(db);
  const rec = reconcile(bank, ledger);
  t.ok(rec.ok, `G6: ledger matches the bank to the won (${rec.bankCount} bank / ${rec.ledgerCount} ledger, ${rec.missingInLedger.length}/${rec.missingAtBank.length}/${rec.mismatched.length} differences)`);
  t.equal(new Set(bank.map((b) => b.isTuno)).size, bank.length, 'G3: no IsTuno booked twice at the bank');
  const c = await db.one(sql.type(z.object({ chunks: z.bigint(), succeeded: z.bigint(), withdrawals: z.bigint(), bad_entries: z.bigint(), bad_chunks: z.bigint(), unbalanced: z.bigint(), bad_withdrawals: z.bigint() }))`
    select (select count(*) from settlement.transfers where purpose = 'payout') as chunks,
           (select count(*) from settlement.transfers where purpose = 'payout' and state = 'succeeded') as succeeded,
           (select count(*) from settlement.transfers where purpose = 'withdrawal' and state = 'succeeded') as withdrawals,
           (select count(*) from settlement.entries e where e.amount <> (select sum(amount) from settlement.accruals a where a.settle_date = e.business_date and a.kind = e.kind and a.account_no = e.account_no)) as bad_entries,
           (select count(*) from settlement.entries e where e.amount <> (select coalesce(sum(amount), 0) from settlement.transfers c where c.entry_id = e.id)
               or exists (select 1 from settlement.transfers c where c.entry_id = e.id and (c.amount <= 0 or c.amount > (select per_call_limit from settlement.config)))) as bad_chunks,
           (select count(*) from (select journal_id from settlement.journal_lines group by journal_id having sum(amount) <> 0) x) as unbalanced,
           (select count(*) from settlement.transfers w where w.purpose = 'withdrawal' and w.amount <> (select sum(amount) from settlement.transfers c where c.business_date = w.business_date and c.kind = w.kind and c.purpose = 'payout' and c.state = 'succeeded')) as bad_withdrawals`);
  t.equal(c.bad_entries, 0n, 'G1: every entry is the sum of its accruals');
  t.equal(c.bad_chunks, 0n, 'G2: chunks sum to their entry, each > 0 and <= the limit');
  t.equal(c.unbalanced, 0n, 'G6: every journal entry balances');
  t.equal(c.bad_withdrawals, 0n, 'G4: each withdrawal is exactly the sum of its day\'s chunks');
  t.equal(BigInt(bank.length), c.succeeded + c.withdrawals, 'one booked transfer per succeeded chunk and withdrawal');
  return { bank, ledger, counts: c };
}
