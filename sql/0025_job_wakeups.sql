-- Reconcile tasks run one at a time. A job key does not stop a second job
-- while the first is locked (graphile-worker adds a new one), so concurrent
-- reconcile tasks each read the same unread statements from the bank (in the
-- demo, five tasks read the same 309 statements) and then find each other's
-- stages busy. A named queue runs its jobs serially, across every worker: a
-- reconcile job added while one runs waits for it and then finds the
-- statements read. The crontab's reconcile entry uses the same queue
-- (add_reconcile_job, at the end).

-- A wake-up is never lost to a race inside graphile-worker's add_job.
-- add_jobs first clears the key of a job with that key that is already
-- locked, then inserts with ON CONFLICT (key) DO UPDATE ... WHERE locked_at
-- is null. When a worker locks the keyed job between those two statements
-- (its get_job transaction holds the row, the insert waits for it, then finds
-- it locked), add_job neither inserts nor updates and returns no job: the
-- job that now runs may read the world before this transaction commits (a
-- pay stage that does not yet see the fin-account this registration
-- records), and nothing would run after it. Seen in the demo: a kind's pay
-- stage waited for fin-accounts that were all registered. When add_job
-- returns no job, a job without a key is added: it runs after the locked one
-- (finding the stage busy meanwhile, it retries).
create or replace function settlement.add_stage_job(p_stage settlement.stage, p_date date, p_kind settlement.kind, p_run_at timestamptz default null)
returns void
language plpgsql as $$
declare
  v_payload json := json_build_object('stage', p_stage, 'date', p_date, 'kind', p_kind);
  v_id bigint;
begin
  select j.id into v_id
  from graphile_worker.add_job('stage', v_payload, run_at => p_run_at, max_attempts => 10,
                               job_key => format('stage:%s:%s:%s', p_stage, p_date, p_kind), job_key_mode => 'replace') j;
  if v_id is null then
    perform graphile_worker.add_job('stage', v_payload, run_at => p_run_at, max_attempts => 10);
  end if;
end $$;

create or replace function settlement.add_reconcile_job(p_run_at timestamptz default null) returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  select j.id into v_id
  from graphile_worker.add_job('reconcile', '{}'::json, queue_name => 'settlement:reconcile', run_at => p_run_at,
                               max_attempts => 25, job_key => 'reconcile', job_key_mode => 'preserve_run_at') j;
  if v_id is null then
    perform graphile_worker.add_job('reconcile', '{}'::json, queue_name => 'settlement:reconcile', run_at => p_run_at, max_attempts => 25);
  end if;
end $$;
