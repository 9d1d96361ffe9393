-- Worker processes: heartbeats, crash recovery of jobs held by dead
-- processes, the shared settings a worker adopts, rejected jobs.

create or replace function settlement.adopt_settings(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer)
returns table (setting text, in_database text, in_environment text)
language plpgsql as $$
declare
  c settlement.config;
begin
  select * into c from settlement.config where id for update;
  if not c.configured then
    perform settlement.configure(p_time_zone, p_per_call_limit, p_max_in_flight);
    update settlement.config set configured = true where id;
    return;
  end if;
  return query
    select x.s, x.db, x.env from (values
      ('SETTLEMENT_TIMEZONE', c.time_zone, p_time_zone),
      ('BANK_PER_CALL_LIMIT', c.per_call_limit::text, p_per_call_limit::text),
      ('BANK_MAX_IN_FLIGHT', c.max_in_flight::text, p_max_in_flight::text)) x(s, db, env)
    where x.db is distinct from x.env;
end $$;
comment on function settlement.adopt_settings is 'Worker/migrate: writes the settings the SQL needs if they were never set; otherwise returns every setting where the caller''s environment differs from the database.';

------------------------------------------------------------------------------
-- Crash recovery: workers beat; the jobs of a pool that stopped beating are
-- unlocked (graphile-worker alone would keep them locked for 4 hours), and its
-- bank slots and chunk claims are released.
create or replace function settlement.worker_beat(p_pool_id text, p_host text, p_pid integer) returns void
language sql as $$
  insert into settlement.workers (pool_id, host, pid) values (p_pool_id, p_host, p_pid)
  on conflict (pool_id) do update set last_beat = settlement_meta.now()
$$;

create or replace function settlement.worker_gone(p_pool_id text) returns void
language sql as $$ delete from settlement.workers where pool_id = p_pool_id $$;

create or replace function settlement.recover_dead_workers(p_dead_after_ms integer) returns text[]
language plpgsql as $$
declare
  v_dead text[];
begin
  select coalesce(array_agg(pool_id), '{}') into v_dead
  from settlement.workers where last_beat < settlement_meta.now() - make_interval(secs => p_dead_after_ms / 1000.0);
  -- Also pools that hold jobs but never registered or were already removed.
  select coalesce(array_agg(distinct x), '{}') into v_dead from (
    select unnest(v_dead) as x
    union
    select j.locked_by from graphile_worker.jobs j
    where j.locked_by is not null and j.locked_at < settlement_meta.now() - make_interval(secs => p_dead_after_ms / 1000.0)
      and not exists (select 1 from settlement.workers w where w.pool_id = j.locked_by)
  ) t;
  perform settlement.release_pool(d) from unnest(v_dead) d;
  return v_dead;
end $$;
comment on function settlement.recover_dead_workers is 'Unlocks the jobs and claims of worker pools whose heartbeat stopped.';

-- Frees everything a worker pool held: its graphile-worker jobs and transfer
-- claims, and its heartbeat row (its bank-call slots are session locks of its
-- desk's connection: they go with it). For a pool that died, or a pool
-- a live process replaced after losing the database.
create or replace function settlement.release_pool(p_pool_id text) returns void
language plpgsql as $$
begin
  perform graphile_worker.force_unlock_workers(array[p_pool_id]);
  update settlement.transfers set claimed_until = null where claimed_by = p_pool_id and state = 'sending';
  delete from settlement.workers where pool_id = p_pool_id;
end $$;
comment on function settlement.release_pool is 'Worker: frees the jobs and transfer claims of one worker pool.';

create or replace function settlement.reject_job(p_job_id bigint, p_task text, p_payload jsonb, p_code text, p_error text) returns void
language sql as $$
  insert into settlement.rejected_jobs (job_id, task, payload, code, error) values (p_job_id, p_task, p_payload, p_code, left(p_error, 1000))
$$;
