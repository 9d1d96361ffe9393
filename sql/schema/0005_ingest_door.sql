-- The ingest door (issue 23): bounds on an ingest session's transaction, and
-- the payout chunks per (day, kind) that accrue keeps so that an accrual that
-- would take its day over limits.max_chunks_per_day is refused at the door
-- (ST033) instead of the pay stage refusing the whole day. Functions:
-- sql/logic/30_accrue.sql.
--
-- An ingest session is bounded where it takes its locks: accrue (the only
-- function settlement_ingest may call) sets, for the rest of the caller's
-- transaction, idle_in_transaction_session_timeout and lock_timeout to these
-- values (or keeps the session's own, if smaller). A role's settings
-- (ALTER ROLE ... SET) apply only to the role a session logs in as, not to
-- the members of settlement_ingest, so they are set where every ingest
-- transaction passes.
alter table settlement.limits
  add column ingest_idle_timeout interval not null default '30 seconds'
    check (ingest_idle_timeout between '100 milliseconds' and '1 day'),
  add column ingest_lock_timeout interval not null default '5 seconds'
    check (ingest_lock_timeout between '10 milliseconds' and '1 hour');
comment on column settlement.limits.ingest_idle_timeout is 'An ingest transaction (one that called accrue) left idle this long is ended by the server (idle_in_transaction_session_timeout).';
comment on column settlement.limits.ingest_lock_timeout is 'accrue, and the rest of its transaction, waits at most this long for a lock (lock_timeout).';

-- Payout chunks per (day, kind), kept by accrue as accruals come, so an
-- accrual that would take its day over limits.max_chunks_per_day is refused
-- at the door (ST033) instead of the pay stage refusing the whole day. A row
-- is started from the day's accruals when first needed; rows written
-- straight into accruals (settle seed, the benchmark) after that are not
-- counted here: the pay stage's own check (pay_within_limits) stays.
create table settlement.day_chunk_counts (
  settle_date date not null,
  kind settlement.kind not null,
  chunks bigint not null check (chunks >= 0),
  primary key (settle_date, kind)
);
comment on table settlement.day_chunk_counts is 'Payout chunks the accruals of a (settle_date, kind) need (per loan account: ceil(sum / per_call_limit)), kept by accrue.';
revoke all on settlement.day_chunk_counts from public;
grant select on settlement.day_chunk_counts to settlement_operator;
