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
  perform settlement.release_dead_pool(d) from unnest(v_dead) d;
  return v_dead;
end $$;
comment on function settlement.recover_dead_workers is 'Unlocks the jobs and claims of worker pools whose heartbeat stopped.';

-- Frees everything a worker pool held: its graphile-worker jobs and transfer
-- claims, and its heartbeat row (its bank-call slots are session locks of its
-- desk's connection: they go with it). release_pool is called by the pool's
-- own process (its stop, a runner it replaced after losing the database),
-- with its holder string ("<pool>#<secret>", 50_transfers.sql): a claim is
-- freed only with the string that took it, so knowing a pool's id (it is in
-- graphile_worker.jobs.locked_by) frees no claim. release_dead_pool is
-- recover_dead_workers' (a pool whose process stopped beating cannot say its
-- secret). Neither lowers a claim's bound (sent_until): whatever claims the
-- transfer next keeps it (open_until), so no retry or decision treats a
-- request of the freed attempt as over before its lease ends.
create or replace function settlement.release_pool(p_holder text) returns void
language plpgsql as $$
declare
  v_pool text := settlement.holder_pool(p_holder);
begin
  perform graphile_worker.force_unlock_workers(array[v_pool]);
  update settlement.transfers set claimed_until = null
  where claimed_by = v_pool and claim_key = settlement.holder_key(p_holder) and state = 'sending';
  delete from settlement.workers where pool_id = v_pool;
end $$;
comment on function settlement.release_pool is 'Worker: frees the jobs and heartbeat of its own pool and the transfer claims it took (only with the holder string "<pool>#<secret>" that took them).';

create or replace function settlement.release_dead_pool(p_pool_id text) returns void
language plpgsql as $$
begin
  perform graphile_worker.force_unlock_workers(array[p_pool_id]);
  update settlement.transfers set claimed_until = null where claimed_by = p_pool_id and state = 'sending';
  delete from settlement.workers where pool_id = p_pool_id;
end $$;
comment on function settlement.release_dead_pool is 'Internal (recover_dead_workers): frees the jobs, transfer claims and heartbeat row of a pool whose process stopped beating.';

create or replace function settlement.reject_job(p_job_id bigint, p_task text, p_payload jsonb, p_code text, p_error text) returns void
language sql as $$
  insert into settlement.rejected_jobs (job_id, task, payload, code, error) values (p_job_id, p_task, p_payload, p_code, left(p_error, 1000))
$$;
