-- What finance and on-call look at: the day's report (settle report, the
-- console's Report tab), the journal export (settle export journal) and the
-- history of the last months (the console's History page). Read-only views
-- and functions, granted to settlement_viewer (operators inherit it) in
-- 90_grants.sql.

------------------------------------------------------------------------------
-- The day's report: one row per (business_date, kind) and a totals row per
-- business date (kind null, is_total). Every amount is integer KRW (bigint).
-- Times are timestamptz: stage times are when the stage finished (database
-- clock); payout and withdrawal times are the bank's processing times.
-- day_report_kinds is the per-kind part; day_report adds the totals row
-- (a union, so a filter on business_date reaches the days' indexes).
create or replace view settlement.day_report_kinds as
select
  d.business_date,
  d.kind,
  coalesce(a.n, 0)::bigint as accruals,
  coalesce(a.krw, 0)::bigint as accruals_krw,
  coalesce(e.n, 0)::bigint as entries,
  coalesce(e.krw, 0)::bigint as recorded_krw,
  coalesce(t.chunks, 0)::bigint as chunks,
  coalesce(t.chunks_krw, 0)::bigint as chunks_krw,
  coalesce(t.succeeded, 0)::bigint as chunks_succeeded,
  coalesce(t.succeeded_krw, 0)::bigint as paid_krw,
  coalesce(t.failed, 0)::bigint as chunks_failed,
  coalesce(t.failed_krw, 0)::bigint as failed_krw,
  coalesce(t.unresolved, 0)::bigint as chunks_unresolved,
  coalesce(t.unresolved_krw, 0)::bigint as unresolved_krw,
  coalesce(t.pending, 0)::bigint as chunks_pending,
  coalesce(t.pending_krw, 0)::bigint as pending_krw,
  coalesce(w.withdrawn_krw, 0)::bigint as withdrawn_krw,
  w.state as withdrawal_state,
  w.is_tuno as withdrawal_is_tuno,
  w.bank_tuno as withdrawal_bank_tuno,
  w.withdrawn_at,
  coalesce(b.orphans, 0)::bigint as orphans,
  coalesce(b.orphans_krw, 0)::bigint as suspense_krw,
  coalesce(b.open, 0)::bigint as breaks_open,
  coalesce(b.resolved, 0)::bigint as breaks_resolved,
  s.record_done_at,
  t.first_payout_at,
  t.last_payout_at,
  s.confirm_done_at,
  s.withdraw_done_at,
  s.reconcile_done_at
from settlement.days d
cross join lateral (
  select max(r.finished_at) filter (where r.stage = 'record' and r.state = 'done') as record_done_at,
         max(r.finished_at) filter (where r.stage = 'confirm' and r.state = 'done') as confirm_done_at,
         max(r.finished_at) filter (where r.stage = 'withdraw' and r.state = 'done') as withdraw_done_at,
         max(r.finished_at) filter (where r.stage = 'reconcile' and r.state = 'done') as reconcile_done_at
  from settlement.stage_runs r where r.business_date = d.business_date and r.kind = d.kind) s
cross join lateral (
  select count(*) as n, sum(x.amount) as krw from settlement.accruals x where x.settle_date = d.business_date and x.kind = d.kind) a
cross join lateral (
  select count(*) as n, sum(x.amount) as krw from settlement.entries x where x.business_date = d.business_date and x.kind = d.kind) e
cross join lateral (
  select count(*) as chunks, sum(x.amount) as chunks_krw,
         count(*) filter (where x.state = 'succeeded') as succeeded, sum(x.amount) filter (where x.state = 'succeeded') as succeeded_krw,
         count(*) filter (where x.state = 'failed') as failed, sum(x.amount) filter (where x.state = 'failed') as failed_krw,
         count(*) filter (where x.unresolved_since is not null) as unresolved, sum(x.amount) filter (where x.unresolved_since is not null) as unresolved_krw,
         count(*) filter (where x.state in ('pending', 'sending') and x.unresolved_since is null) as pending,
         sum(x.amount) filter (where x.state in ('pending', 'sending') and x.unresolved_since is null) as pending_krw,
         min(settlement.bank_time(x.processed_at)) as first_payout_at,
         max(settlement.bank_time(x.processed_at)) as last_payout_at
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind and x.purpose = 'payout') t
left join lateral (
  -- one withdrawal per (business_date, kind) (transfers_one_withdrawal)
  select case when x.state = 'succeeded' then x.amount end as withdrawn_krw,
         x.state::text as state,
         x.is_tuno,
         settlement.bank_time(x.processed_at) as withdrawn_at,
         (select min(l.tuno) from settlement.line_matches m join settlement.statement_lines l on l.id = m.line_id
          where m.transfer_id = x.id and m.is_tuno = x.is_tuno and m.rule in ('reference', 'fallback')) as bank_tuno
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind and x.purpose = 'withdrawal') w on true
cross join lateral (
  select count(*) filter (where x.problem = 'orphan') as orphans,
         sum(x.amount) filter (where x.problem = 'orphan') as orphans_krw,
         count(*) filter (where x.resolved_at is null) as open,
         count(*) filter (where x.resolved_at is not null) as resolved
  from settlement.breaks x where x.business_date = d.business_date and x.kind = d.kind) b;
comment on view settlement.day_report_kinds is 'The per-kind rows of settlement.day_report.';

create or replace view settlement.day_report as
select k.business_date, k.kind, false as is_total,
       k.accruals, k.accruals_krw, k.entries, k.recorded_krw, k.chunks, k.chunks_krw, k.chunks_succeeded, k.paid_krw,
       k.chunks_failed, k.failed_krw, k.chunks_unresolved, k.unresolved_krw, k.chunks_pending, k.pending_krw,
       k.withdrawn_krw, k.withdrawal_state, k.withdrawal_is_tuno, k.withdrawal_bank_tuno, k.withdrawn_at,
       k.orphans, k.suspense_krw, k.breaks_open, k.breaks_resolved,
       k.record_done_at, k.first_payout_at, k.last_payout_at, k.confirm_done_at, k.withdraw_done_at, k.reconcile_done_at
from settlement.day_report_kinds k
union all
select k.business_date, null, true,
       sum(k.accruals)::bigint, sum(k.accruals_krw)::bigint, sum(k.entries)::bigint, sum(k.recorded_krw)::bigint,
       sum(k.chunks)::bigint, sum(k.chunks_krw)::bigint, sum(k.chunks_succeeded)::bigint, sum(k.paid_krw)::bigint,
       sum(k.chunks_failed)::bigint, sum(k.failed_krw)::bigint, sum(k.chunks_unresolved)::bigint, sum(k.unresolved_krw)::bigint,
       sum(k.chunks_pending)::bigint, sum(k.pending_krw)::bigint,
       sum(k.withdrawn_krw)::bigint, null, null, null, max(k.withdrawn_at),
       sum(k.orphans)::bigint, sum(k.suspense_krw)::bigint, sum(k.breaks_open)::bigint, sum(k.breaks_resolved)::bigint,
       -- a stage of the day is done when it is done for every kind
       case when bool_and(k.record_done_at is not null) then max(k.record_done_at) end,
       min(k.first_payout_at), max(k.last_payout_at),
       case when bool_and(k.confirm_done_at is not null) then max(k.confirm_done_at) end,
       case when bool_and(k.withdraw_done_at is not null) then max(k.withdraw_done_at) end,
       case when bool_and(k.reconcile_done_at is not null) then max(k.reconcile_done_at) end
from settlement.day_report_kinds k
group by k.business_date;
comment on view settlement.day_report is
  'The day''s report (settle report, the console''s Report tab): per (business_date, kind), then a totals row (kind null, is_total): accruals, recorded, payout chunks succeeded / failed / unresolved / pending (count and KRW), withdrawn (KRW, our IsTuno, the bank''s Tuno from the statement, when), suspense (orphans), open and resolved breaks, and when record, the first and last payout (bank time), confirm, withdraw and reconcile finished. Integer KRW.';

------------------------------------------------------------------------------
-- The journal export: every line of every entry, with what it refers to.
-- debit_krw / credit_krw are integers (one of them zero). reference_type:
--   accruals        record: the day's accruals of the kind (ref record:D:K)
--   transfer        payout / withdrawal: transfer_id and its IsTuno
--   statement_line  orphan: the break and the bank's statement line
--   correction      an operator's correction (post_journal): its ref as given
-- Read in (entry_id, line_no) order, by keyset (settle export journal).
create or replace view settlement.journal_export as
select
  -- the lines' own key, so a keyset on (entry_id, line_no) is a range of journal_lines_pkey
  l.journal_id as entry_id,
  l.line_no,
  e.posted_at,
  e.business_date,
  e.kind,
  e.event,
  l.ledger_account as account,
  greatest(l.amount, 0)::bigint as debit_krw,
  greatest(-l.amount, 0)::bigint as credit_krw,
  case e.event when 'record' then 'accruals' when 'payout' then 'transfer' when 'withdrawal' then 'transfer'
               when 'orphan' then 'statement_line' else 'correction' end as reference_type,
  e.ref as reference,
  r.transfer_id,
  case when e.event in ('payout', 'withdrawal') then e.ref else br.is_tuno end as is_tuno,
  sl.bncd || ':' || sl.acno || ':' || sl.trdd || ':' || sl.tuno as statement_line,
  e.memo
from settlement.journal_entries e
join settlement.journal_lines l on l.journal_id = e.id
left join settlement.breaks br on e.event = 'orphan' and br.journal_id = e.id
left join settlement.statement_lines sl on sl.id = br.line_id
left join lateral (
  select coalesce((select t.id from settlement.transfers t where t.is_tuno = e.ref),
                  (select a.transfer_id from settlement.transfer_attempts a where a.is_tuno = e.ref),
                  br.transfer_id) as transfer_id
  where e.event in ('payout', 'withdrawal', 'orphan')) r on true;
comment on view settlement.journal_export is
  'Every journal line with its entry (id, posted_at, business_date, kind, event), account, debit_krw / credit_krw (integers), and what it refers to (accruals, transfer + IsTuno, statement line, correction). settle export journal reads it by (entry_id, line_no).';

-- One page of the export of business dates p_from..p_to, after (entry, line).
-- Bad input is refused by name: no range (ST001), p_from after p_to (ST050).
create or replace function settlement.journal_export_page(p_from date, p_to date, p_after_entry bigint, p_after_line integer, p_limit integer)
returns setof settlement.journal_export
language plpgsql stable as $$
begin
  if p_from is null or p_to is null then
    perform settlement.raise_error('ST001', 'journal_export_page: p_from and p_to (business dates) are required');
  end if;
  if p_from > p_to then
    perform settlement.raise_error('ST050', format('journal_export_page: %s is after %s', p_from, p_to));
  end if;
  return query
    select x.* from settlement.journal_export x
    where x.business_date between p_from and p_to
      and (x.entry_id, x.line_no) > (coalesce(p_after_entry, 0), coalesce(p_after_line, 0))
      and x.entry_id >= (select min(e.id) from settlement.journal_entries e where e.business_date between p_from and p_to)
    order by x.entry_id, x.line_no
    limit least(greatest(coalesce(p_limit, 1000), 1), 10000);
end $$;
comment on function settlement.journal_export_page is
  'settle export journal: the next page (at most 10,000 lines) of journal_export for business dates p_from..p_to after (p_after_entry, p_after_line), in (entry_id, line_no) order.';

------------------------------------------------------------------------------
-- History of the last p_days business dates (today - p_days .. today, in the
-- settlement time zone): per date and
-- kind, KRW paid, chunks failed, breaks, and the hours from the day's start
-- (the end of the business date in the settlement time zone, when it can be
-- settled) to the finish of its last stage, once every stage is done.
create or replace function settlement.history(p_days integer default 30)
returns table (business_date date, kind settlement.kind, paid_krw bigint, chunks bigint, chunks_failed bigint, breaks bigint,
               verdict text, done_hours double precision)
language sql stable as $$
  with dates as (
    select distinct d.business_date from settlement.days d
    where d.business_date >= (settlement_meta.now() at time zone (select c.time_zone from settlement.config c where c.id))::date - least(greatest(coalesce(p_days, 30), 1), 366))
  select d.business_date, d.kind,
         coalesce((select sum(t.amount) from settlement.transfers t
                   where t.business_date = d.business_date and t.kind = d.kind and t.purpose = 'payout' and t.state = 'succeeded'), 0)::bigint,
         (select count(*) from settlement.transfers t where t.business_date = d.business_date and t.kind = d.kind and t.purpose = 'payout'),
         -- every settled attempt is kept (finish_transfer): a chunk failed now is one of them
         (select count(*) from settlement.transfer_attempts a join settlement.transfers t on t.id = a.transfer_id
          where t.business_date = d.business_date and t.kind = d.kind and a.outcome = 'failed'),
         (select count(*) from settlement.breaks b where b.business_date = d.business_date and b.kind = d.kind),
         v.verdict,
         case when v.verdict = 'DONE' then
           extract(epoch from (select max(r.finished_at) from settlement.stage_runs r where r.business_date = d.business_date and r.kind = d.kind)
                              - ((d.business_date + 1)::timestamp at time zone c.time_zone))::float8 / 3600 end
  from settlement.days d
  join dates using (business_date)
  cross join settlement.config c
  join settlement.day_verdicts v on v.business_date = d.business_date and v.kind = d.kind
  where c.id
  order by d.business_date, d.kind
$$;
comment on function settlement.history is
  'Console history: per business date of the last p_days (1..366) and kind: KRW paid, chunks, failures (attempts the bank failed, retried or not), breaks (open or resolved), verdict, and hours from the end of the business date to its last stage done.';
