-- Operator views.

create view settlement.daily_status as
select
  d.business_date,
  d.kind,
  max(r.state::text) filter (where r.stage = 'record') as record,
  max(r.state::text) filter (where r.stage = 'pay') as pay,
  max(r.state::text) filter (where r.stage = 'confirm') as confirm,
  max(r.state::text) filter (where r.stage = 'withdraw') as withdraw,
  coalesce(e.entries, 0) as entries,
  coalesce(e.amount, 0)::bigint as amount_recorded,
  coalesce(c.total, 0) as chunks_total,
  coalesce(c.succeeded, 0) as chunks_succeeded,
  coalesce(c.failed, 0) as chunks_failed,
  coalesce(c.in_flight, 0) as chunks_in_flight,
  coalesce(c.paid, 0)::bigint as amount_paid,
  coalesce((select w.amount from settlement.withdrawals w
            where w.business_date = d.business_date and w.kind = d.kind and w.state = 'succeeded'), 0)::bigint as amount_withdrawn,
  coalesce(a.pending_accruals, 0) as accruals_unrecorded,
  max(r.detail) filter (where r.state <> 'done' and r.state <> 'pending') as attention
from settlement.days d
join settlement.stage_runs r on r.business_date = d.business_date and r.kind = d.kind
left join lateral (
  select count(*) as entries, sum(amount) as amount from settlement.entries x
  where x.business_date = d.business_date and x.kind = d.kind) e on true
left join lateral (
  select count(*) as total,
         count(*) filter (where state = 'succeeded') as succeeded,
         count(*) filter (where state = 'failed') as failed,
         count(*) filter (where state in ('pending', 'sending')) as in_flight,
         sum(amount) filter (where state = 'succeeded') as paid
  from settlement.chunks x where x.business_date = d.business_date and x.kind = d.kind) c on true
left join lateral (
  select count(*) as pending_accruals from settlement.accruals x
  where x.settle_date = d.business_date and x.kind = d.kind
    and not exists (select 1 from settlement.stage_runs s where s.business_date = d.business_date and s.kind = d.kind and s.stage = 'record' and s.state = 'done')) a on true
group by d.business_date, d.kind, e.entries, e.amount, c.total, c.succeeded, c.failed, c.in_flight, c.paid, a.pending_accruals;
comment on view settlement.daily_status is 'One row per (business_date, kind): each stage''s state and the day''s counts and amounts (KRW).';

create view settlement.payout_failures as
select 'chunk'::text as what, c.business_date, c.kind, c.id as chunk_id, c.entry_id, c.seq, c.from_account, c.to_account,
       c.amount, c.is_tuno, c.tsymd, c.attempt, c.fail_code as bank_code, c.fail_message as bank_message, c.settled_at as failed_at
from settlement.chunks c where c.state = 'failed'
union all
select 'withdrawal', w.business_date, w.kind, null, null, null, w.from_account, w.to_account,
       w.amount, w.is_tuno, w.tsymd, w.attempt, w.fail_code, w.fail_message, w.settled_at
from settlement.withdrawals w where w.state = 'failed';
comment on view settlement.payout_failures is 'Chunks (and withdrawals) that failed for good, with the bank''s code and message. Fix the cause, then settlement.retry_failed(date, kind).';
