-- One clock for the SQL (issue 20). Every time the logic decides by
-- (sql/logic/*: the business date, Tsymd, leases, statement finality, grace
-- periods, alert thresholds) and every column default it later compares is
-- read through settlement_meta.now(). In every real database it is
-- pg_catalog.now(): language sql, stable, no SET clause, so the planner
-- inlines it and it costs nothing. Its one text lives in
-- sql/logic/10_support.sql (re-applied by `settle migrate`); it is also
-- created here, identically, because the column defaults below need it
-- before the logic is applied on a new database.
--
-- Not a back door: it reads no table and no setting (no GUC any session can
-- SET), so the only way to change what it answers is to replace the function,
-- which only its owner (the migrating role, the database owner) can do.
-- settlement_meta grants the application roles USAGE only, never CREATE, and
-- none of them owns anything in it (test/clock-guard.test.ts tries each
-- role). The schedule explorer (test/explore/) replaces it in its own scratch
-- database, as that database's owner, to move the business time.
create or replace function settlement_meta.now() returns timestamptz
language sql stable parallel safe as $$ select pg_catalog.now() $$;
comment on function settlement_meta.now() is
  'The SQL''s one clock: pg_catalog.now() (only the owner can replace it; a test database may, to move business time).';

alter table settlement.config
  alter column updated_at set default settlement_meta.now();
alter table settlement.limits
  alter column updated_at set default settlement_meta.now();
alter table settlement.ops_settings
  alter column updated_at set default settlement_meta.now();
alter table settlement.accounts
  alter column created_at set default settlement_meta.now();
alter table settlement.bank_codes
  alter column updated_at set default settlement_meta.now();
alter table settlement.days
  alter column created_at set default settlement_meta.now();
alter table settlement.stage_runs
  alter column updated_at set default settlement_meta.now();
alter table settlement.accruals
  alter column created_at set default settlement_meta.now();
alter table settlement.entries
  alter column created_at set default settlement_meta.now();
alter table settlement.transfers
  alter column created_at set default settlement_meta.now(),
  alter column updated_at set default settlement_meta.now();
alter table settlement.transfer_attempts
  alter column at set default settlement_meta.now();
alter table settlement.workers
  alter column started_at set default settlement_meta.now(),
  alter column last_beat set default settlement_meta.now();
alter table settlement.rejected_jobs
  alter column at set default settlement_meta.now();
alter table settlement.journal_entries
  alter column posted_at set default settlement_meta.now();
alter table settlement.statement_reads
  alter column read_at set default settlement_meta.now();
alter table settlement.statement_lines
  alter column read_at set default settlement_meta.now();
alter table settlement.breaks
  alter column detected_at set default settlement_meta.now();
alter table settlement.line_matches
  alter column matched_at set default settlement_meta.now();
alter table settlement.operator_actions
  alter column at set default settlement_meta.now();
alter table settlement.pauses
  alter column paused_at set default settlement_meta.now();
alter table settlement.alerts
  alter column detected_at set default settlement_meta.now();
