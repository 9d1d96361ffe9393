-- daily-settlement: the schema — types, tables, indexes, constraints,
-- reference rows and roles. Functions, views and triggers are not here: they
-- live in sql/logic/ (re-applied by `settle migrate` whenever they change).
--
-- This baseline is the whole of the migration chain 0001–0031 as of 55ec6ef,
-- squashed (scripts/compare-schema proves it). A later file in sql/schema/ is
-- for schema and data changes only: it never calls a logic function, and a
-- signature change drops the old function here (`drop function if exists`:
-- on a new database the logic is applied after every schema file).
-- Errors raised on purpose use SQLSTATE class 'ST' (registry in README.md).

create schema settlement;
comment on schema settlement is 'daily-settlement: ledger, stages and operator API';

create type settlement.kind as enum (
  'tax', 'platform_fee', 'early_repayment_fee', 'deferred_fee', 'upfront_fee', 'withdrawal_fee'
);
create type settlement.stage as enum ('record', 'pay', 'confirm', 'withdraw', 'reconcile');
create type settlement.account_role as enum ('loan', 'settlement', 'corporate');
create type settlement.stage_state as enum ('pending', 'running', 'blocked', 'done');
create type settlement.transfer_state as enum ('pending', 'sending', 'succeeded', 'failed');
create type settlement.transfer_purpose as enum ('payout', 'withdrawal');

-- What run_stage answers: a named outcome and a detail.
create type settlement.stage_result as (outcome text, detail text);

-- What a transfer task should do, decided in one statement under the row lock:
--   settled : it already has its result;  busy : another live attempt holds it;
--   send    : call the bank under is_tuno. resume = an earlier attempt may have
--             reached the bank (ask first); sendable = the database's KST date is
--             still the transfer's Tsymd (otherwise only ask, never send).
create type settlement.transfer_claim as (
  action text, resume boolean, sendable boolean, transfer_id bigint, purpose settlement.transfer_purpose,
  is_tuno text, tsymd text, memo text, fintech_apsno text, fin_acno text, to_bncd text, to_account text,
  amount bigint, business_date date, kind settlement.kind, attempt integer, slot integer
);

------------------------------------------------------------------------------
-- Settings

-- Settings the SQL side needs (one row). Written once — by the first
-- `settle migrate` or worker that finds it unset (configured = false) — and
-- afterwards only by an operator (`settle configure`, settlement.configure).
-- A worker whose environment says otherwise is refused, naming each
-- difference, instead of silently rewriting everyone's settings.
create table settlement.config (
  id boolean primary key default true check (id),
  time_zone text not null default 'Asia/Seoul',
  per_call_limit bigint not null default 100000 check (per_call_limit > 0),
  max_in_flight integer not null default 50 check (max_in_flight > 0),
  updated_at timestamptz not null default now(),
  reconcile_after interval not null default '2 hours',
  configured boolean not null default false
);
insert into settlement.config default values;
comment on column settlement.config.reconcile_after is
  'A date''s statement is final at the end of that date in KST plus this grace (NH books late-night requests after midnight). Negative values only for a simulator, whose statement is final at once.';

-- Limits (one row; operators change it with SQL, it is read at every call)
create table settlement.limits (
  id boolean primary key default true check (id),
  -- one accrual may not exceed this (10 billion KRW by default)
  max_accrual_amount bigint not null default 10000000000 check (max_accrual_amount > 0),
  -- an accrual's business date must lie within [today - days_back, today + days_ahead] (the database's today)
  accrual_days_back integer not null default 31 check (accrual_days_back between 0 and 3660),
  accrual_days_ahead integer not null default 1 check (accrual_days_ahead between 0 and 366),
  -- pay refuses to create more payout chunks than this for one (day, kind)
  max_chunks_per_day integer not null default 200000 check (max_chunks_per_day > 0),
  updated_at timestamptz not null default now()
);
insert into settlement.limits default values;
comment on table settlement.limits is
  'Operator limits: the largest accrual, how far back/ahead an accrual''s date may be from the database''s today, and the most payout chunks one (day, kind) may have.';

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

------------------------------------------------------------------------------
-- Accounts at NH
--
-- NH fixes a DrawingTransfer's destination and a ReceivedTransfer's source by
-- contract: a kind's settlement account is the contracted account of one NH
-- app (FintechApsno). A payout is a DrawingTransfer from the loan account's
-- fin-account under that app; the withdrawal is a ReceivedTransfer from the
-- app's contracted account to the corporate account (Bncd + Acno).

-- A loan account's fin-account is issued by registration (OpenFinAccountDirect
-- -> Rgno -> CheckOpenFinAccountDirect -> FinAcno). Only loan accounts are
-- paid from by fin-account.
create table settlement.accounts (
  account_no text primary key check (account_no ~ '^[0-9]{6,20}$'),
  role settlement.account_role not null,
  bank_code text not null default '011' check (bank_code ~ '^[0-9]{3}$'),
  holder text not null default '',
  created_at timestamptz not null default now(),
  fin_rgno text check (fin_rgno ~ '^[0-9]{1,20}$'),
  fin_acno text unique check (fin_acno ~ '^[0-9]{1,30}$'),
  fin_registered_on text check (fin_registered_on ~ '^[0-9]{8}$'),
  unique (account_no, role),
  constraint accounts_fin_acno_loan check (fin_acno is null or role = 'loan')
);
comment on table settlement.accounts is 'Bank accounts known to settlement: loan accounts (sources), settlement and corporate accounts.';
comment on column settlement.accounts.bank_code is 'NH Bncd of the account (011 NH Bank, 012 NH cooperatives, other codes: other banks).';
comment on column settlement.accounts.fin_acno is 'FinAcno issued by NH for this loan account (null until registered).';

-- One contracted account per NH app (Iscd + FintechApsno). Several kinds may
-- share one app and so one settlement account; the ledger still keeps kinds apart.
create table settlement.contracts (
  fintech_apsno text primary key check (fintech_apsno ~ '^[0-9]{3}$'),
  settlement_account text not null,
  settlement_role settlement.account_role not null default 'settlement' check (settlement_role = 'settlement'),
  foreign key (settlement_account, settlement_role) references settlement.accounts (account_no, role),
  unique (fintech_apsno, settlement_account)
);
comment on table settlement.contracts is 'NH apps (FintechApsno) and the contracted account each one fixes: the destination of its DrawingTransfers and the source of its ReceivedTransfers.';

-- kind -> settlement account (its app's contracted account) and corporate
-- account. The role columns let a composite foreign key check that each side
-- has the right role.
create table settlement.kind_accounts (
  kind settlement.kind primary key,
  settlement_account text not null,
  settlement_role settlement.account_role not null default 'settlement' check (settlement_role = 'settlement'),
  corporate_account text not null,
  corporate_role settlement.account_role not null default 'corporate' check (corporate_role = 'corporate'),
  fintech_apsno text not null,
  foreign key (settlement_account, settlement_role) references settlement.accounts (account_no, role),
  foreign key (corporate_account, corporate_role) references settlement.accounts (account_no, role),
  constraint kind_accounts_contract_fk foreign key (fintech_apsno, settlement_account)
    references settlement.contracts (fintech_apsno, settlement_account)
);
comment on column settlement.kind_accounts.fintech_apsno is 'The NH app (FintechApsno) whose contracted account is this kind''s settlement account.';

-- Operator knowledge of NH response codes: the only place a non-00000 code
-- means more than "ask the bank"; it ships empty.
create table settlement.bank_codes (
  rpcd text not null check (rpcd ~ '^[0-9A-Za-z]{1,5}$'),
  -- an ApiNm, or '*' for every API
  api text not null default '*' check (api ~ '^(\*|[A-Za-z]{1,100})$'),
  class text not null check (class in ('retry', 'final', 'not_found')),
  note text not null default '',
  updated_at timestamptz not null default now(),
  primary key (rpcd, api)
);
comment on table settlement.bank_codes is
  'What a non-00000 Rpcd means, from the institution''s NH contract documents (NH publishes only 00000). Empty = every other answer is resolved by result check. '
  'retry: not processed, send again under the same IsTuno; final: refused, nothing booked, the transfer fails for good; not_found: (result checks) the bank has no such transaction.';

------------------------------------------------------------------------------
-- Days, stages, accruals, entries

-- One row per (business_date, kind) that has anything to settle.
create table settlement.days (
  business_date date not null,
  kind settlement.kind not null,
  created_at timestamptz not null default now(),
  primary key (business_date, kind)
);

-- State of each stage of each day. Rows are created with the day.
create table settlement.stage_runs (
  business_date date not null,
  kind settlement.kind not null,
  stage settlement.stage not null,
  state settlement.stage_state not null default 'pending',
  runs integer not null default 0,
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  detail text not null default '',
  primary key (business_date, kind, stage),
  foreign key (business_date, kind) references settlement.days
);

create table settlement.accruals (
  id bigint generated always as identity primary key,
  source_ref text not null unique check (length(source_ref) between 1 and 200),
  account_no text not null,
  kind settlement.kind not null,
  amount bigint not null check (amount > 0),
  occurred_at timestamptz not null,
  -- the business date the accrual belongs to, in the settlement time zone
  origin_date date not null,
  -- the day it is recorded with: origin_date, or the next open day when it
  -- arrived after its own day was recorded (it keeps origin_date as its link)
  settle_date date not null,
  created_at timestamptz not null default now(),
  foreign key (account_no) references settlement.accounts (account_no),
  foreign key (settle_date, kind) references settlement.days,
  check (settle_date >= origin_date)
);
-- Covers the record stage's aggregate (an index-only scan once vacuumed).
create index accruals_day_idx on settlement.accruals (settle_date, kind, account_no) include (amount, origin_date);

-- One entry per (day, kind, loan account): the sum of that day's accruals.
-- No foreign keys to accounts and days (the record stage's time went to
-- per-row checks): entries are written only by stage_record (no role may
-- insert them), from that day's accruals, which carry the same two foreign
-- keys; accruals are append-only, so an account or day with an entry always
-- has an accrual holding it.
create table settlement.entries (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  account_no text not null,
  amount bigint not null check (amount > 0),
  accrual_count integer not null check (accrual_count > 0),
  late_count integer not null default 0,
  created_at timestamptz not null default now(),
  unique (business_date, kind, account_no)
);

------------------------------------------------------------------------------
-- Transfers: payout chunks and withdrawals are one thing, with a purpose, one
-- claim and one finish and one task.

-- IsTuno: 18 digits starting with 1 (calls that move no money use 20 digits
-- starting with 9, so the two never meet). Unique for all time; NH needs
-- unique per day.
create sequence settlement.is_tuno_seq;

create table settlement.transfers (
  id bigint generated always as identity primary key,
  purpose settlement.transfer_purpose not null,
  business_date date not null,
  kind settlement.kind not null,
  -- payout: the entry and the chunk's place in it
  entry_id bigint references settlement.entries (id),
  seq integer check (seq > 0),
  -- payout: loan account -> settlement account; withdrawal: settlement -> corporate
  from_account text not null references settlement.accounts (account_no),
  to_account text not null references settlement.accounts (account_no),
  -- the NH app (contract) the transfer goes through
  fintech_apsno text not null references settlement.contracts (fintech_apsno),
  -- payout: the paying fin-account; withdrawal: the receiving Bncd
  fin_acno text check (fin_acno ~ '^[0-9]{1,30}$'),
  to_bncd text check (to_bncd ~ '^[0-9]{3}$'),
  amount bigint not null check (amount > 0),
  state settlement.transfer_state not null default 'pending',
  attempt integer not null default 1 check (attempt > 0),
  is_tuno text not null unique check (is_tuno ~ '^[0-9]{1,20}$'),
  -- printed on the passbooks (DractOtlt/MractOtlt; fits BnprCntn's 20): ties a statement line to this IsTuno
  memo text generated always as ('DS' || is_tuno) stored,
  -- Korean date of the first call under is_tuno (result checks name it as OrtrYmd)
  tsymd text check (tsymd ~ '^[0-9]{8}$'),
  claimed_by text,
  claimed_until timestamptz,
  -- the bank's processing time, YYYYMMDDHHMMSS KST
  processed_at text check (processed_at ~ '^[0-9]{14}$'),
  fail_code text,
  fail_message text,
  -- set while the bank has not told the outcome (a result check that failed)
  unresolved_since timestamptz,
  unresolved_reason text,
  settled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (entry_id, seq),
  foreign key (business_date, kind) references settlement.days,
  constraint transfers_purpose_facts check (
    case purpose
      when 'payout' then entry_id is not null and seq is not null and fin_acno is not null and to_bncd is null
      when 'withdrawal' then entry_id is null and seq is null and fin_acno is null and to_bncd is not null
    end),
  constraint transfers_settled_facts check ((state in ('succeeded', 'failed')) = (settled_at is not null)),
  constraint transfers_succeeded_facts check (state <> 'succeeded' or processed_at is not null),
  constraint transfers_failed_facts check (state <> 'failed' or fail_code is not null),
  constraint transfers_sending_facts check (state not in ('sending', 'succeeded', 'failed') or tsymd is not null),
  constraint transfers_claim_facts check (state = 'sending' or (claimed_by is null and claimed_until is null)),
  constraint transfers_unresolved_facts check (unresolved_since is null or state = 'sending')
);
-- No index names a column that a claim or an outcome changes (state, claims,
-- dates, results), and pages keep room (fillfactor): those updates stay HOT —
-- no index is touched on the payout path.
alter table settlement.transfers set (fillfactor = 70);
-- In id order within a day's kind.
create index transfers_day_id_idx on settlement.transfers (business_date, kind, purpose, id);
create unique index transfers_one_withdrawal on settlement.transfers (business_date, kind) where purpose = 'withdrawal';
comment on table settlement.transfers is 'Every money movement at the bank: payout chunks (DrawingTransfer) and withdrawals (ReceivedTransfer), each under its own IsTuno.';

-- Every settled attempt (a transfer retried under a new IsTuno keeps its old ones here).
create table settlement.transfer_attempts (
  id bigint generated always as identity primary key,
  transfer_id bigint not null references settlement.transfers (id),
  is_tuno text not null,
  tsymd text,
  amount bigint not null check (amount > 0),
  outcome settlement.transfer_state not null check (outcome in ('succeeded', 'failed')),
  code text,
  message text,
  processed_at text,
  at timestamptz not null default now(),
  unique (is_tuno)
);
create index transfer_attempts_transfer_idx on settlement.transfer_attempts (transfer_id);

-- Leased bank-call slots of 0.1 (bank-call slots are session advisory locks
-- now, see sql/logic/45_bank_slots.sql); no longer read.
create table settlement.bank_slots (
  slot integer primary key check (slot > 0),
  holder text,
  lease_until timestamptz
);

------------------------------------------------------------------------------
-- Workers and jobs

-- Worker heartbeats, for crash recovery of jobs held by dead processes.
create table settlement.workers (
  pool_id text primary key,
  host text not null,
  pid integer not null,
  started_at timestamptz not null default now(),
  last_beat timestamptz not null default now()
);

-- Jobs that can never succeed (a payload that does not parse, a transfer that
-- does not exist) are taken off the queue at once and kept here, visible.
create table settlement.rejected_jobs (
  id bigint generated always as identity primary key,
  job_id bigint,
  task text not null,
  payload jsonb,
  code text not null,
  error text not null,
  at timestamptz not null default now()
);
comment on table settlement.rejected_jobs is 'Jobs that failed for good at once: a payload that does not parse, or naming something that does not exist.';

------------------------------------------------------------------------------
-- The double-entry journal. Every journal entry balances (checked per
-- statement from the inserted rows), and posted rows are never updated or
-- deleted: corrections are new entries.

create table settlement.journal_entries (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  event text not null,
  ref text not null,
  memo text not null default '',
  posted_at timestamptz not null default now(),
  -- A journal entry's lines are written with it, in its transaction, never
  -- later: the balance check (one pass over the inserted lines' entries) also
  -- refuses lines for an entry posted by another transaction.
  txid bigint not null default txid_current(),
  constraint journal_entries_event_check check (event in ('record', 'payout', 'withdrawal', 'correction', 'orphan'))
);
create index journal_entries_day_idx on settlement.journal_entries (business_date, kind, event);
create unique index journal_entries_ref_idx on settlement.journal_entries (event, ref) where event <> 'correction';

-- amount > 0 is a debit, < 0 a credit. Ledger accounts are text codes:
--   bank:<account_no>       money at the bank (mirrors the bank's statement)
--   due_from:<loan acct>    recorded, not yet paid by that loan account
--   due_to:<kind>           recorded, owed to the kind's settlement account
-- No foreign key to journal_entries: the balance trigger refuses any line
-- whose entry was not posted by the same transaction, a missing entry
-- included; entries are append-only. No index by ledger account: every query
-- of the lines by account matches a prefix (like 'bank:%'), which an index of
-- the database's collation cannot serve.
create table settlement.journal_lines (
  journal_id bigint not null,
  line_no integer not null,
  ledger_account text not null,
  amount bigint not null check (amount <> 0),
  primary key (journal_id, line_no)
);

------------------------------------------------------------------------------
-- Reconcile: every day is closed against the bank's own statement
-- (InquireTransactionHistory); the matching rule is in sql/logic/70_reconcile.sql.

-- Statements read in full after their date was final.
create table settlement.statement_reads (
  bncd text not null check (bncd ~ '^[0-9]{3}$'),
  acno text not null,
  ymd text not null check (ymd ~ '^[0-9]{8}$'),
  -- the end of the range read (ymd, or the next day so far: a request sent
  -- just before midnight may be booked after it)
  to_ymd text not null check (to_ymd ~ '^[0-9]{8}$'),
  lines integer not null,
  read_at timestamptz not null default now(),
  primary key (bncd, acno, ymd)
);
comment on table settlement.statement_reads is 'Statements read in full after their date was final: (Bncd, Acno, date).';
comment on column settlement.statement_reads.read_at is
  'When the read was asked for (before the bank call): it proves something about a transfer only if later than the transfer settled.';

create table settlement.statement_lines (
  id bigint generated always as identity primary key,
  bncd text not null check (bncd ~ '^[0-9]{3}$'),
  acno text not null,
  trdd text not null check (trdd ~ '^[0-9]{8}$'),
  txtm text not null check (txtm ~ '^[0-9]{6}$'),
  mnrc_drot_dsnc text not null check (mnrc_drot_dsnc in ('1', '2', '3', '4')),
  tram bigint not null check (tram >= 0),
  aftr_blnc bigint,
  balance_sign text,
  smr text,
  hnis_cd text,
  hnbr_cd text,
  ccyn text not null check (ccyn in ('0', '1')),
  tuno text not null,
  bnpr_cntn text,
  -- our reference: the IsTuno in 'DS' || IsTuno, printed as BnprCntn (or in Smr)
  ref_is_tuno text generated always as (coalesce(substring(bnpr_cntn from 'DS([0-9]{18})'), substring(smr from 'DS([0-9]{18})'))) stored,
  read_at timestamptz not null default now(),
  unique (bncd, acno, trdd, tuno)
);
create index statement_lines_account_idx on settlement.statement_lines (bncd, acno, trdd);
create index statement_lines_ref_idx on settlement.statement_lines (ref_is_tuno) where ref_is_tuno is not null;
comment on table settlement.statement_lines is 'Every line of the bank''s statements read by reconcile, once; ref_is_tuno is the IsTuno our memo printed on it.';

create table settlement.breaks (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  problem text not null check (problem in ('missing_line', 'orphan', 'mismatch', 'cancelled')),
  transfer_id bigint references settlement.transfers (id),
  is_tuno text,
  line_id bigint references settlement.statement_lines (id),
  account_no text,
  amount bigint not null,
  detail text not null,
  journal_id bigint references settlement.journal_entries (id),
  detected_at timestamptz not null default now(),
  resolved_at timestamptz,
  resolved_by text,
  resolution text,
  foreign key (business_date, kind) references settlement.days,
  check ((resolved_at is null) = (resolution is null))
);
create index breaks_day_idx on settlement.breaks (business_date, kind) where resolved_at is null;
-- One break per fact: a line, a booked number without a line yet, a transfer's side.
create unique index breaks_line_key on settlement.breaks (problem, line_id) where line_id is not null;
create unique index breaks_booked_key on settlement.breaks (is_tuno) where problem = 'orphan' and line_id is null;
create unique index breaks_side_key on settlement.breaks (problem, transfer_id, account_no) where problem in ('missing_line', 'mismatch') and line_id is null;
comment on table settlement.breaks is
  'What does not reconcile, per (business_date, kind): missing_line (a succeeded transfer with no statement line), orphan (money the bank moved that no transfer claims; journaled to suspense:<kind>), mismatch (amount or direction), cancelled (a Ccyn 1 line). Resolved with settlement.resolve_break(id, note); never deleted.';

create table settlement.line_matches (
  line_id bigint primary key references settlement.statement_lines (id),
  -- reference | fallback | duplicate | unknown | cancellation
  rule text not null check (rule in ('reference', 'fallback', 'duplicate', 'unknown', 'cancellation')),
  transfer_id bigint references settlement.transfers (id),
  is_tuno text,
  -- cancellation: the line it cancels
  cancels_line_id bigint references settlement.statement_lines (id),
  matched_at timestamptz not null default now()
);
create index line_matches_transfer_idx on settlement.line_matches (transfer_id);
comment on table settlement.line_matches is 'Which transfer and IsTuno each line of ours belongs to (see the rule at the top of sql/logic/70_reconcile.sql).';

------------------------------------------------------------------------------
-- Operations

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

-- Pause and resume. While a pause covers a kind (kind null = every kind), no
-- new bank call starts for its transfers: the claim answers 'paused' and the
-- task tries again later. Calls already at the bank finish and are recorded.
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

------------------------------------------------------------------------------
-- Roles. Least privilege: four NOLOGIN roles, granted to login roles by the
-- DBA (README "Roles"): tables are written only through functions, and no
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
-- public); every other function is executable by the owner alone. Which role
-- may call which function is one table: sql/logic/90_grants.sql. Roles are
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
grant settlement_viewer to settlement_operator;

revoke all on all tables in schema settlement from public;
revoke all on all sequences in schema settlement from public;
revoke all on schema settlement from public;
-- Per-schema default privileges cannot take away PUBLIC's execute on new
-- functions (90_grants.sql revokes it from every function of the schema).
alter default privileges in schema settlement revoke execute on functions from public;

grant usage on schema settlement to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;
grant usage on schema settlement_meta to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;
grant select on settlement_meta.migrations, settlement_meta.logic to settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;

-- Tables (views are granted in sql/logic/90_grants.sql). Operators read the
-- settlement tables and write the reference data; the on-call tables
-- (pauses, alerts, ops_settings) they read as viewers and change through the
-- audited functions (ops_settings by UPDATE, audited by its trigger).
grant select on settlement.accounts, settlement.accruals, settlement.bank_codes, settlement.bank_slots,
  settlement.breaks, settlement.config, settlement.contracts, settlement.days, settlement.entries,
  settlement.journal_entries, settlement.journal_lines, settlement.kind_accounts, settlement.limits,
  settlement.line_matches, settlement.rejected_jobs, settlement.stage_runs, settlement.statement_lines,
  settlement.statement_reads, settlement.transfer_attempts, settlement.transfers, settlement.workers
  to settlement_operator;
grant insert, update, delete on settlement.bank_codes to settlement_operator;
grant insert, update on settlement.accounts, settlement.contracts, settlement.kind_accounts to settlement_operator;
grant update on settlement.limits, settlement.ops_settings to settlement_operator;
grant select on settlement.breaks, settlement.statement_lines, settlement.line_matches,
  settlement.alerts, settlement.pauses, settlement.ops_settings to settlement_viewer;
grant select on settlement.bank_codes, settlement.config to settlement_worker;

-- graphile-worker runs inside the worker processes: its own schema, all of it.
grant usage on schema graphile_worker to settlement_worker;
grant select, insert, update, delete on all tables in schema graphile_worker to settlement_worker;
grant usage, select on all sequences in schema graphile_worker to settlement_worker;
grant execute on all functions in schema graphile_worker to settlement_worker;
