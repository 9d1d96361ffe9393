-- The statement watch's horizon (sql/logic/70_reconcile.sql, watch_scope and
-- match_watch). The watch looked at the days of the last statement_watch +
-- 1 day counted from now: after the reconcile task had not run for longer
-- than the watch (workers stopped for a week, a long outage), the days whose
-- watch fell in the gap left it with dates never read, and a cancellation or
-- a second booking on those dates was never seen.
--
-- read_through: the moment up to which every date of the watch was read
-- (once over) and its new lines matched. The watch counts its days from the
-- earlier of now and read_through, and match_watch moves read_through to
-- now only when no watched date that is over is still unread: a day leaves
-- the watch only after every date of its watch was read. No row: from the
-- beginning (every reconciled day).
create table settlement.watch_state (
  id boolean primary key default true check (id),
  read_through timestamptz not null
);
comment on table settlement.watch_state is
  'The statement watch''s horizon: every watched date over by read_through was read and matched; the watch counts its days from the earlier of now and read_through (settlement.watch_scope). Moved by settlement.match_watch.';
-- An installation that had the watch already: its days are counted from
-- now, as before.
insert into settlement.watch_state (read_through) values (settlement_meta.now());
