-- On-call tools: an audit trail of operator actions, pause/resume of bank
-- calls, one verdict per day, the conditions that need a person, and alerts
-- sent through an outbox job.
--
-- This migration sorts after 0020_roles.sql, so it grants its own API with
-- the same pattern (security definer, fixed search_path).
--
-- Operator functions of earlier migrations get their audit record by a thin
-- wrapper with the original name and signature that records the action and
-- calls the original, renamed <name>_unaudited or moved here as <name>_core
-- (callable by the owner only).

------------------------------------------------------------------------------
-- Audit: who did what, when and why. Append-only.
create table settlement.operator_actions (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  db_user text not null default session_user,
  application_name text not null default coalesce(current_setting('application_name', true), ''),
  client_addr inet default inet_client_addr(),
  action text not null check (action ~ '^[a-z_]{1,60}$'),
  args jsonb not null default '{}',
  reason text check (length(reason) <= 1000),
  result jsonb
);
create index operator_actions_at_idx on settlement.operator_actions (at);
comment on table settlement.operator_actions is
  'Every operator action (enqueue_stage, retry_failed, retry_day, pause, resume, configure, post_journal, ...): who (session_user, application_name), when, what, why. Append-only.';
create trigger operator_actions_append_only before update or delete on settlement.operator_actions
  for each row execute function settlement.journal_append_only();
create trigger operator_actions_no_truncate before truncate on settlement.operator_actions
  for each statement execute function settlement.journal_append_only();

-- The reason of an action: the argument, else the session setting
-- settlement.reason (`set settlement.reason = '...'` in psql; `settle ... --reason`).
create function settlement.action_reason(p_reason text default null) returns text
language sql stable as $$
  select left(coalesce(nullif(btrim(p_reason), ''), nullif(btrim(current_setting('settlement.reason', true)), '')), 1000)
$$;

create function settlement.audit(p_action text, p_args jsonb, p_result jsonb default null, p_reason text default null) returns void
language sql as $$
  insert into settlement.operator_actions (action, args, result, reason)
  values (p_action, coalesce(p_args, '{}'), p_result, settlement.action_reason(p_reason))
$$;
comment on function settlement.audit is 'Records one operator action (who and when come from the session; reason from the argument or settlement.reason).';

------------------------------------------------------------------------------
-- Audited wrappers of the operator functions of earlier migrations.
-- enqueue_stage and retry_failed name their parameters by the function's name
-- (retry_failed.kind), so they cannot be renamed: their bodies (0005, 0007)
-- move here, unchanged but for that qualifier, as *_core.
create function settlement.enqueue_stage_core(stage settlement.stage, business_date date default null, kind settlement.kind default null)
returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  r record;
begin
  if enqueue_stage_core.stage is null then
    perform settlement.raise_error('ST001', 'enqueue_stage: stage is required');
  end if;
  for r in
    select o.business_date as d, o.kind as k from settlement.open_days() o
    where enqueue_stage_core.business_date is null and (enqueue_stage_core.kind is null or o.kind = enqueue_stage_core.kind)
    union all
    select enqueue_stage_core.business_date, k.kind from unnest(enum_range(null::settlement.kind)) as k(kind)
    where enqueue_stage_core.business_date is not null and (enqueue_stage_core.kind is null or k.kind = enqueue_stage_core.kind)
    order by 1, 2
  loop
    perform settlement.add_stage_job(enqueue_stage_core.stage, r.d, r.k);
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;

create or replace function settlement.enqueue_stage(stage settlement.stage, business_date date default null, kind settlement.kind default null)
returns integer
language plpgsql as $$
declare
  v_n integer;
begin
  v_n := settlement.enqueue_stage_core(enqueue_stage.stage, enqueue_stage.business_date, enqueue_stage.kind);
  perform settlement.audit('enqueue_stage', jsonb_build_object('stage', enqueue_stage.stage, 'business_date', enqueue_stage.business_date, 'kind', enqueue_stage.kind),
                           jsonb_build_object('enqueued', v_n));
  return v_n;
end $$;
comment on function settlement.enqueue_stage is 'Operator: adds stage jobs (job keys collapse duplicates). Null date = every open day; null kind = every kind. Returns how many. Audited (settlement.operator_actions; reason from settlement.reason).';

create function settlement.retry_failed_core(business_date date, kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_d date := retry_failed_core.business_date;
  v_k settlement.kind := retry_failed_core.kind;
  v_ids bigint[];
  v_payouts integer;
  v_withdrawals integer;
begin
  if v_d is null or v_k is null then
    perform settlement.raise_error('ST001', 'retry_failed: business_date and kind are required');
  end if;
  if not exists (select 1 from settlement.days d where d.business_date = v_d and d.kind = v_k) then
    perform settlement.raise_error('ST010', format('retry_failed: no settlement day %s %s', v_d, v_k));
  end if;
  -- Serialise with the confirm and withdraw stages of the day.
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', v_d, v_k));
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', v_d, v_k));
  if settlement.stage_state_of(v_d, v_k, 'withdraw') = 'done' then
    perform settlement.raise_error('ST012', format('retry_failed: %s %s is already withdrawn; nothing of it can be paid again', v_d, v_k));
  end if;
  if exists (select 1 from settlement.transfers t join settlement.transfer_attempts a on a.transfer_id = t.id and a.outcome = 'succeeded'
             where t.business_date = v_d and t.kind = v_k and t.state = 'failed') then
    perform settlement.raise_error('ST013', format('retry_failed: a failed transfer of %s %s has a succeeded attempt; it must not be sent again (investigate)', v_d, v_k));
  end if;

  -- A failed transfer gets a new IsTuno: the bank said the old one was not booked.
  with retried as (
    update settlement.transfers t
    set state = 'pending', attempt = t.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null, processed_at = null,
        fail_code = null, fail_message = null, settled_at = null, updated_at = now()
    where t.business_date = v_d and t.kind = v_k and t.state = 'failed'
    returning t.id, t.purpose)
  select array_agg(id), count(*) filter (where purpose = 'payout'), count(*) filter (where purpose = 'withdrawal')
  into v_ids, v_payouts, v_withdrawals from retried;
  if v_payouts > 0 then
    update settlement.stage_runs r set state = 'pending', detail = format('%s chunks retried by operator', v_payouts), updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'confirm' and r.state = 'blocked';
  end if;
  if v_withdrawals > 0 then
    update settlement.stage_runs r set state = 'running', detail = 'withdrawal retried by operator', updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'withdraw';
  end if;
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;
  return coalesce(v_payouts + v_withdrawals, 0);
end $$;

create or replace function settlement.retry_failed(business_date date, kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_n integer;
begin
  v_n := settlement.retry_failed_core(retry_failed.business_date, retry_failed.kind);
  perform settlement.audit('retry_failed', jsonb_build_object('business_date', retry_failed.business_date, 'kind', retry_failed.kind),
                           jsonb_build_object('retried', v_n));
  return v_n;
end $$;
comment on function settlement.retry_failed is 'Operator: re-enqueues the transfers of a day that failed for good, under new IsTunos. Refuses a day already withdrawn (ST012) and a transfer with a succeeded attempt (ST013). Returns how many. Audited.';

alter function settlement.configure(text, bigint, integer) rename to configure_unaudited;
create function settlement.configure(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer) returns void
language plpgsql as $$
begin
  perform settlement.configure_unaudited(p_time_zone, p_per_call_limit, p_max_in_flight);
  perform settlement.audit('configure', jsonb_build_object('time_zone', p_time_zone, 'per_call_limit', p_per_call_limit, 'max_in_flight', p_max_in_flight));
end $$;
comment on function settlement.configure is 'Operator: sets the settings every worker must share (settle configure). Workers started with other values refuse to start. Audited.';

alter function settlement.post_journal(date, settlement.kind, text, text, jsonb, text) rename to post_journal_unaudited;
create function settlement.post_journal(
  p_business_date date, p_kind settlement.kind, p_event text, p_ref text, p_lines jsonb, p_memo text default ''
) returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  v_id := settlement.post_journal_unaudited(p_business_date, p_kind, p_event, p_ref, p_lines, p_memo);
  perform settlement.audit('post_journal', jsonb_build_object('business_date', p_business_date, 'kind', p_kind, 'event', p_event, 'ref', p_ref, 'lines', p_lines, 'memo', p_memo),
                           jsonb_build_object('journal_id', v_id));
  return v_id;
end $$;
comment on function settlement.post_journal is 'Operator: posts one balanced journal entry (lines: [{account, amount}], debit > 0, credit < 0). Audited.';

------------------------------------------------------------------------------
-- On-call settings (one row; operators change them with SQL, every change is audited).
create table settlement.ops_settings (
  id boolean primary key default true check (id),
  -- a transfer whose outcome the bank has not told for this long needs a person
  unresolved_alert_after interval not null default '15 minutes' check (unresolved_alert_after > '0'),
  -- day D must be withdrawn by the start of D (settlement time zone) + this
  withdraw_deadline interval not null default '1 day 12 hours' check (withdraw_deadline > '0'),
  -- no worker heartbeat for this long: no live worker
  worker_silent_after interval not null default '2 minutes' check (worker_silent_after > '0'),
  updated_at timestamptz not null default now()
);
insert into settlement.ops_settings default values;
comment on table settlement.ops_settings is
  'On-call thresholds: unresolved_alert_after (a transfer unresolved this long), withdraw_deadline (after the start of the business date, settlement time zone), worker_silent_after (no heartbeat this long = no live worker).';

create function settlement.ops_settings_audit() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  perform settlement.audit('ops_settings', jsonb_build_object('old', to_jsonb(old) - 'id' - 'updated_at', 'new', to_jsonb(new) - 'id' - 'updated_at'));
  return new;
end $$;
create trigger ops_settings_audited before update on settlement.ops_settings
  for each row execute function settlement.ops_settings_audit();

------------------------------------------------------------------------------
-- Pause and resume. While a pause covers a kind (kind null = every kind), no
-- new bank call starts for its transfers: claim_transfer answers 'paused' and
-- the task tries again later. Calls already at the bank finish and are recorded.
create table settlement.pauses (
  id bigint generated always as identity primary key,
  kind settlement.kind,
  reason text not null check (length(btrim(reason)) between 1 and 1000),
  paused_at timestamptz not null default now(),
  paused_by text not null default session_user,
  resumed_at timestamptz,
  resumed_by text
);
create unique index pauses_one_active_per_kind on settlement.pauses (kind) where resumed_at is null and kind is not null;
create unique index pauses_one_active_for_all on settlement.pauses ((true)) where resumed_at is null and kind is null;
comment on table settlement.pauses is 'Pauses of bank calls (kind null = every kind); active while resumed_at is null. History is kept.';

create function settlement.is_paused(p_kind settlement.kind) returns boolean
language sql stable as $$
  select exists (select 1 from settlement.pauses p where p.resumed_at is null and (p.kind is null or p.kind = p_kind))
$$;

create function settlement.pause(kind settlement.kind default null, reason text default null) returns boolean
language plpgsql as $$
#variable_conflict use_column
declare
  v_reason text;
  v_new boolean;
begin
  v_reason := settlement.action_reason(pause.reason);
  if v_reason is null then
    perform settlement.raise_error('ST040', 'pause: a reason is required (say why, e.g. the bank''s incident)');
  end if;
  insert into settlement.pauses (kind, reason) values (pause.kind, v_reason)
  on conflict do nothing;
  v_new := found;
  perform settlement.audit('pause', jsonb_build_object('kind', pause.kind), jsonb_build_object('paused', v_new), v_reason);
  return v_new;
end $$;
comment on function settlement.pause is
  'Operator: pauses bank calls for a kind (null = every kind): no new transfer call starts; in-flight calls finish and are recorded. Returns false if already paused. A reason is required (ST040). Audited.';

create function settlement.resume(kind settlement.kind default null) returns integer
language plpgsql as $$
declare
  v_n integer;
  v_ids bigint[];
begin
  -- resume(null) lifts every pause; resume(kind) lifts that kind's own pause
  -- (an every-kind pause stays until resume(null)).
  update settlement.pauses p set resumed_at = now(), resumed_by = session_user
  where p.resumed_at is null and (resume.kind is null or p.kind = resume.kind);
  get diagnostics v_n = row_count;
  -- Transfers that were held back run at once (their jobs may be backing off).
  select array_agg(t.id) into v_ids from settlement.transfers t
  where t.state in ('pending', 'sending') and not settlement.is_paused(t.kind)
    and (resume.kind is null or t.kind = resume.kind);
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;
  perform settlement.audit('resume', jsonb_build_object('kind', resume.kind),
                           jsonb_build_object('pauses_lifted', v_n, 'transfers_requeued', coalesce(cardinality(v_ids), 0)));
  return v_n;
end $$;
comment on function settlement.resume is 'Operator: lifts the pause of a kind (null = every pause) and runs the held-back transfers at once. Returns how many pauses were lifted. Audited.';

-- claim_transfer of 0007 with the pause check in front. Same signature and
-- behaviour otherwise; its UPDATE ... RETURNING now lists the claim's fields
-- (RETURNING row(...)::settlement.transfer_claim INTO c put the whole row
-- into c.action).
create or replace function settlement.claim_transfer(p_id bigint, p_holder text, p_lease_ms integer,
  p_slot_holder text default null, p_slot_lease_ms integer default null)
returns settlement.transfer_claim
language plpgsql as $$
declare
  c settlement.transfer_claim;
  t settlement.transfers;
begin
  select * into t from settlement.transfers where id = p_id;
  if found and t.state in ('pending', 'sending') and settlement.is_paused(t.kind) then
    return row('paused', false, false, t.id, t.purpose, t.is_tuno, t.tsymd, t.memo, t.fintech_apsno, t.fin_acno, t.to_bncd, t.to_account,
               t.amount, t.business_date, t.kind, t.attempt, null)::settlement.transfer_claim;
  end if;
  update settlement.transfers x
  set state = 'sending', tsymd = coalesce(x.tsymd, settlement.bank_ymd()), claimed_by = p_holder,
      claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
  from (select id, tsymd is not null as was_sent from settlement.transfers where id = p_id for update) o
  where x.id = o.id and x.state in ('pending', 'sending')
    and (x.claimed_until is null or x.claimed_until < now() or x.claimed_by = p_holder)
  returning 'send', o.was_sent, x.tsymd = settlement.bank_ymd(), x.id, x.purpose, x.is_tuno, x.tsymd, x.memo, x.fintech_apsno,
            x.fin_acno, x.to_bncd, x.to_account, x.amount, x.business_date, x.kind, x.attempt, null::integer
  into c;
  if c.action is not null then
    if p_slot_holder is not null then
      c.slot := settlement.acquire_bank_slot(p_slot_holder, p_slot_lease_ms);
    end if;
    return c;
  end if;
  select * into t from settlement.transfers where id = p_id;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  return row(case when t.state in ('succeeded', 'failed') then 'settled' else 'busy' end, false, false, t.id, t.purpose, t.is_tuno, t.tsymd,
             t.memo, t.fintech_apsno, t.fin_acno, t.to_bncd, t.to_account, t.amount, t.business_date, t.kind, t.attempt, null)::settlement.transfer_claim;
end $$;
comment on function settlement.claim_transfer is
  'Transfer task: claims a transfer for one bank attempt (a lease), fixing its Tsymd by the database''s clock on the first call; answers paused (no claim) while settlement.pause covers its kind.';

------------------------------------------------------------------------------
-- Reconciliation breaks per day, if the reconcile stage is installed (the
-- view settlement.reconciliation_breaks); none otherwise.
create function settlement.break_counts() returns table (business_date date, kind settlement.kind, breaks bigint)
language plpgsql stable as $$
begin
  if to_regclass('settlement.reconciliation_breaks') is null then
    return;
  end if;
  return query execute 'select b.business_date::date, b.kind::settlement.kind, count(*)::bigint from settlement.reconciliation_breaks b group by 1, 2';
exception when undefined_column or undefined_table then
  return;
end $$;

------------------------------------------------------------------------------
-- One row per (business_date, kind): what every on-call view and metric reads.
create view settlement.day_facts as
select
  d.business_date,
  d.kind,
  s.states,
  s.blocked_stage,
  s.blocked_detail,
  s.all_done,
  s.withdrawn,
  coalesce(e.amount, 0)::bigint as amount_recorded,
  coalesce(a.unrecorded, 0)::bigint as accruals_unrecorded,
  coalesce(t.total, 0)::bigint as chunks_total,
  coalesce(t.succeeded, 0)::bigint as chunks_succeeded,
  coalesce(t.failed, 0)::bigint as chunks_failed,
  coalesce(t.in_flight, 0)::bigint as chunks_in_flight,
  coalesce(t.unresolved, 0)::bigint as chunks_unresolved,
  t.oldest_unresolved,
  coalesce(t.paid, 0)::bigint as amount_paid,
  (coalesce(e.amount, 0) - coalesce(t.paid, 0))::bigint as amount_unpaid,
  coalesce(t.failed_amount, 0)::bigint as amount_failed,
  coalesce(t.withdrawn, 0)::bigint as amount_withdrawn,
  coalesce(b.breaks, 0)::bigint as reconciliation_breaks,
  p.reason as paused_reason,
  p.paused_at,
  d.business_date >= (now() at time zone c.time_zone)::date as waiting,
  ((d.business_date + 1)::timestamp at time zone c.time_zone) as settle_from,
  ((d.business_date::timestamp + o.withdraw_deadline) at time zone c.time_zone) as withdraw_by
from settlement.days d
cross join settlement.config c
cross join settlement.ops_settings o
cross join lateral (
  select jsonb_object_agg(r.stage, r.state) as states,
         (array_agg(r.stage::text order by r.stage) filter (where r.state = 'blocked'))[1] as blocked_stage,
         (array_agg(r.detail order by r.stage) filter (where r.state = 'blocked'))[1] as blocked_detail,
         bool_and(r.state = 'done') as all_done,
         bool_or(r.stage = 'withdraw' and r.state = 'done') as withdrawn
  from settlement.stage_runs r where r.business_date = d.business_date and r.kind = d.kind) s
left join lateral (
  select sum(x.amount) as amount from settlement.entries x where x.business_date = d.business_date and x.kind = d.kind) e on true
left join lateral (
  select count(*) as unrecorded from settlement.accruals x
  where x.settle_date = d.business_date and x.kind = d.kind
    and (s.states ->> 'record') is distinct from 'done') a on true
left join lateral (
  select count(*) filter (where x.purpose = 'payout') as total,
         count(*) filter (where x.purpose = 'payout' and x.state = 'succeeded') as succeeded,
         count(*) filter (where x.purpose = 'payout' and x.state = 'failed') as failed,
         count(*) filter (where x.purpose = 'payout' and x.state in ('pending', 'sending')) as in_flight,
         count(*) filter (where x.unresolved_since is not null) as unresolved,
         min(x.unresolved_since) as oldest_unresolved,
         sum(x.amount) filter (where x.purpose = 'payout' and x.state = 'succeeded') as paid,
         sum(x.amount) filter (where x.purpose = 'payout' and x.state = 'failed') as failed_amount,
         sum(x.amount) filter (where x.purpose = 'withdrawal' and x.state = 'succeeded') as withdrawn
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind) t on true
left join settlement.break_counts() b on b.business_date = d.business_date and b.kind = d.kind
left join lateral (
  select p.reason, p.paused_at from settlement.pauses p
  where p.resumed_at is null and (p.kind is null or p.kind = d.kind)
  order by p.kind nulls first limit 1) p on true
where c.id and o.id;
comment on view settlement.day_facts is
  'One row per (business_date, kind): stage states (jsonb), counts and KRW (recorded, paid, unpaid, failed, withdrawn), unresolved transfers, reconciliation breaks, pause, and the times that matter (settle_from, withdraw_by).';

-- 1,234,567
create function settlement.krw(p bigint) returns text
language sql immutable as $$ select to_char(p, 'FM999,999,999,999,999,990') $$;

-- A time for people, in the settlement time zone (KST for Asia/Seoul).
create function settlement.local_time(p timestamptz) returns text
language sql stable as $$
  select to_char(p at time zone c.time_zone, 'YYYY-MM-DD HH24:MI') || ' ' || case c.time_zone when 'Asia/Seoul' then 'KST' else c.time_zone end
  from settlement.config c where c.id
$$;

-- The verdict per (business_date, kind), worst first: BLOCKED, PAUSED, IN PROGRESS, WAITING, DONE.
create view settlement.day_verdicts as
select f.business_date, f.kind, v.verdict, v.rank, v.detail, f.amount_unpaid, f.amount_withdrawn, v.next_command
from settlement.day_facts f
cross join lateral (
  select * from (values
    (f.blocked_stage is not null, 'BLOCKED', 1,
       format('%s blocked: %s; %s KRW unpaid', f.blocked_stage, f.blocked_detail, settlement.krw(f.amount_unpaid)),
       case when f.chunks_failed > 0 or f.blocked_detail like 'withdrawal failed%' then format('settle failures --date %s, fix the cause, then settle retry --date %s', f.business_date, f.business_date)
            when f.blocked_stage = 'reconcile' then format('see settlement.reconciliation_breaks for %s %s', f.business_date, f.kind)
            else format('fix the cause, then settle run %s --date %s --kind %s', f.blocked_stage, f.business_date, f.kind) end),
    (not f.all_done and f.paused_reason is not null, 'PAUSED', 2,
       format('bank calls paused since %s: %s; %s KRW unpaid', settlement.local_time(f.paused_at), f.paused_reason, settlement.krw(f.amount_unpaid)),
       format('settle resume%s --reason ...', case when exists (select 1 from settlement.pauses p where p.resumed_at is null and p.kind = f.kind) then ' --kind ' || f.kind else '' end)),
    (not f.all_done and not f.waiting, 'IN PROGRESS', 3,
       format('%s of %s chunks paid, %s in flight%s; %s KRW unpaid', f.chunks_succeeded, f.chunks_total, f.chunks_in_flight,
              case when f.chunks_unresolved > 0 then format(', %s unresolved', f.chunks_unresolved) else '' end, settlement.krw(f.amount_unpaid)),
       null),
    (not f.all_done and f.waiting, 'WAITING', 4,
       format('until %s (the day is not over)', settlement.local_time(f.settle_from)), null),
    (f.all_done, 'DONE', 5, format('%s KRW withdrawn', settlement.krw(f.amount_withdrawn)), null)
  ) x(applies, verdict, rank, detail, next_command)
  where x.applies order by x.rank limit 1) v;
comment on view settlement.day_verdicts is 'The verdict for each (business_date, kind): BLOCKED (what, KRW unpaid, next command), PAUSED, IN PROGRESS, WAITING (until when), DONE.';

-- One line per day: the worst verdict of its kinds.
create view settlement.verdict as
with v as (
  select v.*, min(v.rank) over (partition by v.business_date) as day_rank from settlement.day_verdicts v)
select v.business_date,
       (array_agg(v.verdict order by v.rank))[1] as verdict,
       sum(v.amount_unpaid)::bigint as amount_unpaid,
       string_agg(v.kind::text, ', ' order by v.kind) filter (where v.rank = v.day_rank) as kinds,
       case min(v.rank)
         when 5 then format('%s kinds, %s KRW withdrawn', count(*), settlement.krw(sum(v.amount_withdrawn)::bigint))
         else string_agg(v.kind || ': ' || v.detail, '; ' order by v.kind) filter (where v.rank = v.day_rank)
       end as detail,
       (array_agg(v.next_command order by v.rank, v.kind) filter (where v.next_command is not null))[1] as next_command
from v
group by v.business_date;
comment on view settlement.verdict is 'One line per business date: DONE, BLOCKED (what, KRW unpaid, the next command), IN PROGRESS, WAITING (until when), PAUSED.';

------------------------------------------------------------------------------
-- Workers: how many are alive and how old the oldest heartbeat is.
create function settlement.worker_status()
returns table (alive integer, registered integer, newest_beat timestamptz, oldest_beat timestamptz, silent_after interval)
language sql stable as $$
  select (count(*) filter (where w.last_beat > now() - o.worker_silent_after))::int, count(*)::int,
         max(w.last_beat), min(w.last_beat), o.worker_silent_after
  from settlement.ops_settings o left join settlement.workers w on true
  where o.id
  group by o.worker_silent_after
$$;
comment on function settlement.worker_status is 'Workers alive (heartbeat within ops_settings.worker_silent_after), registered, newest and oldest heartbeat.';

create function settlement.worker_heartbeats()
returns table (pool_id text, host text, pid integer, started_at timestamptz, age_seconds double precision)
language sql stable as $$
  select w.pool_id, w.host, w.pid, w.started_at, extract(epoch from now() - w.last_beat)::float8 from settlement.workers w order by w.pool_id
$$;

------------------------------------------------------------------------------
-- What needs a person now. One row per condition, with a stable key (the
-- alert's deduplication key).
create function settlement.problems()
returns table (key text, problem text, business_date date, kind settlement.kind, message text, amount_unpaid bigint, next_command text)
language sql stable as $$
  select 'blocked:' || v.business_date || ':' || v.kind, 'blocked', v.business_date, v.kind,
         format('%s %s BLOCKED: %s', v.business_date, v.kind, v.detail), v.amount_unpaid, v.next_command
  from settlement.day_verdicts v where v.verdict = 'BLOCKED'
  union all
  select 'unresolved:' || f.business_date || ':' || f.kind, 'unresolved', f.business_date, f.kind,
         format('%s %s: %s transfer(s) unresolved since %s (the bank has not told the outcome)', f.business_date, f.kind, f.chunks_unresolved, settlement.local_time(f.oldest_unresolved)),
         f.amount_unpaid, format('settle failures --date %s', f.business_date)
  from settlement.day_facts f cross join settlement.ops_settings o
  where o.id and f.oldest_unresolved < now() - o.unresolved_alert_after
  union all
  select 'deadline:' || f.business_date || ':' || f.kind, 'not_withdrawn', f.business_date, f.kind,
         format('%s %s is not withdrawn and its deadline %s has passed; %s KRW unpaid', f.business_date, f.kind, settlement.local_time(f.withdraw_by), settlement.krw(f.amount_unpaid)),
         f.amount_unpaid, format('settle status --date %s', f.business_date)
  from settlement.day_facts f
  where not f.withdrawn and f.withdraw_by < now()
  union all
  select 'workers', 'no_live_worker', null, null,
         case when s.registered = 0 then 'no worker is registered: nothing is settling (start `settle worker`)'
              else format('no worker has beaten since %s: nothing is settling', settlement.local_time(s.newest_beat)) end,
         null, 'settle worker'
  from settlement.worker_status() s where s.alive = 0
  order by 1
$$;
comment on function settlement.problems is
  'What needs a person: blocked days, transfers unresolved past ops_settings.unresolved_alert_after, days not withdrawn by their deadline, no live worker. key is stable per condition.';

------------------------------------------------------------------------------
-- Alerts: one per condition while it lasts (sent once, cleared when it is gone).
create table settlement.alerts (
  id bigint generated always as identity primary key,
  key text not null,
  problem text not null,
  business_date date,
  kind settlement.kind,
  message text not null,
  detected_at timestamptz not null default now(),
  sent_at timestamptz,
  send_error text,
  cleared_at timestamptz
);
create unique index alerts_one_open on settlement.alerts (key) where cleared_at is null;
comment on table settlement.alerts is 'Alerts posted to ALERT_WEBHOOK_URL: one per condition while it lasts (key), with when it was detected, sent and cleared.';

create function settlement.add_alert_job(p_id bigint) returns void
language sql as $$
  select null from graphile_worker.add_job('alert', json_build_object('alert_id', p_id), max_attempts => 25, job_key => 'alert:' || p_id)
$$;

-- Opens an alert (and its job, in this transaction) for every new condition
-- and clears the alerts whose condition is gone. Run by the crontab's watch.
create function settlement.detect_alerts(p_only text[] default null)
returns table (opened integer, cleared integer)
language plpgsql as $$
declare
  v_cleared integer;
  v_ids bigint[];
begin
  -- Two watches at once would race on the same conditions: one at a time.
  perform pg_advisory_xact_lock(727002);
  with p as (
    select * from settlement.problems() x where p_only is null or x.problem = any (p_only)),
  cleared as (
    update settlement.alerts a set cleared_at = now()
    where a.cleared_at is null and (p_only is null or a.problem = any (p_only))
      and not exists (select 1 from p where p.key = a.key)
    returning a.id),
  opened as (
    insert into settlement.alerts (key, problem, business_date, kind, message)
    select p.key, p.problem, p.business_date, p.kind, p.message || coalesce(' (next: ' || p.next_command || ')', '')
    from p
    where not exists (select 1 from settlement.alerts a where a.key = p.key and a.cleared_at is null)
    returning id)
  select (select count(*) from cleared)::int, (select array_agg(id order by id) from opened) into v_cleared, v_ids;
  if v_ids is not null then
    perform settlement.add_alert_job(x) from unnest(v_ids) x;
  end if;
  return query select coalesce(cardinality(v_ids), 0), v_cleared;
end $$;
comment on function settlement.detect_alerts is 'Watch: opens one alert per new condition of settlement.problems() (its job enqueued in the same transaction) and clears those whose condition is gone.';

create function settlement.alert_to_send(p_id bigint)
returns table (id bigint, key text, message text, sent boolean, cleared boolean)
language plpgsql stable as $$
begin
  return query select a.id, a.key, a.message, a.sent_at is not null, a.cleared_at is not null from settlement.alerts a where a.id = p_id;
  if not found then
    perform settlement.raise_error('ST041', format('alert %s does not exist', p_id));
  end if;
end $$;

create function settlement.alert_sent(p_id bigint, p_error text default null) returns void
language sql as $$
  update settlement.alerts set sent_at = case when p_error is null then coalesce(sent_at, now()) else sent_at end,
                               send_error = left(p_error, 500)
  where id = p_id
$$;

------------------------------------------------------------------------------
-- Retry that fits an outage: every blocked kind of a day at once.
create function settlement.retry_day(business_date date, kind settlement.kind default null)
returns table (retried_kind settlement.kind, retried integer)
language plpgsql as $$
declare
  k settlement.kind;
  v_n integer;
  v_total integer := 0;
  v_done jsonb := '{}';
begin
  if retry_day.business_date is null then
    perform settlement.raise_error('ST001', 'retry_day: business_date is required');
  end if;
  if not exists (select 1 from settlement.days d where d.business_date = retry_day.business_date and (retry_day.kind is null or d.kind = retry_day.kind)) then
    perform settlement.raise_error('ST010', format('retry_day: no settlement day %s%s', retry_day.business_date, coalesce(' ' || retry_day.kind, '')));
  end if;
  for k in
    select distinct t.kind from settlement.transfers t
    where t.business_date = retry_day.business_date and t.state = 'failed' and (retry_day.kind is null or t.kind = retry_day.kind)
    order by 1
  loop
    v_n := settlement.retry_failed_core(retry_day.business_date, k);
    v_done := v_done || jsonb_build_object(k::text, v_n);
    v_total := v_total + v_n;
    retried_kind := k; retried := v_n;
    return next;
  end loop;
  perform settlement.audit('retry_day', jsonb_build_object('business_date', retry_day.business_date, 'kind', retry_day.kind),
                           jsonb_build_object('retried', v_total, 'by_kind', v_done));
end $$;
comment on function settlement.retry_day is 'Operator: retry_failed for every kind of a day that has transfers failed for good (or one kind). Returns what was retried per kind. Audited.';

-- What retry_day would retry, per kind and paying account (payouts: the loan
-- account's fin-account; withdrawals: the kind's settlement account).
create function settlement.retry_preview(p_date date, p_kind settlement.kind default null)
returns table (kind settlement.kind, purpose settlement.transfer_purpose, from_account text, fin_acno text, transfers bigint, amount bigint, bank_codes text)
language sql stable as $$
  select t.kind, t.purpose, t.from_account, max(t.fin_acno), count(*), sum(t.amount)::bigint, string_agg(distinct t.fail_code, ', ')
  from settlement.transfers t
  where t.business_date = p_date and t.state = 'failed' and (p_kind is null or t.kind = p_kind)
  group by t.kind, t.purpose, t.from_account
  order by t.kind, t.purpose, t.from_account
$$;

------------------------------------------------------------------------------
-- Metrics: one query per scrape.
create function settlement.day_metrics(p_days_back integer default 7)
returns setof settlement.day_facts
language sql stable as $$
  select f.* from settlement.day_facts f
  where not f.all_done or f.business_date >= (now() at time zone (select time_zone from settlement.config where id))::date - p_days_back
$$;
comment on function settlement.day_metrics is 'Worker /metrics: day_facts of the days not done and of the last p_days_back days.';

------------------------------------------------------------------------------
-- Grants (the pattern of 0020_roles.sql).
create function settlement.grant_ops_api(p_role text, p_functions text[]) returns void
language plpgsql as $$
declare
  f text;
begin
  foreach f in array p_functions loop
    execute format('alter function settlement.%s security definer set search_path = pg_catalog, settlement, graphile_worker', f);
    execute format('grant execute on function settlement.%s to %I', f, p_role);
  end loop;
end $$;

-- The renamed originals are reached through their audited wrappers only.
revoke execute on function settlement.configure_unaudited(text, bigint, integer) from settlement_operator;
revoke execute on function settlement.post_journal_unaudited(date, settlement.kind, text, text, jsonb, text) from settlement_operator;

grant select on settlement.day_facts, settlement.day_verdicts, settlement.verdict to settlement_viewer, settlement_worker;
grant select on settlement.alerts, settlement.pauses, settlement.ops_settings to settlement_viewer;
-- Functions the views call run as the caller: viewers need them.
select settlement.grant_ops_api('settlement_viewer', array[
  'break_counts()', 'krw(bigint)', 'local_time(timestamptz)', 'worker_status()', 'problems()', 'retry_preview(date, settlement.kind)']);
grant update on settlement.ops_settings to settlement_operator;
select settlement.grant_ops_api('settlement_operator', array[
  'enqueue_stage(settlement.stage, date, settlement.kind)',
  'retry_failed(date, settlement.kind)',
  'configure(text, bigint, integer)',
  'post_journal(date, settlement.kind, text, text, jsonb, text)',
  'pause(settlement.kind, text)',
  'resume(settlement.kind)',
  'retry_day(date, settlement.kind)']);
-- The settings trigger audits as the owner.
alter function settlement.ops_settings_audit() security definer set search_path = pg_catalog, settlement, graphile_worker;
select settlement.grant_ops_api('settlement_worker', array[
  -- replaced above: create or replace resets security definer and search_path
  'claim_transfer(bigint, text, integer, text, integer)',
  'day_metrics(integer)',
  'worker_heartbeats()',
  'break_counts()', 'krw(bigint)', 'local_time(timestamptz)', 'worker_status()', 'problems()',
  'detect_alerts(text[])',
  'alert_to_send(bigint)',
  'alert_sent(bigint, text)']);

drop function settlement.grant_ops_api(text, text[]);
-- Per-schema default privileges cannot take away PUBLIC's execute on new
-- functions: every function created above is closed to PUBLIC here.
revoke all on all functions in schema settlement from public;
revoke all on all tables in schema settlement from public;
