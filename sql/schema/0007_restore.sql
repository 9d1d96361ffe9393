-- Restore without paying twice (issue 26, docs/deploy/restore.md).
--
-- IsTuno generations. An IsTuno is 18 digits: '1', a 3-digit generation and a
-- 14-digit sequence number. Generation 0 is the numbering every earlier
-- version used ('1' || lpad(seq, 17, '0') for seq < 10^14 is the same
-- string). A database restored from a backup has its sequence rewound to the
-- backup point and does not know the numbers it used after it: `settle
-- after-restore` moves the generation on, so no number it gives from then on
-- can be one the bank saw before the restore.
create table settlement.is_tuno_space (
  id boolean primary key default true check (id),
  generation integer not null default 0 check (generation between 0 and 999),
  moved_at timestamptz
);
insert into settlement.is_tuno_space (id, generation) values (true, 0);
comment on table settlement.is_tuno_space is 'The IsTuno generation (digits 2-4 of every IsTuno given now); settle after-restore moves it on.';

-- Every restore this database went through (settlement.after_restore).
create table settlement.restores (
  id bigint generated always as identity primary key,
  generation integer not null,
  -- the latest moment this database recorded anything: the backup was taken
  -- at or after it, so everything from it on may have reached the bank
  last_activity timestamptz,
  -- the first KST date a transfer may have been sent on without this database knowing
  from_ymd text not null check (from_ymd ~ '^[0-9]{8}$'),
  transfers_to_ask integer not null,
  days_to_reconcile integer not null,
  held_days integer not null,
  -- set once the statements of every account of ours from from_ymd on were read
  statements_read_at timestamptz,
  restored_at timestamptz not null default now(),
  restored_by text not null default session_user,
  reason text
);
comment on table settlement.restores is 'Restores from a backup (settle after-restore): the generation moved to, the dates asked about, the statements read.';
grant select on settlement.is_tuno_space, settlement.restores to settlement_viewer, settlement_worker, settlement_operator;
