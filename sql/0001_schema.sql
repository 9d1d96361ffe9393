-- daily-settlement: schema, enums, reference data and the settlement tables.
-- Errors raised on purpose use SQLSTATE class 'ST' (registry in README.md).

create schema settlement;
comment on schema settlement is 'daily-settlement: ledger, stages and operator API';

create type settlement.kind as enum (
  'tax', 'platform_fee', 'early_repayment_fee', 'deferred_fee', 'upfront_fee', 'withdrawal_fee'
);
create type settlement.stage as enum ('record', 'pay', 'confirm', 'withdraw');
create type settlement.account_role as enum ('loan', 'settlement', 'corporate');
create type settlement.stage_state as enum ('pending', 'running', 'blocked', 'done');
create type settlement.transfer_state as enum ('pending', 'sending', 'succeeded', 'failed');

-- Settings the SQL side needs (the worker writes them from its validated
-- environment at start; one row).
create table settlement.config (
  id boolean primary key default true check (id),
  time_zone text not null default 'Asia/Seoul',
  per_call_limit bigint not null default 100000 check (per_call_limit > 0),
  max_in_flight integer not null default 50 check (max_in_flight > 0),
  updated_at timestamptz not null default now()
);
insert into settlement.config default values;

create table settlement.accounts (
  account_no text primary key check (account_no ~ '^[0-9]{6,20}$'),
  role settlement.account_role not null,
  bank_code text not null default '011' check (bank_code ~ '^[0-9]{3}$'),
  holder text not null default '',
  created_at timestamptz not null default now(),
  unique (account_no, role)
);
comment on table settlement.accounts is 'Bank accounts known to settlement: loan accounts (sources), settlement and corporate accounts.';

-- kind -> settlement account and corporate account. The role columns let a
-- composite foreign key check that each side has the right role.
create table settlement.kind_accounts (
  kind settlement.kind primary key,
  settlement_account text not null,
  settlement_role settlement.account_role not null default 'settlement' check (settlement_role = 'settlement'),
  corporate_account text not null,
  corporate_role settlement.account_role not null default 'corporate' check (corporate_role = 'corporate'),
  foreign key (settlement_account, settlement_role) references settlement.accounts (account_no, role),
  foreign key (corporate_account, corporate_role) references settlement.accounts (account_no, role)
);

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
create table settlement.entries (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  account_no text not null references settlement.accounts (account_no),
  amount bigint not null check (amount > 0),
  accrual_count integer not null check (accrual_count > 0),
  late_count integer not null default 0,
  created_at timestamptz not null default now(),
  unique (business_date, kind, account_no),
  foreign key (business_date, kind) references settlement.days
);

-- Payout chunks: each <= the per-call limit, each with its own bank
-- transaction number (IsTuno), fixed before the first call.
create sequence settlement.istuno_seq;

create table settlement.chunks (
  id bigint generated always as identity primary key,
  entry_id bigint not null references settlement.entries (id),
  seq integer not null check (seq > 0),
  business_date date not null,
  kind settlement.kind not null,
  from_account text not null,
  to_account text not null,
  amount bigint not null check (amount > 0),
  state settlement.transfer_state not null default 'pending',
  attempt integer not null default 1,
  is_tuno text not null unique check (is_tuno ~ '^[0-9A-Za-z]{1,20}$'),
  -- Korean date of the first call under is_tuno (inquiries name it)
  tsymd text check (tsymd ~ '^[0-9]{8}$'),
  claimed_by text,
  claimed_until timestamptz,
  bank_ref text,
  fail_code text,
  fail_message text,
  settled_at timestamptz,
  updated_at timestamptz not null default now(),
  unique (entry_id, seq)
);
create index chunks_day_idx on settlement.chunks (business_date, kind, state);

-- Every finished attempt of a chunk or withdrawal (a retried chunk gets a new
-- IsTuno only after the bank said the old one failed; the old one stays here).
create table settlement.transfer_attempts (
  id bigint generated always as identity primary key,
  chunk_id bigint references settlement.chunks (id),
  business_date date not null,
  kind settlement.kind not null,
  is_tuno text not null,
  tsymd text,
  amount bigint not null check (amount > 0),
  outcome settlement.transfer_state not null check (outcome in ('succeeded', 'failed')),
  code text,
  message text,
  bank_ref text,
  at timestamptz not null default now()
);

create table settlement.withdrawals (
  business_date date not null,
  kind settlement.kind not null,
  from_account text not null,
  to_account text not null,
  amount bigint not null check (amount > 0),
  state settlement.transfer_state not null default 'pending',
  attempt integer not null default 1,
  is_tuno text not null unique check (is_tuno ~ '^[0-9A-Za-z]{1,20}$'),
  tsymd text check (tsymd ~ '^[0-9]{8}$'),
  claimed_by text,
  claimed_until timestamptz,
  bank_ref text,
  fail_code text,
  fail_message text,
  settled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (business_date, kind),
  foreign key (business_date, kind) references settlement.days
);

-- Global in-flight limit for bank calls across every worker process: a call
-- holds one leased slot; a crashed holder's lease simply expires.
create table settlement.bank_slots (
  slot integer primary key check (slot > 0),
  holder text,
  lease_until timestamptz
);

-- Worker heartbeats, for crash recovery of jobs held by dead processes.
create table settlement.workers (
  pool_id text primary key,
  host text not null,
  pid integer not null,
  started_at timestamptz not null default now(),
  last_beat timestamptz not null default now()
);
