-- The bank's quiet hours (sql/logic/50_transfers.sql, settlement.bank_quiet_until):
-- Korean banks stop transfers for maintenance around midnight, which is also
-- when a transfer's date (Tsymd) turns over. No money request is sent inside
-- a window: a claim whose attempt could still be sending when one begins is
-- refused ('quiet'), and the transfer's job runs again when it ends, under
-- the new day's date (a transfer already sent under the old date is only
-- asked about: claim_transfers sends nothing under a past Tsymd).
--
-- Two kinds of row:
--   * the daily window: from daily_from to daily_until, Korea time, every day
--     (daily_from > daily_until: it spans midnight). At most one is active.
--   * a dated window an operator adds: from starts_at to ends_at.
-- A window is removed by stamping removed_at (history is kept). Every change
-- goes through settlement.configure_bank_window / add_bank_window /
-- remove_bank_window (operators; audited).
create table settlement.bank_windows (
  id bigint generated always as identity primary key,
  daily_from time,
  daily_until time,
  starts_at timestamptz,
  ends_at timestamptz,
  reason text not null check (length(btrim(reason)) between 1 and 1000),
  added_at timestamptz not null default now(),
  added_by text not null default session_user,
  removed_at timestamptz,
  removed_by text,
  check ((daily_from is not null and daily_until is not null and daily_from <> daily_until and starts_at is null and ends_at is null)
      or (daily_from is null and daily_until is null and starts_at is not null and ends_at > starts_at))
);
create unique index bank_windows_one_daily on settlement.bank_windows ((true)) where daily_from is not null and removed_at is null;
create index bank_windows_dated on settlement.bank_windows (ends_at) where starts_at is not null and removed_at is null;
comment on table settlement.bank_windows is
  'The bank''s quiet hours: the daily window (daily_from..daily_until, Korea time; spans midnight when from > until) and dated windows (starts_at..ends_at). No money request is sent inside one. Active while removed_at is null. Changed only through configure_bank_window, add_bank_window, remove_bank_window (audited).';

insert into settlement.bank_windows (daily_from, daily_until, reason)
values ('23:30', '00:30', 'default: NH''s nightly maintenance and the change of the transaction date around midnight');

revoke all on settlement.bank_windows from public;
grant select on settlement.bank_windows to settlement_viewer, settlement_operator, settlement_worker;

-- When a claim was refused because of a window: the job runs again then, and
-- status says the day waits for the bank until then.
alter table settlement.transfers add column quiet_until timestamptz;
comment on column settlement.transfers.quiet_until is
  'Set when a claim was refused inside (or just before) the bank''s quiet hours: the transfer''s job runs again at this time. Cleared by its next claim.';
