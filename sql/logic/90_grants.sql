-- Who may call what: the one table of role -> functions, applied after every
-- other logic file (create or replace resets a function's security definer
-- and search_path, so they are set here, every time).
--
-- Every function listed runs as SECURITY DEFINER (as the owner, the migrating
-- role) with a fixed search_path (pg_catalog first, never public), except the
-- pure helpers in v_invoker; the '(owner only)' row lists definer functions no
-- role calls directly (trigger functions, the audited functions' originals).
-- Execute is taken from PUBLIC and from every role first: a function not in
-- this table is the owner's alone, and a line removed here is a grant revoked.
--
-- They also run with jit = off (and so does everything they call). The SQL
-- is OLTP on small sets, but its plans can look expensive: the batch
-- functions set enable_seqscan = off, which adds disable_cost (1e10) to any
-- scan of a small table, and set-returning functions are estimated at 1,000
-- rows. Above jit_above_cost a server built with LLVM (Debian's PostgreSQL
-- 15 here; not the embedded one) compiles the query first: 100-300 ms a call
-- for claim_transfers, statements_to_read and reconcile's break detection,
-- measured in the schedule explorer on PG15, against a few ms without.
do $$
declare
  v_invoker constant text[] := array['is_in(text)', 'bank_time(text)'];
  v_roles constant text[] := array['settlement_ingest', 'settlement_viewer', 'settlement_operator', 'settlement_worker'];
  r record;
  f text;
begin
  execute format('revoke all on all functions in schema settlement from public, %s', array_to_string(v_roles, ', '));
  for r in
    select * from (values
    ('settlement_ingest', array[
      'accrue(text, text, settlement.kind, bigint, timestamptz)',
      'add_loan_account(text, text, text)']),
    ('settlement_viewer', array[
      'bank_slots_in_use()',
      'bank_time(text)',
      'bank_windows_ahead()',
      'break_counts()',
      'console_actions(date, integer)',
      'console_bank()',
      'console_breaks(date)',
      'console_dates(integer)',
      'console_progress(date)',
      'console_stages(date)',
      'console_workers()',
      'history(integer)',
      'is_in(text)',
      'iso_time(timestamptz)',
      'journal_export_page(date, date, bigint, integer, integer)',
      'krw(bigint)',
      'local_time(timestamptz)',
      'mask_account(text)',
      'mask_json(jsonb)',
      'open_days()',
      'payee_changes()',
      'problems()',
      'restore_unexplained()',
      'retry_preview(date, settlement.kind)',
      'statement_final_by(date, settlement.kind)',
      'today()',
      'undecided_why(settlement.transfers)',
      'worker_status()']),
    ('settlement_operator', array[
      'add_bank_window(timestamptz, timestamptz, text)',
      'after_restore(text)',
      'approve_change(bigint, text)',
      'change_list(boolean, integer)',
      'console_changes(integer)',
      'configure(text, bigint, integer)',
      'configure_bank_window(time, time, text)',
      'configure_reconcile(interval)',
      'configure_statement_checks(interval, interval)',
      'configure_statement_watch(interval)',
      'decide_transfer(bigint, boolean, text)',
      'enqueue_stage(settlement.stage, date, settlement.kind)',
      'is_in(text)',
      'pause(settlement.kind, text)',
      'post_journal(date, settlement.kind, text, text, jsonb, text)',
      'record_statement(text, text, text, text, jsonb, timestamptz)',
      'propose_change(text, jsonb, text)',
      'reject_change(bigint, text)',
      'remove_bank_window(bigint, text)',
      'resolve_break(bigint, text)',
      'restore_statements()',
      'restore_statements_read(bigint)',
      'resume(settlement.kind)',
      'retry_day(date, settlement.kind)',
      'retry_failed(date, settlement.kind)',
      'reveal_account(text, text, bigint, text)',
      'run_stage(settlement.stage, date, settlement.kind)']),
    ('settlement_worker', array[
      'adopt_settings(text, bigint, integer)',
      'alert_sent(bigint, text)',
      'alert_to_send(bigint)',
      'bank_slots_in_use()',
      'break_counts()',
      'claim_transfers(bigint[], text[], integer, integer, integer[], integer)',
      'day_metrics(integer)',
      'decide_unresolved()',
      'detect_alerts(text[])',
      'fin_registration(text)',
      'finish_transfers(bigint[], text[], text[], text[], text[], text[], integer[], bigint[])',
      'give_bank_slots(integer[])',
      'krw(bigint)',
      'local_time(timestamptz)',
      'match_watch()',
      'open_days()',
      'problems()',
      'record_fin_account(text, text, text, text)',
      'record_fin_rgno(text, text)',
      'record_stage_error(settlement.stage, date, settlement.kind, text)',
      'record_statement(text, text, text, text, jsonb, timestamptz)',
      'recover_dead_workers(integer)',
      'reject_job(bigint, text, jsonb, text, text)',
      'release_pool(text)',
      'requeue_unsettled()',
      'run_stage(settlement.stage, date, settlement.kind)',
      'statement_final_by(date, settlement.kind)',
      'statements_to_read()',
      'take_bank_slots(integer, integer[])',
      'worker_beat(text, text, integer)',
      'worker_gone(text)',
      'worker_heartbeats()',
      'worker_status()']),
    (null, array[
      'accounts_enqueue_registration()',
      'configure_unaudited(text, bigint, integer)',
      'ops_settings_audit()',
      'post_journal_unaudited(date, settlement.kind, text, text, jsonb, text)'])
    ) as api(role, functions)
  loop
    foreach f in array r.functions loop
      if not f = any (v_invoker) then
        execute format('alter function settlement.%s security definer set search_path = pg_catalog, settlement, graphile_worker set jit = off', f);
      end if;
      if r.role is not null then
        execute format('grant execute on function settlement.%s to %I', f, r.role);
      end if;
    end loop;
  end loop;
end $$;

-- The views (re-created by the files before this one).
grant select on settlement.bank_vs_statement, settlement.daily_status, settlement.day_facts, settlement.day_verdicts,
  settlement.day_report, settlement.day_report_kinds, settlement.journal_export, settlement.ledger_balances, settlement.payout_failures, settlement.reconcile_scope, settlement.reconciliation_breaks,
  settlement.verdict, settlement.watch_scope to settlement_viewer;
grant select on settlement.bank_vs_statement, settlement.daily_status, settlement.ledger_balances,
  settlement.payout_failures, settlement.reconcile_scope, settlement.reconciliation_breaks, settlement.watch_scope to settlement_operator;
grant select on settlement.day_facts, settlement.day_verdicts, settlement.reconciliation_breaks, settlement.verdict to settlement_worker;
