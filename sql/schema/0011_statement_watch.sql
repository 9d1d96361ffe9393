-- The statement watch (sql/logic/70_reconcile.sql, settlement.watch_scope):
-- how long after the last date a day's transfers were sent on the statement
-- of its settlement account keeps being read, so that evidence
-- the bank posts later (a cancellation, a late or second booking, money with
-- no reference) on a date no other day reads reopens that day.
alter table settlement.config add column statement_watch interval not null default '7 days'
  check (statement_watch >= interval '0' and statement_watch <= interval '366 days');
comment on column settlement.config.statement_watch is
  'How long after the last date its transfers were sent on a reconciled day''s settlement account is watched: each date''s statement read once the date is over, its new lines matched, a line of that day a break of that day. 0: no watch. Set with settlement.configure_statement_watch (audited).';
