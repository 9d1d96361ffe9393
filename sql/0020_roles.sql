-- Least privilege. Four NOLOGIN roles, granted to login roles by the DBA
-- (README "Roles"): tables are written only through functions, and no
-- application role can update or delete history.
--
--   settlement_ingest    accrue() and nothing else
--   settlement_viewer    the views
--   settlement_operator  viewer + the operator functions, the bank code table,
--                        the limits, reference data (accounts, contracts, kinds)
--   settlement_worker    what worker processes call, and graphile-worker's schema
--
-- The functions these roles may call run as SECURITY DEFINER (as the owner,
-- the migrating role) with a fixed search_path (pg_catalog first, never
-- public); every other function is executable by the owner alone. Roles are
-- cluster-wide: they are created once and reused by every database.

do $$
declare
  r text;
begin
  foreach r in array array['settlement_ingest', 'settlement_viewer', 'settlement_operator', 'settlement_worker'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin', r);
    end if;
  end loop;
end $$;

revoke all on all tables in schema settlement from public;
revoke all on all sequences in schema settlement from public;
revoke all on all functions in schema settlement from public;
revoke all on schema settlement from public;
alter default privileges in schema settlement revoke execute on functions from public;

grant usage on schema settlement to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;
grant usage on schema settlement_meta to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;
grant select on settlement_meta.migrations to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;

-- The API: definer functions with a fixed search_path.
create function settlement.grant_api(p_role text, p_functions text[]) returns void
language plpgsql as $$
declare
  f text;
begin
  foreach f in array p_functions loop
    execute format('alter function settlement.%s security definer set search_path = pg_catalog, settlement, graphile_worker', f);
    execute format('grant execute on function settlement.%s to %I', f, p_role);
  end loop;
end $$;

select settlement.grant_api('settlement_ingest', array[
  'accrue(text, text, settlement.kind, bigint, timestamptz)']);

grant select on settlement.daily_status, settlement.payout_failures, settlement.ledger_balances to settlement_viewer;
select settlement.grant_api('settlement_viewer', array['today()', 'open_days()']);

grant settlement_viewer to settlement_operator;
grant select on all tables in schema settlement to settlement_operator;
grant insert, update, delete on settlement.bank_codes to settlement_operator;
grant update on settlement.limits to settlement_operator;
grant insert, update on settlement.accounts, settlement.contracts, settlement.kind_accounts to settlement_operator;
select settlement.grant_api('settlement_operator', array[
  'enqueue_stage(settlement.stage, date, settlement.kind)',
  'retry_failed(date, settlement.kind)',
  'run_stage(settlement.stage, date, settlement.kind)',
  'configure(text, bigint, integer)',
  'post_journal(date, settlement.kind, text, text, jsonb, text)']);
-- Inserting a loan account enqueues its registration job, as the owner.
alter function settlement.accounts_enqueue_registration() security definer set search_path = pg_catalog, settlement, graphile_worker;

grant select on settlement.bank_codes, settlement.config to settlement_worker;
select settlement.grant_api('settlement_worker', array[
  'run_stage(settlement.stage, date, settlement.kind)',
  'open_days()',
  'claim_transfer(bigint, text, integer, text, integer)',
  'finish_transfer(bigint, text, text, text, text, text, integer, text)',
  'acquire_bank_slot(text, integer)',
  'release_bank_slot(integer, text)',
  'fin_registration(text)',
  'record_fin_rgno(text, text)',
  'record_fin_account(text, text, text)',
  'record_stage_error(settlement.stage, date, settlement.kind, text)',
  'reject_job(bigint, text, jsonb, text, text)',
  'adopt_settings(text, bigint, integer)',
  'requeue_unsettled()',
  'worker_beat(text, text, integer)',
  'worker_gone(text)',
  'recover_dead_workers(integer)',
  'release_pool(text)']);
-- graphile-worker runs inside the worker processes: its own schema, all of it.
grant usage on schema graphile_worker to settlement_worker;
grant select, insert, update, delete on all tables in schema graphile_worker to settlement_worker;
grant usage, select on all sequences in schema graphile_worker to settlement_worker;
grant execute on all functions in schema graphile_worker to settlement_worker;

drop function settlement.grant_api(text, text[]);
