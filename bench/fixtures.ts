import type pg from 'pg';
import { simAdminClient } from '../src/bank-sim/sim-admin-client.js';
import type { BankSimulator } from '../src/bank-sim/simulator.js';
import { corporateAccountNo, fintechApsnoOf, loanAccountNo, settlementAccountNo } from '../src/seed.js';

/**
 * Test data with exact sizes, inserted set-based (seeding is never timed).
 * Everything is one kind, `tax`; every figure gets a day of its own.
 */
export const KIND = 'tax';
export const SETTLEMENT_ACCOUNT = settlementAccountNo(KIND);
/** 50,000 KRW: under the 100,000 per-call limit, so one accrual = one entry = one chunk. */
export const CHUNK_KRW = 50_000;

/** Hands out distinct business dates that are over in Asia/Seoul (newest first, from 3 days ago). */
export function dateSource(): () => string {
  let back = 3;
  return () => {
    const d = new Date(Date.now() + 9 * 3600_000);
    d.setUTCDate(d.getUTCDate() - back++);
    return d.toISOString().slice(0, 10);
  };
}

/** Loan accounts 1..n, the kind's settlement and corporate accounts, and its kind_accounts row. */
export async function makeBooks(c: pg.ClientBase, loans: number): Promise<void> {
  await c.query(
    // With a (placeholder) fin-account, so no registration job is enqueued:
    // fundSimulator writes the simulator's real FinAcno over it.
    `insert into settlement.accounts (account_no, role, fin_acno)
     select '1' || lpad(i::text, 9, '0'), 'loan', '8' || lpad(i::text, 9, '0') from generate_series(1, $1::int) i on conflict do nothing`,
    [loans],
  );
  await c.query(`insert into settlement.accounts (account_no, role) values ($1, 'settlement'), ($2, 'corporate') on conflict do nothing`, [
    SETTLEMENT_ACCOUNT,
    corporateAccountNo(KIND),
  ]);
  await c.query(`insert into settlement.contracts (fintech_apsno, settlement_account) values ($1, $2) on conflict do nothing`, [fintechApsnoOf(KIND), SETTLEMENT_ACCOUNT]);
  await c.query(
    `insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno) values ($1, $2, $3, $4) on conflict do nothing`,
    [KIND, SETTLEMENT_ACCOUNT, corporateAccountNo(KIND), fintechApsnoOf(KIND)],
  );
}

/**
 * Opens the same accounts at the simulator with far more money than any run
 * moves, registers the kind's contract and issues the loan accounts'
 * fin-accounts, then writes the simulator's FinAcnos into the books.
 */
export async function fundSimulator(c: pg.ClientBase, sim: BankSimulator, loans: number): Promise<void> {
  const admin = simAdminClient(sim.url);
  const accounts = Array.from({ length: loans }, (_, i) => ({ bncd: '011', acno: loanAccountNo(i + 1), balance: 10n ** 12n }));
  for (let i = 0; i < accounts.length; i += 5000) await admin.openAccounts(accounts.slice(i, i + 5000));
  await admin.openAccounts([{ bncd: '011', acno: SETTLEMENT_ACCOUNT, balance: 0n }, { bncd: '011', acno: corporateAccountNo(KIND), balance: 0n }]);
  await admin.registerContracts([{ iscd: '000001', fintechApsno: fintechApsnoOf(KIND), bncd: '011', acno: SETTLEMENT_ACCOUNT }]);
  for (let i = 0; i < accounts.length; i += 5000) {
    const got = await admin.registerFinAccounts(accounts.slice(i, i + 5000).map((a) => ({ bncd: a.bncd, acno: a.acno })));
    await c.query(
      `update settlement.accounts a set fin_acno = g.fin from unnest($1::text[], $2::text[]) g(acno, fin) where a.account_no = g.acno`,
      [got.map((g) => g.acno), got.map((g) => g.finAcno)],
    );
  }
}

/** A day with exactly `n` chunks: one 50,000-KRW accrual on each of loan accounts 1..n. */
export async function seedChunkDay(c: pg.ClientBase, date: string, n: number): Promise<void> {
  await c.query(`select settlement.ensure_day($1::date, $2::settlement.kind)`, [date, KIND]);
  await c.query(
    `insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
     select format('bench:%s:%s', $1::date, i), '1' || lpad(i::text, 9, '0'), $2::settlement.kind, $3::bigint,
            ($1::date + time '12:00') at time zone settlement.time_zone(), $1::date, $1::date
     from generate_series(1, $4::int) i`,
    [date, KIND, CHUNK_KRW, n],
  );
}

/**
 * `n` accruals over n/10 loan accounts (10 per account, 1,000-90,000 KRW),
 * so the record stage writes n/10 entries and journal lines. Returns seconds.
 */
export async function seedAccrualDay(c: pg.ClientBase, date: string, n: number): Promise<number> {
  const t0 = performance.now();
  const accounts = Math.max(1, Math.ceil(n / 10));
  await makeBooks(c, accounts);
  await c.query(`select settlement.ensure_day($1::date, $2::settlement.kind)`, [date, KIND]);
  await c.query('set synchronous_commit = off'); // seeding is not measured
  await c.query(
    `insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
     select 'p4:' || $1::text || ':' || i, '1' || lpad((1 + (i - 1) % $4::int)::text, 9, '0'), $2::settlement.kind,
            1000 * (1 + (i::bigint * 7919) % 90), ($1::date + make_interval(secs => i % 86400)) at time zone settlement.time_zone(),
            $1::date, $1::date
     from generate_series(1, $3::int) i`,
    [date, KIND, n, accounts],
  );
  await c.query('reset synchronous_commit');
  return (performance.now() - t0) / 1000;
}
