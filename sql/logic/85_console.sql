-- The web console's reads (src/console). It reads the on-call views a viewer
-- already has (day_facts, day_verdicts, verdict, payout_failures, pauses,
-- problems(), retry_preview()) directly; these functions add only what a
-- viewer cannot read otherwise: stage timestamps, payout progress, the audit
-- of a day, reconciliation breaks when that stage is installed, the workers'
-- jobs in hand (graphile-worker's schema is the worker role's alone) and the
-- bank slots in use. Every one only reads. Actions stay the operator functions
-- of 80_operations.sql (retry_day, pause, resume, enqueue_stage), audited there.

-- A time for the console, to the second, in the settlement time zone.
create or replace function settlement.console_time(p timestamptz) returns text
language sql stable as $$
  select to_char(p at time zone c.time_zone, 'YYYY-MM-DD HH24:MI:SS') || ' ' || case c.time_zone when 'Asia/Seoul' then 'KST' else c.time_zone end
  from settlement.config c where c.id and p is not null
$$;

-- The newest business dates that have a settlement day.
create or replace function settlement.console_dates(p_limit integer default 14)
returns table (business_date date)
language sql stable as $$
  select distinct d.business_date from settlement.days d order by 1 desc limit least(greatest(p_limit, 1), 366)
$$;
comment on function settlement.console_dates is 'Console: the newest business dates (at most p_limit, 1..366).';

-- Every stage of a day, per kind, with its times and detail.
create or replace function settlement.console_stages(p_date date)
returns table (kind settlement.kind, stage settlement.stage, state text, runs integer, started_at text, finished_at text, updated_at text, detail text)
language sql stable as $$
  select r.kind, r.stage, r.state::text, r.runs, settlement.console_time(r.started_at), settlement.console_time(r.finished_at),
         settlement.console_time(r.updated_at), r.detail
  from settlement.stage_runs r where r.business_date = p_date order by r.kind, r.stage
$$;
comment on function settlement.console_stages is 'Console: each stage of a business date per kind: state, runs, started / finished / updated (settlement time zone), detail.';

-- Payout progress of a day per kind: succeeded chunks and KRW paid, cumulative,
-- over time (at most 60 points per kind). seconds: since the kind's first payout.
create or replace function settlement.console_progress(p_date date)
returns table (kind settlement.kind, seconds double precision, at text, chunks bigint, amount bigint)
language sql stable as $$
  with s as (
    select t.kind, t.settled_at, t.amount from settlement.transfers t
    where t.business_date = p_date and t.purpose = 'payout' and t.state = 'succeeded'),
  b as (select s.kind, min(s.settled_at) as t0, max(s.settled_at) as t1 from s group by s.kind),
  x as (
    select s.kind, width_bucket(extract(epoch from s.settled_at)::float8, extract(epoch from b.t0)::float8, extract(epoch from b.t1)::float8 + 0.001, 60) as bucket,
           count(*) as n, sum(s.amount) as a, max(s.settled_at) as at
    from s join b on b.kind = s.kind group by 1, 2)
  select x.kind, extract(epoch from x.at - b.t0)::float8, settlement.console_time(x.at),
         (sum(x.n) over w)::bigint, (sum(x.a) over w)::bigint
  from x join b on b.kind = x.kind
  window w as (partition by x.kind order by x.bucket)
  order by x.kind, x.bucket
$$;
comment on function settlement.console_progress is 'Console: per kind, cumulative succeeded payout chunks and KRW over time (<= 60 points).';

-- The operator actions of a business date (args.business_date), or the latest
-- of all (p_date null), newest first.
create or replace function settlement.console_actions(p_date date default null, p_limit integer default 50)
returns table (id bigint, at text, db_user text, application_name text, action text, args jsonb, reason text, result jsonb)
language sql stable as $$
  select a.id, settlement.console_time(a.at), a.db_user, a.application_name, a.action, a.args, a.reason, a.result
  from settlement.operator_actions a
  where p_date is null or a.args ->> 'business_date' = p_date::text
  order by a.id desc limit least(greatest(p_limit, 1), 500)
$$;
comment on function settlement.console_actions is 'Console: operator actions (settlement.operator_actions) of a business date, or the latest ones; newest first.';

-- Reconciliation breaks of a day, when the reconcile stage is installed
-- (settlement.reconciliation_breaks); each as the view's row without the day.
create or replace function settlement.console_breaks(p_date date)
returns table (kind text, line jsonb)
language plpgsql stable as $$
begin
  if to_regclass('settlement.reconciliation_breaks') is null then
    return;
  end if;
  return query execute
    'select b.kind::text, to_jsonb(b) - ''business_date'' - ''kind'' from settlement.reconciliation_breaks b where b.business_date = $1 order by 1'
    using p_date;
exception when undefined_column or undefined_table then
  return;
end $$;
comment on function settlement.console_breaks is 'Console: reconciliation breaks of a business date (none when the reconcile stage is not installed).';

create or replace function settlement.console_workers()
returns table (pool_id text, host text, pid integer, started_at text, age_seconds double precision, alive boolean,
               jobs_locked bigint, tasks text, bank_slots bigint, transfers_claimed bigint)
language sql stable as $$
  select w.pool_id, w.host, w.pid, settlement.console_time(w.started_at), extract(epoch from settlement_meta.now() - w.last_beat)::float8,
         w.last_beat > settlement_meta.now() - o.worker_silent_after,
         (select count(*) from graphile_worker.jobs j where j.locked_by = w.pool_id),
         (select string_agg(x.task_identifier || ' ' || x.n, ', ' order by x.task_identifier)
          from (select j.task_identifier, count(*) as n from graphile_worker.jobs j where j.locked_by = w.pool_id group by 1) x),
         (select count(*) from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.classid = settlement.bank_slot_lock_class() and l.objsubid = 2 and l.objid > 0 and l.granted
            and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
            and a.application_name = 'settle-worker:' || w.pid),
         (select count(*) from settlement.transfers t where t.claimed_by = w.pool_id and t.state = 'sending' and t.claimed_until > settlement_meta.now())
  from settlement.workers w cross join settlement.ops_settings o
  where o.id
  order by w.started_at, w.pool_id
$$;
comment on function settlement.console_workers is 'Console: registered workers with heartbeat age, alive (ops_settings.worker_silent_after), jobs locked (by task), bank slots and transfer claims held.';

------------------------------------------------------------------------------
-- What the console shows: slots in use from the lock table; per worker, the
-- slots held by its connections (application_name settle-worker:<pid>).
create or replace function settlement.console_bank()
returns table (in_use bigint, max_in_flight integer, per_call_limit bigint, time_zone text)
language sql stable as $$
  select settlement.bank_slots_in_use(), c.max_in_flight, c.per_call_limit, c.time_zone
  from settlement.config c where c.id
$$;
comment on function settlement.console_bank is 'Console: bank-call slots in use (leases not expired) against max_in_flight, and the shared settings.';

-- The Changes page (/changes): pending proposals, then the latest decided and
-- expired ones, newest first, with times in the settlement time zone and how
-- long ago each was proposed / how long until it expires (the database's
-- clock). Reads settlement.changes, so it is the operators' (the rows hold
-- account numbers and FinAcnos; the page masks them).
create or replace function settlement.console_changes(p_limit integer default 50)
returns table (id bigint, target text, state text, needs_two boolean, change jsonb, reason text, before jsonb, after jsonb,
               proposed_by text, proposed_at text, age_seconds double precision, expires_at text, expires_in_seconds double precision,
               decided_by text, decided_at text, decision_reason text)
language sql stable as $$
  select c.id, c.target,
         case when c.state = 'pending' and c.expires_at <= settlement_meta.now() then 'expired' else c.state end,
         c.needs_two, c.change, c.reason, c.before, c.after, c.proposed_by, settlement.console_time(c.proposed_at),
         extract(epoch from settlement_meta.now() - c.proposed_at)::float8, settlement.console_time(c.expires_at),
         extract(epoch from c.expires_at - settlement_meta.now())::float8,
         c.decided_by, settlement.console_time(c.decided_at), c.decision_reason
  from settlement.changes c
  order by (c.state = 'pending' and c.expires_at > settlement_meta.now()) desc, c.id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 500)
$$;
comment on function settlement.console_changes is 'Console: changes of the reference data, pending first, then the latest decided or expired; times in the settlement time zone, age and time to expiry in seconds.';
