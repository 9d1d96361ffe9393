-- On-call tools: an audit trail of operator actions, pause/resume of bank
-- calls, one verdict per day, the conditions that need a person, and alerts
-- sent through an outbox job.
--
-- Every operator function records who did what, when and why
-- (settlement.operator_actions): configure, post_journal, enqueue_stage and
-- retry_failed are thin audited wrappers of <name>_unaudited or <name>_core
-- (the owner's alone).

-- The reason of an action: the argument, else the session setting
-- settlement.reason (`set settlement.reason = '...'` in psql; `settle ... --reason`).
create or replace function settlement.action_reason(p_reason text default null) returns text
language sql stable as $$
  select left(coalesce(nullif(btrim(p_reason), ''), nullif(btrim(current_setting('settlement.reason', true)), '')), 1000)
$$;

create or replace function settlement.audit(p_action text, p_args jsonb, p_result jsonb default null, p_reason text default null) returns void
language sql as $$
  insert into settlement.operator_actions (action, args, result, reason)
  values (p_action, coalesce(p_args, '{}'), p_result, settlement.action_reason(p_reason))
$$;
comment on function settlement.audit is 'Records one operator action (who and when come from the session; reason from the argument or settlement.reason).';

create or replace trigger operator_actions_append_only before update or delete on settlement.operator_actions
  for each row execute function settlement.journal_append_only();

create or replace trigger operator_actions_no_truncate before truncate on settlement.operator_actions
  for each statement execute function settlement.journal_append_only();

create or replace function settlement.configure_unaudited(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer) returns void
language plpgsql as $$
begin
  if p_time_zone is null or p_per_call_limit is null or p_max_in_flight is null or p_per_call_limit <= 0 or p_max_in_flight <= 0 then
    perform settlement.raise_error('ST001', 'configure: time zone, a per-call limit > 0 and a max in flight > 0 are required');
  end if;
  perform settlement_meta.now() at time zone p_time_zone; -- raises for an unknown zone
  update settlement.config
  set time_zone = p_time_zone, per_call_limit = p_per_call_limit, max_in_flight = p_max_in_flight, configured = true, updated_at = settlement_meta.now()
  where id;
end $$;
comment on function settlement.configure_unaudited is 'Operator: sets the settings every worker must share (settle configure). Workers started with other values refuse to start.';

create or replace function settlement.configure(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer) returns void
language plpgsql as $$
begin
  perform settlement.configure_unaudited(p_time_zone, p_per_call_limit, p_max_in_flight);
  perform settlement.audit('configure', jsonb_build_object('time_zone', p_time_zone, 'per_call_limit', p_per_call_limit, 'max_in_flight', p_max_in_flight));
end $$;
comment on function settlement.configure is 'Operator: sets the settings every worker must share (settle configure). Workers started with other values refuse to start. Audited.';

create or replace function settlement.post_journal(
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

create or replace function settlement.ops_settings_audit() returns trigger
language plpgsql as $$
begin
  new.updated_at := settlement_meta.now();
  perform settlement.audit('ops_settings', jsonb_build_object('old', to_jsonb(old) - 'id' - 'updated_at', 'new', to_jsonb(new) - 'id' - 'updated_at'));
  return new;
end $$;

create or replace trigger ops_settings_audited before update on settlement.ops_settings
  for each row execute function settlement.ops_settings_audit();

create or replace function settlement.is_paused(p_kind settlement.kind) returns boolean
language sql stable as $$
  select exists (select 1 from settlement.pauses p where p.resumed_at is null and (p.kind is null or p.kind = p_kind))
$$;

create or replace function settlement.pause(kind settlement.kind default null, reason text default null) returns boolean
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
comment on function settlement.pause is 'Operator: pauses bank calls for a kind (null = every kind): no new transfer call starts; in-flight calls finish and are recorded. Returns false if already paused. A reason is required (ST040). Audited.';

create or replace function settlement.resume(kind settlement.kind default null) returns integer
language plpgsql as $$
declare
  v_n integer;
  v_ids bigint[];
begin
  -- resume(null) lifts every pause; resume(kind) lifts that kind's own pause
  -- (an every-kind pause stays until resume(null)).
  update settlement.pauses p set resumed_at = settlement_meta.now(), resumed_by = session_user
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

------------------------------------------------------------------------------
-- Retry that fits an outage: every blocked kind of a day at once.
create or replace function settlement.retry_day(business_date date, kind settlement.kind default null)
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
create or replace function settlement.retry_preview(p_date date, p_kind settlement.kind default null)
returns table (kind settlement.kind, purpose settlement.transfer_purpose, from_account text, fin_acno text, transfers bigint, amount bigint, bank_codes text)
language sql stable as $$
  select t.kind, t.purpose, t.from_account,
         case when pg_has_role(session_user, 'settlement_operator', 'member') then max(t.fin_acno) end,
         count(*), sum(t.amount)::bigint, string_agg(distinct t.fail_code, ', ')
  from settlement.transfers t
  where t.business_date = p_date and t.state = 'failed' and (p_kind is null or t.kind = p_kind)
  group by t.kind, t.purpose, t.from_account
  order by t.kind, t.purpose, t.from_account
$$;
comment on function settlement.retry_preview is 'What retry_day would send again, per kind and paying account. The FinAcno (what the bank needs to report a balance) only for members of settlement_operator.';

-- For the case no statement can settle (an unreferenced line of the same
-- amount, an account outside NH, a bank that confirms by other means): a
-- person decides an unresolved (or failed) transfer with the evidence in
-- words. booked: it becomes succeeded under its number (take_booking_evidence,
-- the evidence kept); not booked (unresolved only): planned again under a new
-- IsTuno, the old number's attempt recording the decision; not booked for a
-- failed transfer with an attempt that never learnt its outcome
-- (unknown_outcomes): recorded as evidence, so retry_failed may plan it
-- again. Refused while an attempt holds its claim, "not booked" while a
-- request may still be at the bank (sent_until), and once it is settled
-- otherwise (ST017); without evidence or a yes/no (ST018). Audited.
create or replace function settlement.decide_transfer(p_id bigint, p_booked boolean, p_evidence text) returns text
language plpgsql as $$
declare
  t settlement.transfers;
  v_out text;
begin
  if p_booked is null or p_evidence is null or btrim(p_evidence) = '' then
    perform settlement.raise_error('ST018', 'decide_transfer: say whether the bank booked it (true/false) and the evidence (what, from whom, its reference)');
  end if;
  select * into t from settlement.transfers x where x.id = p_id for update;
  if not found then
    perform settlement.raise_error('ST008', format('decide_transfer: transfer %s does not exist', p_id));
  end if;
  if t.claimed_until >= settlement_meta.now() then
    perform settlement.raise_error('ST017', format('decide_transfer: transfer %s is claimed by %s until %s (an attempt may still send or answer); try after it', p_id, t.claimed_by, t.claimed_until));
  end if;
  if not p_booked and t.sent_until > settlement_meta.now() then
    perform settlement.raise_error('ST017', format('decide_transfer: transfer %s may still have a request at the bank until %s (an attempt''s lease); try after it', p_id, settlement.local_time(t.sent_until)));
  end if;
  if not (t.state = 'sending' and t.unresolved_since is not null) and not (p_booked and t.state in ('failed', 'sending'))
     and not (not p_booked and t.state = 'failed' and exists (select 1 from settlement.unknown_outcomes u where u.transfer_id = t.id)) then
    perform settlement.raise_error('ST017', format('decide_transfer: transfer %s is %s%s: nothing to decide', p_id, t.state,
                                                   case when t.state = 'sending' then ' and not unresolved' else '' end));
  end if;
  if p_booked then
    v_out := settlement.take_booking_evidence(t.id, t.is_tuno, null, 'person', null, left(btrim(p_evidence), 2000));
  elsif t.state = 'failed' then
    -- An attempt that never learnt its outcome (unknown_outcomes): the
    -- person's word is recorded for each such number; retry_failed may then
    -- plan the transfer again.
    insert into settlement.transfer_evidence (transfer_id, is_tuno, booked, source, detail)
    select t.id, u.is_tuno, false, 'person', left(btrim(p_evidence), 2000)
    from (select distinct u.is_tuno from settlement.unknown_outcomes u where u.transfer_id = t.id) u;
    v_out := 'not_booked';
  else
    insert into settlement.transfer_evidence (transfer_id, is_tuno, booked, source, detail)
    values (t.id, t.is_tuno, false, 'person', left(btrim(p_evidence), 2000));
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message)
    values (t.id, t.is_tuno, t.tsymd, t.amount, 'failed', 'decided_by_person', left(btrim(p_evidence), 500));
    update settlement.transfers x
    set state = 'pending', attempt = x.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null,
        claimed_by = null, claimed_until = null, claim_token = null, sent_until = null,
        unresolved_since = null, unresolved_reason = null, updated_at = settlement_meta.now()
    where x.id = t.id;
    perform settlement.add_transfer_jobs(array[t.id]);
    v_out := 'not_booked';
  end if;
  perform settlement.audit('decide_transfer', jsonb_build_object('id', t.id, 'is_tuno', t.is_tuno, 'booked', p_booked, 'business_date', t.business_date, 'kind', t.kind),
                           jsonb_build_object('decision', v_out), left(btrim(p_evidence), 1000));
  return v_out;
end $$;
comment on function settlement.decide_transfer is 'Operator: decides an unresolved transfer (or a failed one, booked) with evidence no statement gives: booked -> succeeded (evidence kept, journal posted); not booked -> planned again under a new IsTuno. ST017 claimed or settled, ST018 no evidence. Audited.';

create or replace view settlement.payout_failures as
select case when t.state = 'failed' then 'failed' else 'unresolved' end as problem,
       t.purpose::text as what, t.business_date, t.kind, t.id as transfer_id, t.entry_id, t.seq, t.from_account, t.to_account,
       t.amount, t.is_tuno, t.tsymd, t.attempt,
       t.fail_code as bank_code, coalesce(t.fail_message, t.unresolved_reason) as bank_message,
       t.settled_at as failed_at, t.unresolved_since,
       case when t.unresolved_since is not null then settlement_meta.now() - t.unresolved_since end as unresolved_for,
       settlement.undecided_why(t) as undecided_why
from settlement.transfers t
where t.state = 'failed' or t.unresolved_since is not null;
comment on view settlement.payout_failures is 'Transfers that failed for good (with the bank''s code and message: fix the cause, then settlement.retry_failed(date, kind)) and transfers whose outcome the bank has not told yet (unresolved, with their age and undecided_why: why the statement has not decided it).';

------------------------------------------------------------------------------
-- Reconciliation breaks per day, if the reconcile stage is installed (the
-- view settlement.reconciliation_breaks); none otherwise.
create or replace function settlement.break_counts() returns table (business_date date, kind settlement.kind, breaks bigint)
language plpgsql stable as $$
begin
  if to_regclass('settlement.reconciliation_breaks') is null then
    return;
  end if;
  return query execute 'select b.business_date::date, b.kind::settlement.kind, count(*)::bigint from settlement.reconciliation_breaks b group by 1, 2';
exception when undefined_column or undefined_table then
  return;
end $$;

create or replace view settlement.daily_status as
select
  d.business_date,
  d.kind,
  max(r.state::text) filter (where r.stage = 'record') as record,
  max(r.state::text) filter (where r.stage = 'pay') as pay,
  max(r.state::text) filter (where r.stage = 'confirm') as confirm,
  max(r.state::text) filter (where r.stage = 'withdraw') as withdraw,
  max(r.state::text) filter (where r.stage = 'reconcile') as reconcile,
  coalesce(e.entries, 0) as entries,
  coalesce(e.amount, 0)::bigint as amount_recorded,
  coalesce(c.total, 0) as chunks_total,
  coalesce(c.succeeded, 0) as chunks_succeeded,
  coalesce(c.failed, 0) as chunks_failed,
  coalesce(c.in_flight, 0) as chunks_in_flight,
  coalesce(c.unresolved, 0) as chunks_unresolved,
  coalesce(c.paid, 0)::bigint as amount_paid,
  coalesce(c.withdrawn, 0)::bigint as amount_withdrawn,
  coalesce(a.pending_accruals, 0) as accruals_unrecorded,
  string_agg(r.stage || ': ' || r.detail, '; ' order by r.stage) filter (where r.state <> 'done' and r.detail <> '') as attention,
  coalesce(b.open_breaks, 0) as open_breaks
from settlement.days d
join settlement.stage_runs r on r.business_date = d.business_date and r.kind = d.kind
left join lateral (
  select count(*) as entries, sum(amount) as amount from settlement.entries x
  where x.business_date = d.business_date and x.kind = d.kind) e on true
left join lateral (
  select count(*) filter (where purpose = 'payout') as total,
         count(*) filter (where purpose = 'payout' and state = 'succeeded') as succeeded,
         count(*) filter (where purpose = 'payout' and state = 'failed') as failed,
         count(*) filter (where purpose = 'payout' and state in ('pending', 'sending')) as in_flight,
         count(*) filter (where unresolved_since is not null) as unresolved,
         sum(amount) filter (where purpose = 'payout' and state = 'succeeded') as paid,
         sum(amount) filter (where purpose = 'withdrawal' and state = 'succeeded') as withdrawn
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind) c on true
left join lateral (
  select count(*) as pending_accruals from settlement.accruals x
  where x.settle_date = d.business_date and x.kind = d.kind
    and not exists (select 1 from settlement.stage_runs s where s.business_date = d.business_date and s.kind = d.kind and s.stage = 'record' and s.state = 'done')) a on true
left join lateral (
  select count(*) as open_breaks from settlement.breaks x
  where x.business_date = d.business_date and x.kind = d.kind and x.resolved_at is null) b on true
group by d.business_date, d.kind, e.entries, e.amount, c.total, c.succeeded, c.failed, c.in_flight, c.unresolved, c.paid, c.withdrawn, a.pending_accruals, b.open_breaks;
comment on view settlement.daily_status is 'One row per (business_date, kind): each stage''s state and the day''s counts and amounts (KRW); attention says what a person should look at.';

------------------------------------------------------------------------------
-- One row per (business_date, kind): what every on-call view and metric reads.
create or replace view settlement.day_facts as
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
  d.business_date >= (settlement_meta.now() at time zone c.time_zone)::date as waiting,
  ((d.business_date + 1)::timestamp at time zone c.time_zone) as settle_from,
  ((d.business_date::timestamp + o.withdraw_deadline) at time zone c.time_zone) as withdraw_by,
  t.quiet_until as bank_quiet_until
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
         sum(x.amount) filter (where x.purpose = 'withdrawal' and x.state = 'succeeded') as withdrawn,
         max(x.quiet_until) filter (where x.state in ('pending', 'sending') and x.quiet_until > settlement_meta.now()) as quiet_until
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind) t on true
left join settlement.break_counts() b on b.business_date = d.business_date and b.kind = d.kind
left join lateral (
  select p.reason, p.paused_at from settlement.pauses p
  where p.resumed_at is null and (p.kind is null or p.kind = d.kind)
  order by p.kind nulls first limit 1) p on true
where c.id and o.id;
comment on view settlement.day_facts is 'One row per (business_date, kind): stage states (jsonb), counts and KRW (recorded, paid, unpaid, failed, withdrawn), unresolved transfers, reconciliation breaks, pause, and the times that matter (settle_from, withdraw_by, bank_quiet_until: its transfers wait for the bank''s quiet hours to end).';

-- The verdict per (business_date, kind), worst first: BLOCKED, PAUSED, IN PROGRESS, WAITING, DONE.
create or replace view settlement.day_verdicts as
select f.business_date, f.kind, v.verdict, v.rank, v.detail, f.amount_unpaid, f.amount_withdrawn, v.next_command
from settlement.day_facts f
cross join lateral (
  select case when f.withdrawn and not f.all_done then settlement.statement_final_by(f.business_date, f.kind) end as final_by) w
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
    (not f.all_done and f.bank_quiet_until is not null, 'WAITING', 3,
       format('waiting for the bank until %s (its quiet hours: no transfer is sent inside them); %s KRW unpaid',
              settlement.local_time(f.bank_quiet_until), settlement.krw(f.amount_unpaid)), null),
    (not f.all_done and f.bank_quiet_until is null and not f.waiting and not coalesce(w.final_by > settlement_meta.now(), false), 'IN PROGRESS', 3,
       format('%s of %s chunks paid, %s in flight%s; %s KRW unpaid', f.chunks_succeeded, f.chunks_total, f.chunks_in_flight,
              case when f.chunks_unresolved > 0 then format(', %s unresolved', f.chunks_unresolved) else '' end, settlement.krw(f.amount_unpaid)),
       null),
    (not f.all_done and f.waiting, 'WAITING', 4,
       format('until %s (the day is not over)', settlement.local_time(f.settle_from)), null),
    (not f.all_done and not f.waiting and coalesce(w.final_by > settlement_meta.now(), false), 'WAITING', 4,
       format('until %s (withdrawn %s KRW; the bank''s statement becomes final, then reconcile)', settlement.local_time(w.final_by), settlement.krw(f.amount_withdrawn)),
       null),
    (f.all_done, 'DONE', 5, format('%s KRW withdrawn', settlement.krw(f.amount_withdrawn)), null)
  ) x(applies, verdict, rank, detail, next_command)
  where x.applies order by x.rank limit 1) v;
comment on view settlement.day_verdicts is 'The verdict for each (business_date, kind): BLOCKED (what, KRW unpaid, next command), PAUSED, IN PROGRESS, WAITING (until when: the bank''s quiet hours, the day''s end, or its withdrawn money''s bank statement becoming final), DONE.';

-- One line per day: the worst verdict of its kinds.
create or replace view settlement.verdict as
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
-- Metrics: one query per scrape.
create or replace function settlement.day_metrics(p_days_back integer default 7)
returns setof settlement.day_facts
language sql stable as $$
  select f.* from settlement.day_facts f
  where not f.all_done or f.business_date >= (settlement_meta.now() at time zone (select time_zone from settlement.config where id))::date - p_days_back
$$;
comment on function settlement.day_metrics is 'Worker /metrics: day_facts of the days not done and of the last p_days_back days.';

------------------------------------------------------------------------------
-- Workers: how many are alive and how old the oldest heartbeat is.
create or replace function settlement.worker_status()
returns table (alive integer, registered integer, newest_beat timestamptz, oldest_beat timestamptz, silent_after interval)
language sql stable as $$
  -- count(w.pool_id), not count(*): with no worker the left join still gives one (null) row.
  select (count(w.pool_id) filter (where w.last_beat > settlement_meta.now() - o.worker_silent_after))::int, count(w.pool_id)::int,
         max(w.last_beat), min(w.last_beat), o.worker_silent_after
  from settlement.ops_settings o left join settlement.workers w on true
  where o.id
  group by o.worker_silent_after
$$;
comment on function settlement.worker_status is 'Workers alive (heartbeat within ops_settings.worker_silent_after), registered, newest and oldest heartbeat.';

create or replace function settlement.worker_heartbeats()
returns table (pool_id text, host text, pid integer, started_at timestamptz, age_seconds double precision)
language sql stable as $$
  select w.pool_id, w.host, w.pid, w.started_at, extract(epoch from settlement_meta.now() - w.last_beat)::float8 from settlement.workers w order by w.pool_id
$$;

------------------------------------------------------------------------------
-- What needs a person now. One row per condition, with a stable key (the
-- alert's deduplication key).
create or replace function settlement.problems()
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
  where o.id and f.oldest_unresolved < settlement_meta.now() - o.unresolved_alert_after
  union all
  select 'deadline:' || f.business_date || ':' || f.kind, 'not_withdrawn', f.business_date, f.kind,
         format('%s %s is not withdrawn and its deadline %s has passed; %s KRW unpaid', f.business_date, f.kind, settlement.local_time(f.withdraw_by), settlement.krw(f.amount_unpaid)),
         f.amount_unpaid, format('settle status --date %s', f.business_date)
  from settlement.day_facts f
  where not f.withdrawn and f.withdraw_by < settlement_meta.now()
  union all
  select 'workers', 'no_live_worker', null, null,
         case when s.registered = 0 then 'no worker is registered: nothing is settling (start `settle worker`)'
              else format('no worker has beaten since %s: nothing is settling', settlement.local_time(s.newest_beat)) end,
         null, 'settle worker'
  from settlement.worker_status() s where s.alive = 0
  order by 1
$$;
comment on function settlement.problems is 'What needs a person: blocked days, transfers unresolved past ops_settings.unresolved_alert_after, days not withdrawn by their deadline, no live worker. key is stable per condition.';

create or replace function settlement.add_alert_job(p_id bigint) returns void
language sql as $$
  select null from graphile_worker.add_job('alert', json_build_object('alert_id', p_id), max_attempts => 25, job_key => 'alert:' || p_id)
$$;

-- Opens an alert (and its job, in this transaction) for every new condition
-- and clears the alerts whose condition is gone. Run by the crontab's watch.
create or replace function settlement.detect_alerts(p_only text[] default null)
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
    update settlement.alerts a set cleared_at = settlement_meta.now()
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

create or replace function settlement.alert_to_send(p_id bigint)
returns table (id bigint, key text, message text, sent boolean, cleared boolean)
language plpgsql stable as $$
begin
  return query select a.id, a.key, a.message, a.sent_at is not null, a.cleared_at is not null from settlement.alerts a where a.id = p_id;
  if not found then
    perform settlement.raise_error('ST041', format('alert %s does not exist', p_id));
  end if;
end $$;

create or replace function settlement.alert_sent(p_id bigint, p_error text default null) returns void
language sql as $$
  update settlement.alerts set sent_at = case when p_error is null then coalesce(sent_at, settlement_meta.now()) else sent_at end,
                               send_error = left(p_error, 500)
  where id = p_id
$$;

------------------------------------------------------------------------------
-- Revealing one account on purpose (issue 23). Every page, alert and log line
-- shows an account as ****1234 (settlement.mask_account); an operator who
-- needs the full number of one of them asks for it here, with a reason, and
-- the asking is audited (operator_actions: who, when, why, which account).
-- p_ref: what a person reads, '****1234' (or '1234'); the account number or
-- its FinAcno ends in those digits. When several do, p_transfer (the accounts
-- of that transfer) and p_role (loan, settlement, corporate) narrow it.
create or replace function settlement.reveal_account(p_ref text, p_reason text default null, p_transfer bigint default null, p_role text default null)
returns table (account_no text, role text, bank_code text, fin_acno text)
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(p_reason);
  v_last4 text;
  v_n integer;
  a settlement.accounts;
begin
  if v_reason is null then
    perform settlement.raise_error('ST040', 'reveal_account: a reason is required (say why you need the full number)');
  end if;
  v_last4 := substring(btrim(coalesce(p_ref, '')) from '^\*{0,30}([0-9]{4})$');
  if v_last4 is null then
    perform settlement.raise_error('ST080', format('reveal_account: name the account as it is shown, **** and its last four digits (e.g. ****1234); got %s',
                                                  coalesce(quote_literal(settlement.mask_account(left(p_ref, 40))), 'null')));
  end if;
  if p_role is not null and p_role not in ('loan', 'settlement', 'corporate') then
    perform settlement.raise_error('ST080', format('reveal_account: a role is loan, settlement or corporate; got %s', quote_literal(left(p_role, 40))));
  end if;
  if p_transfer is not null and not exists (select 1 from settlement.transfers t where t.id = p_transfer) then
    perform settlement.raise_error('ST008', format('reveal_account: transfer %s does not exist', p_transfer));
  end if;
  select count(*)::int into v_n from settlement.accounts x
  where (right(x.account_no, 4) = v_last4 or right(x.fin_acno, 4) = v_last4)
    and (p_role is null or x.role::text = p_role)
    and (p_transfer is null or x.account_no in (select t.from_account from settlement.transfers t where t.id = p_transfer
                                                union all select t.to_account from settlement.transfers t where t.id = p_transfer));
  if v_n = 0 then
    perform settlement.raise_error('ST081', format('reveal_account: no %saccount%s ends in %s', coalesce(p_role || ' ', ''), coalesce(' of transfer ' || p_transfer, ''), v_last4));
  elsif v_n > 1 then
    perform settlement.raise_error('ST082', format('reveal_account: %s %saccounts%s end in %s; name the transfer it is shown with and its role (settle reveal --transfer N --role R)',
                                                  v_n, coalesce(p_role || ' ', ''), coalesce(' of transfer ' || p_transfer, ''), v_last4));
  end if;
  select x.* into a from settlement.accounts x
  where (right(x.account_no, 4) = v_last4 or right(x.fin_acno, 4) = v_last4)
    and (p_role is null or x.role::text = p_role)
    and (p_transfer is null or x.account_no in (select t.from_account from settlement.transfers t where t.id = p_transfer
                                                union all select t.to_account from settlement.transfers t where t.id = p_transfer));
  -- The audit names the account in full (who saw which number); what shows the audit masks it.
  perform settlement.audit('reveal_account', jsonb_strip_nulls(jsonb_build_object('ref', '****' || v_last4, 'transfer', p_transfer, 'role', p_role)),
                           jsonb_build_object('account_no', a.account_no, 'role', a.role), v_reason);
  return query select a.account_no, a.role::text, a.bank_code, a.fin_acno;
end $$;
comment on function settlement.reveal_account is 'Operator: the full account number (and FinAcno) of the one account shown as ****1234, on purpose: a reason is required (ST040) and the reveal is audited (operator_actions, action reveal_account). ST080 malformed reference or role, ST081 no such account, ST082 several (name the transfer and the role), ST008 unknown transfer.';
