import { sql } from 'slonik';
import { z } from 'zod';
import type { DatabasePool } from './db/pool.js';
import { simAdminClient } from './bank-sim/sim-admin-client.js';
import { sqlstateOf } from './db/errors.js';
import { FIN_ACCOUNT_LOCK_TIMEOUT_MS } from './db/registration.js';
import { type Kind, KINDS } from './domain.js';
import { maskAccount } from './mask.js';

export interface SeedOptions {
  date: string;
  accounts: number;
  /** Accruals per (loan account, kind); default: 1-3, varying by account. */
  perAccount?: number;
  kinds?: readonly Kind[];
  seed?: number;
}

export const loanAccountNo = (i: number) => `1${String(i).padStart(9, '0')}`;
export const settlementAccountNo = (k: Kind) => `2${String(KINDS.indexOf(k) + 1).padStart(9, '0')}`;
export const corporateAccountNo = (k: Kind) => `3${String(KINDS.indexOf(k) + 1).padStart(9, '0')}`;
/** One NH app (and so one contracted settlement account) per kind. */
export const fintechApsnoOf = (k: Kind) => String(KINDS.indexOf(k) + 1).padStart(3, '0');
/** The corporate accounts are at NH (011), except one at another bank (004), so both withdrawal APIs are used. */
export const corporateBankOf = (k: Kind) => (k === 'withdrawal_fee' ? '004' : '011');

export class SeedError extends Error {
  override name = 'SeedError';
  readonly code = 'seed_refused';
}

/**
 * Creates the accounts (N loan accounts, one settlement and one corporate
 * account per kind) and a day of accruals across the kinds. Amounts are
 * 1,000-90,000 KRW per accrual and 1-3 accruals per (account, kind), so some
 * entries need several 100,000-KRW chunks. Deterministic for a seed and
 * idempotent: source_refs are derived from (date, account, kind, n).
 *
 * Accruals are inserted set-based (a million in seconds) under the same rule
 * as settlement.accrue: the day's record-stage row is locked FOR SHARE, and a
 * day that is already recorded is refused.
 */
export async function seed(db: DatabasePool, o: SeedOptions): Promise<{ accounts: number; accruals: number; amount: bigint }> {
  const kinds = o.kinds ?? KINDS;
  const s = o.seed ?? 1;
  return db.transaction(async (tx) => {
    await tx.query(sql.unsafe`
      insert into settlement.accounts (account_no, role, holder)
      select '1' || lpad(i::text, 9, '0'), 'loan', 'loan ' || i from generate_series(1, ${o.accounts}::int) i
      on conflict do nothing`);
    for (const k of KINDS) {
      await tx.query(sql.unsafe`
        insert into settlement.accounts (account_no, role, holder, bank_code) values
          (${settlementAccountNo(k)}, 'settlement', ${'settlement ' + k}, '011'),
          (${corporateAccountNo(k)}, 'corporate', ${'corporate ' + k}, ${corporateBankOf(k)})
        on conflict do nothing`);
      await tx.query(sql.unsafe`
        insert into settlement.contracts (fintech_apsno, settlement_account)
        values (${fintechApsnoOf(k)}, ${settlementAccountNo(k)})
        on conflict do nothing`);
      await tx.query(sql.unsafe`
        insert into settlement.kind_accounts (kind, settlement_account, corporate_account, fintech_apsno)
        values (${k}::settlement.kind, ${settlementAccountNo(k)}, ${corporateAccountNo(k)}, ${fintechApsnoOf(k)})
        on conflict do nothing`);
    }
    let accruals = 0;
    let amount = 0n;
    for (const k of kinds) {
      await tx.query(sql.unsafe`select settlement.ensure_day(${o.date}::date, ${k}::settlement.kind)`);
      const state = await tx.oneFirst(sql.type(z.object({ state: z.string() }))`
        select state::text as state from settlement.stage_runs
        where business_date = ${o.date}::date and kind = ${k}::settlement.kind and stage = 'record' for share`);
      if (state === 'done') throw new SeedError(`${o.date} ${k} is already recorded; seed another date`);
      const perAccount = o.perAccount ? sql.fragment`${o.perAccount}::int` : sql.fragment`1 + (h.a % 3)`;
      const r = await tx.one(sql.type(z.object({ n: z.bigint(), total: z.bigint() }))`
        with ins as (
          insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
          select format('seed:%s:%s:%s:%s', ${o.date}::date, acct.i, ${k}::text, n),
                 '1' || lpad(acct.i::text, 9, '0'),
                 ${k}::settlement.kind,
                 1000 * (1 + (h2.b % 90)),
                 (${o.date}::date + make_interval(secs => h2.b % 86400)) at time zone settlement.time_zone(),
                 ${o.date}::date, ${o.date}::date
          from generate_series(1, ${o.accounts}::int) acct(i)
          cross join lateral (select abs(('x' || substr(md5(${s} || ':' || acct.i || ':' || ${k}::text), 1, 8))::bit(32)::int) as a) h
          cross join lateral generate_series(1, ${perAccount}) n
          cross join lateral (select abs(('x' || substr(md5(${s} || ':' || acct.i || ':' || ${k}::text || ':' || n), 1, 8))::bit(32)::int) as b) h2
          on conflict (source_ref) do nothing
          returning amount)
        select count(*)::bigint as n, coalesce(sum(amount), 0)::bigint as total from ins`);
      accruals += Number(r.n);
      amount += r.total;
    }
    return { accounts: o.accounts, accruals, amount };
  });
}

const balanceRow = z.object({ account_no: z.string(), bank_code: z.string(), balance: z.bigint() });

/**
 * The balance each account should have at the bank, from our own books: a loan
 * account holds what was accrued on it and not yet paid out; settlement and
 * corporate accounts hold what the journal says moved into them.
 */
export function expectedBankBalances(db: DatabasePool) {
  // Aggregates joined once (not a subquery per account): fast for 10^5 accounts.
  return db.any(sql.type(balanceRow)`
    with accrued as (
      select account_no, sum(amount) as s from settlement.accruals group by account_no
    ), moved as (
      select substr(ledger_account, 6) as account_no, sum(amount) as s
      from settlement.journal_lines where ledger_account like 'bank:%' group by ledger_account
    )
    select a.account_no, a.bank_code, (coalesce(accrued.s, 0) + coalesce(moved.s, 0))::bigint as balance
    from settlement.accounts a
    left join accrued using (account_no)
    left join moved using (account_no)
    order by a.account_no`);
}

/** True when `bankUrl` is a daily-settlement bank simulator (it answers /_sim/stats). */
export async function isSimulator(bankUrl: string): Promise<boolean> {
  try {
    const r = await fetch(`${bankUrl}/_sim/stats`, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  } catch {
    return false;
  }
}

export interface SimulatorSetup {
  /** The institution code the workers use (BANK_ISCD): the simulator's contracts are per (Iscd, FintechApsno). */
  iscd: string;
  /** Also fill settlement.bank_codes with the simulator's own codes (default true). */
  codes?: boolean;
}

/**
 * Makes a bank simulator hold what a real institution has at NH: every known
 * account open with the balance our books imply, and one contract per NH app
 * (FintechApsno -> its settlement account). With `codes`, settlement.bank_codes
 * gets the simulator's own response codes and their classes — the simulator's
 * "contract documents" (a real NH contract's codes are filled in by an operator).
 */
export async function fundSimulator(db: DatabasePool, bankUrl: string, setup: SimulatorSetup): Promise<number> {
  const admin = simAdminClient(bankUrl);
  const rows = await expectedBankBalances(db);
  for (let i = 0; i < rows.length; i += 5000) {
    await admin.openAccounts(rows.slice(i, i + 5000).map((r) => ({ bncd: r.bank_code, acno: r.account_no, balance: r.balance })));
  }
  const contracts = await db.any(sql.type(z.object({ fintech_apsno: z.string(), account_no: z.string(), bank_code: z.string() }))`
    select c.fintech_apsno, a.account_no, a.bank_code from settlement.contracts c join settlement.accounts a on a.account_no = c.settlement_account`);
  await admin.registerContracts(contracts.map((c) => ({ iscd: setup.iscd, fintechApsno: c.fintech_apsno, bncd: c.bank_code, acno: c.account_no })));
  if (setup.codes ?? true) {
    const codes = await admin.codes();
    const codeRows = codes.filter((c) => c.class !== null).flatMap((c) => (c.apis.length ? c.apis : ['*']).map((api) => ({ ...c, api })));
    for (const c of codeRows) {
      await db.query(sql.unsafe`
        insert into settlement.bank_codes (rpcd, api, class, note) values (${c.rpcd}, ${c.api}, ${c.class}, ${'bank simulator: ' + c.meaning})
        on conflict (rpcd, api) do update set class = excluded.class, note = excluded.note, updated_at = now()`);
    }
  }
  return rows.length;
}

/**
 * Registers every loan account without a fin-account through the simulator's
 * admin shortcut (benchmarks: thousands of accounts in one call). The product
 * registers through NH's APIs (the register task).
 */
export async function registerAtSimulator(db: DatabasePool, bankUrl: string): Promise<number> {
  const admin = simAdminClient(bankUrl);
  const loans = await db.any(sql.type(z.object({ account_no: z.string(), bank_code: z.string() }))`
    select account_no, bank_code from settlement.accounts where role = 'loan' and fin_acno is null order by account_no`);
  for (let i = 0; i < loans.length; i += 5000) {
    const got = await admin.registerFinAccounts(loans.slice(i, i + 5000).map((l) => ({ bncd: l.bank_code, acno: l.account_no })));
    const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    // The simulator's shortcut is no registration of ours (no Rgno): as the
    // owner, the FinAcno is stored directly (in production a FinAcno set by
    // hand needs two people: settle change propose --target fin_acno).
    for (const g of got) {
      const stored = await db.transaction(async (tx) => {
        await tx.query(sql.unsafe`select set_config('lock_timeout', ${String(FIN_ACCOUNT_LOCK_TIMEOUT_MS)}, true)`);
        const n = (await tx.query(sql.unsafe`update settlement.accounts set fin_acno = ${g.finAcno}, fin_registered_on = ${today}
          where account_no = ${g.acno} and role = 'loan' and fin_acno is null`)).rowCount;
        await tx.query(sql.unsafe`
          select settlement.add_stage_job('pay', x.business_date, x.kind) from (
            select distinct e.business_date, e.kind from settlement.entries e
            join settlement.stage_runs s on s.business_date = e.business_date and s.kind = e.kind and s.stage = 'pay' and s.state <> 'done'
            where e.account_no = ${g.acno}) x`);
        return n;
      }).then(() => true, (e: unknown) => {
        if (sqlstateOf(e) === '55P03') return false;
        throw e;
      });
      if (!stored) throw new SeedError(`loan account ${maskAccount(g.acno)} is held by another session (an open transaction): its FinAcno was not stored`);
    }
  }
  return loans.length;
}
