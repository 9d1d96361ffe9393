/** Typed calls of sql/logic/70_reconcile.sql. */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { StatementLine } from '../bank/port.js';
import { kindSchema, type Kind } from '../domain.js';
import { voidRow, wrap } from './call.js';
import { SettlementError } from './errors.js';
import { maskAccount } from '../mask.js';

const statementNeed = z.object({ bncd: z.string(), acno: z.string(), ymd: z.string(), to_ymd: z.string(), asked_at: z.string() });

export type StatementNeed = z.infer<typeof statementNeed>;

/**
 * The (account, date) statements to read now: final by the database's clock
 * and not read since the transfers they prove settled. asked_at (the
 * database's clock, before the bank is asked) is the read's time: pass the
 * need back to recordStatement unchanged.
 */
export function statementsToRead(db: CommonQueryMethods): Promise<readonly StatementNeed[]> {
  return wrap(db.any(sql.type(statementNeed)`
    select bncd, acno, ymd, to_ymd, to_char(asked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as asked_at
    from settlement.statements_to_read()`));
}

/**
 * Stores one statement read in full, as the answer to the read the database
 * asked for (`need`, from statementsToRead, unchanged); returns how many lines
 * were new. The database refuses an answer to no open request (or a second
 * one, or a late one), and one that lacks bookings the ledger knows (its lines
 * kept, not counted as proof of anything unbooked): it alerts, and this
 * throws statement_refused (ST120).
 */
export async function recordStatement(db: CommonQueryMethods, need: StatementNeed, lines: readonly StatementLine[]): Promise<number> {
  const json = JSON.stringify(lines.map((l) => ({
    trdd: l.trdd, txtm: l.txtm, mnrc_drot_dsnc: l.mnrcDrotDsnc, tram: l.tram.toString(), aftr_blnc: l.aftrBlnc.toString(),
    balance_sign: l.balanceSign, smr: l.smr, hnis_cd: l.hnisCd, hnbr_cd: l.hnbrCd, ccyn: l.ccyn, tuno: l.tuno, bnpr_cntn: l.bnprCntn,
  })));
  const n = await wrap(db.oneFirst(sql.type(z.object({ n: z.number().nullable() }))`
    select settlement.record_statement(${need.bncd}, ${need.acno}, ${need.ymd}, ${need.to_ymd}, ${json}::jsonb, ${need.asked_at}::timestamptz) as n`));
  if (n === null) {
    throw new SettlementError('statement_refused', 'ST120',
      `the statement of ${need.bncd}-${maskAccount(need.acno)} from ${need.ymd} was refused (it answers no open read request, or lacks bookings the ledger knows): alerted`);
  }
  return n;
}

/** Operator: config.statement_lag and config.statement_answer_within (null keeps one). */
export async function configureStatementChecks(db: CommonQueryMethods, lag: string | null, answerWithin: string | null): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure_statement_checks(${lag}::interval, ${answerWithin}::interval)`));
}

const decision = z.object({ transfer_id: z.bigint(), is_tuno: z.string(), decision: z.enum(['succeeded', 'not_booked']) });

/** Unresolved transfers decided by the final statement of their date. */
export function decideUnresolved(db: CommonQueryMethods): Promise<readonly z.infer<typeof decision>[]> {
  return wrap(db.any(sql.type(decision)`select transfer_id, is_tuno, decision from settlement.decide_unresolved()`));
}

/**
 * The statement watch: matches the new lines of the watched statements of
 * reconciled days (settlement.watch_scope) and opens the breaks of the days
 * they belong to. Returns how many lines it matched (0 also when another
 * reconcile holds the matcher: the next run does it).
 */
export function matchWatch(db: CommonQueryMethods): Promise<number> {
  return wrap(db.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.match_watch() as n`));
}

export async function configureStatementWatch(db: CommonQueryMethods, watch: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure_statement_watch(${watch}::interval)`));
}

const breakRow = z.object({
  id: z.bigint(), business_date: z.string(), kind: kindSchema, problem: z.enum(['missing_line', 'orphan', 'mismatch', 'cancelled']),
  transfer_id: z.bigint().nullable(), is_tuno: z.string().nullable(), account_no: z.string().nullable(), amount: z.bigint(), detail: z.string(),
});

export type BreakRow = z.infer<typeof breakRow>;

/** settlement.reconciliation_breaks: the open breaks. */
export function reconciliationBreaks(db: CommonQueryMethods, date?: string | null, kind?: Kind | null): Promise<readonly BreakRow[]> {
  return wrap(db.any(sql.type(breakRow)`
    select id, business_date::text as business_date, kind::text as kind, problem, transfer_id, is_tuno, account_no, amount, detail
    from settlement.reconciliation_breaks
    where (${date ?? null}::date is null or business_date = ${date ?? null}::date) and (${kind ?? null}::settlement.kind is null or kind = ${kind ?? null}::settlement.kind)
    order by business_date, kind, id`));
}

const reconcileRow = z.object({ business_date: z.string(), kind: kindSchema, reconcile: z.string(), detail: z.string(), matched_lines: z.bigint(), open_breaks: z.bigint(), why: z.string().nullable() });

export type ReconcileSummaryRow = z.infer<typeof reconcileRow>;

/** Per (date, kind): the reconcile stage's state and detail, lines matched to the day's transfers, open breaks. */
export function reconcileSummary(db: CommonQueryMethods, date?: string | null, kind?: Kind | null): Promise<readonly z.infer<typeof reconcileRow>[]> {
  return wrap(db.any(sql.type(reconcileRow)`
    select r.business_date::text as business_date, r.kind::text as kind, r.state::text as reconcile, r.detail,
           (select count(*) from settlement.line_matches m join settlement.transfers t on t.id = m.transfer_id and t.is_tuno = m.is_tuno
            where t.business_date = r.business_date and t.kind = r.kind and m.rule in ('reference', 'fallback')) as matched_lines,
           (select count(*) from settlement.breaks b where b.business_date = r.business_date and b.kind = r.kind and b.resolved_at is null) as open_breaks,
           -- Why a day is not reconciled yet, by the database's clock, its times in the settlement zone (KST).
           case when r.state in ('done', 'blocked') then null
                when w.state is distinct from 'done' then format('waiting for the withdrawal (withdraw is %s)', coalesce(w.state::text, 'not started'))
                when now() < f.final_by then format('waiting for the bank statement, final at %s (the date''s end + reconcile_after %s; settle configure --reconcile-after changes it)',
                                                    settlement.local_time(f.final_by), (select c.reconcile_after from settlement.config c where c.id))
                else 'the statements are final: a running worker reads and matches them (settle worker)' end as why
    from settlement.stage_runs r
    left join settlement.stage_runs w on w.business_date = r.business_date and w.kind = r.kind and w.stage = 'withdraw'
    cross join lateral (select settlement.statement_final_by(r.business_date, r.kind) as final_by) f
    where r.stage = 'reconcile' and (${date ?? null}::date is null or r.business_date = ${date ?? null}::date)
      and (${kind ?? null}::settlement.kind is null or r.kind = ${kind ?? null}::settlement.kind)
    order by 1, 2`));
}

export async function resolveBreak(db: CommonQueryMethods, id: number, note: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.resolve_break(${id}, ${note})`));
}

export async function configureReconcile(db: CommonQueryMethods, after: string): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.configure_reconcile(${after}::interval)`));
}

export async function addReconcileJob(db: CommonQueryMethods): Promise<void> {
  await wrap(db.query(sql.type(voidRow)`select settlement.add_reconcile_job()`));
}
