-- The worker's word checked against the bank's statement (issue 22, item 4).
--
-- * statement_requests: every statement read the database asks for
--   (settlement.statements_to_read, settlement.restore_statements): which
--   account and dates, when it was asked (the read's time), by which login,
--   until when it may be answered, and its answer (once): accepted, or
--   refused because it lacks bookings the ledger already knows (the missing
--   transfers kept). record_statement takes a statement only as the answer to
--   one of these, so no statement is written ad hoc.
-- * config.statement_lag: how long NH may take to show a booking on the
--   statement (not published: a setting). A read asked that long after a
--   booking the ledger knows must show it (else it is refused as proof of
--   anything unbooked), and the withdraw stage waits that long for the day's
--   payouts to show on the settlement account's statement before it blocks.
-- * config.statement_answer_within: how long a read request may be answered.
create table settlement.statement_requests (
  id bigint generated always as identity primary key,
  bncd text not null check (bncd ~ '^[0-9]{3}$'),
  acno text not null,
  ymd text not null check (ymd ~ '^[0-9]{8}$'),
  to_ymd text not null check (to_ymd ~ '^[0-9]{8}$'),
  asked_at timestamptz not null default settlement_meta.now(),
  asked_by text not null default session_user,
  answer_by timestamptz not null,
  answered_at timestamptz,
  lines integer,
  -- null: accepted (when answered); else why the answer proves nothing unbooked
  refused text,
  -- the transfers the ledger knows booked that the answer did not show
  missing bigint[],
  unique (bncd, acno, ymd, asked_at)
);
create index statement_requests_answered_idx on settlement.statement_requests (bncd, acno, ymd, asked_at) where answered_at is not null;
comment on table settlement.statement_requests is
  'Statement reads the database asked for (statements_to_read, restore_statements) and their one answer (record_statement): accepted, or refused with the known bookings it lacked.';

alter table settlement.config add column statement_lag interval not null default '1 hour'
  check (statement_lag >= interval '0' and statement_lag <= interval '1 day');
comment on column settlement.config.statement_lag is
  'How long the bank may take to show a booking on an account''s statement (NH does not publish it). A read asked this long after a booking the ledger knows must show it; the withdraw stage waits this long for the day''s payouts to show on the settlement account''s statement, then blocks. settlement.configure_statement_checks (audited).';
alter table settlement.config add column statement_answer_within interval not null default '1 hour'
  check (statement_answer_within > interval '0' and statement_answer_within <= interval '1 day');
comment on column settlement.config.statement_answer_within is
  'How long after the database asked for a statement read (statement_requests) it may be answered. settlement.configure_statement_checks (audited).';

-- restore_statements answers its requests' asked_at now (a new result column).
drop function if exists settlement.restore_statements();

revoke all on settlement.statement_requests from public;
grant select on settlement.statement_requests to settlement_operator;
