-- Reconcile tasks run one at a time. A job key does not stop a second job
-- while the first is locked (graphile-worker adds a new one), so concurrent
-- reconcile tasks each read the same unread statements from the bank (in the
-- demo, five tasks read the same 309 statements) and then find each other's
-- stages busy. A named queue runs its jobs serially, across every worker: a
-- reconcile job added while one runs waits for it and then finds the
-- statements read. The crontab's reconcile entry uses the same queue.
create or replace function settlement.add_reconcile_job(p_run_at timestamptz default null) returns void
language sql as $$
  select null from graphile_worker.add_job('reconcile', '{}'::json, queue_name => 'settlement:reconcile', run_at => p_run_at,
                                           max_attempts => 25, job_key => 'reconcile', job_key_mode => 'preserve_run_at')
$$;
