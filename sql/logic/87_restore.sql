-- Restore from a backup without paying twice (docs/deploy/restore.md).
--
-- A database restored from a backup has forgotten everything after the
-- backup point: the IsTuno sequence is rewound, transfers sent after it look
-- pending, a withdrawal made after it was never planned here. The bank has
-- not forgotten. settlement.after_restore (run by `settle after-restore`,
-- with no worker running) makes the restored database safe to run again:
--   1. the IsTuno generation moves on (next_is_tuno, 40_stages.sql): no
--      number given from now on can be one the bank saw before;
--   2. every open transfer is asked about before anything is sent: a pending
--      one gets the first KST date it may have been sent on as its Tsymd (a
--      claim with a Tsymd asks the bank first, and sends only on that date;
--      a sending one already asks first);
--   3. the days since are read and reconciled again (their statement reads
--      are forgotten, their reconcile stage runs again);
--   4. until the statements of every account of ours from that date on are
--      read (settlement.restore_statements_read), no stage plans a new
--      transfer (restore_hold); after, a withdrawal the bank booked under a
--      forgotten number is adopted by its stage (forgotten_booking) instead
--      of being sent again under a new one;
--   5. a day before today whose pay stage is not done could have been paid
--      after the backup point under numbers this database never planned:
--      then every kind is paused, for a person to compare the statements
--      (docs/deploy/restore.md says how) before `settle resume`.

-- The latest moment the database recorded anything: the backup was taken at
-- or after it.
create or replace function settlement.last_activity() returns timestamptz
language sql stable as $$
  select greatest((select max(updated_at) from settlement.transfers),
                  (select max(at) from settlement.transfer_attempts),
                  (select max(updated_at) from settlement.stage_runs),
                  (select max(posted_at) from settlement.journal_entries),
                  (select max(at) from settlement.operator_actions))
$$;

-- Why no stage may plan a transfer now (null: it may).
create or replace function settlement.restore_hold() returns text
language sql stable as $$
  select format('restored from a backup (restore %s): the bank statements since %s are not read yet (settle after-restore reads them)', r.id, r.from_ymd)
  from settlement.restores r where r.statements_read_at is null order by r.id desc limit 1
$$;

-- A booking the bank made from p_account for p_amount on or after p_date
-- under an IsTuno of an earlier generation that no transfer or attempt of
-- this database holds: a transfer planned after the backup point. Returns
-- the number and its date when exactly one fits, and how many fit.
create or replace function settlement.forgotten_booking(p_account text, p_amount bigint, p_date date)
returns table (is_tuno text, tsymd text, candidates integer)
language sql stable as $$
  with fits as (
    select l.ref_is_tuno, l.trdd
    from settlement.statement_lines l
    join settlement.accounts a on a.account_no = p_account and a.bank_code = l.bncd and a.account_no = l.acno
    where exists (select 1 from settlement.restores)
      and l.ccyn = '0' and not settlement.is_in(l.mnrc_drot_dsnc) and l.tram = p_amount
      and l.ref_is_tuno is not null and l.trdd >= to_char(p_date, 'YYYYMMDD')
      and substr(l.ref_is_tuno, 2, 3)::integer < (select g.generation from settlement.is_tuno_space g where g.id)
      and not exists (select 1 from settlement.transfers t where t.is_tuno = l.ref_is_tuno)
      and not exists (select 1 from settlement.transfer_attempts x where x.is_tuno = l.ref_is_tuno))
  select case when count(distinct ref_is_tuno) = 1 then min(ref_is_tuno) end,
         case when count(distinct ref_is_tuno) = 1 then min(trdd) end,
         count(distinct ref_is_tuno)::integer
  from fits
$$;

create or replace function settlement.after_restore(p_reason text default null) returns json
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(p_reason);
  v_open settlement.restores;
  v_gen integer;
  v_last timestamptz;
  v_from text;
  v_asked integer;
  v_days integer := 0;
  v_held integer;
  v_locked text[];
  v_ids bigint[];
  d record;
begin
  if v_reason is null then
    perform settlement.raise_error('ST061', 'after_restore: a reason is required (say which backup was restored)');
  end if;
  perform 1 from settlement.is_tuno_space where id for update;
  -- A restore whose statements were never read is finished, not repeated.
  select * into v_open from settlement.restores r where r.statements_read_at is null order by r.id desc limit 1;
  if found then
    return json_build_object('restore', v_open.id, 'generation', v_open.generation, 'from_ymd', v_open.from_ymd,
                             'last_activity', settlement.iso_time(v_open.last_activity), 'transfers_to_ask', v_open.transfers_to_ask,
                             'days_to_reconcile', v_open.days_to_reconcile, 'held_days', v_open.held_days, 'again', true);
  end if;
  update settlement.is_tuno_space set generation = generation + 1, moved_at = settlement_meta.now() where id returning generation into v_gen;
  if v_gen > 999 then
    perform settlement.raise_error('ST070', 'after_restore: every IsTuno generation is used');
  end if;
  v_last := settlement.last_activity();
  v_from := to_char(coalesce(v_last, settlement_meta.now()) at time zone 'Asia/Seoul', 'YYYYMMDD');

  -- 2. Ask before sending: a pending transfer may have been sent after the backup point.
  update settlement.transfers t set tsymd = v_from, updated_at = settlement_meta.now()
  where t.state = 'pending' and t.tsymd is null;
  get diagnostics v_asked = row_count;
  update settlement.transfers t set claimed_by = null, claimed_until = null, updated_at = settlement_meta.now()
  where t.state = 'sending' and t.claimed_by is not null;
  select count(*)::integer into v_asked from settlement.transfers t where t.state in ('pending', 'sending');
  -- No worker of the backed-up database lives: its jobs' locks go, every open transfer has its job.
  select array_agg(distinct j.locked_by) into v_locked from graphile_worker.jobs j where j.locked_by is not null;
  if v_locked is not null then
    perform graphile_worker.force_unlock_workers(v_locked);
  end if;
  select array_agg(t.id) into v_ids from settlement.transfers t where t.state in ('pending', 'sending');
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;

  -- 3. The days since: their statements are read again and they are reconciled again.
  delete from settlement.statement_reads r where r.ymd >= settlement.ymd_add(v_from, -1);
  for d in select s.business_date, s.kind from settlement.stage_runs s
           where s.stage = 'reconcile' and s.state <> 'pending' and s.business_date >= to_date(v_from, 'YYYYMMDD') - 1 loop
    perform settlement.set_stage(d.business_date, d.kind, 'reconcile', 'pending', format('restored from a backup: read and reconciled again (since %s)', v_from));
    v_days := v_days + 1;
  end loop;

  -- 5. A day that could have been paid after the backup point under numbers never planned here.
  select count(*)::integer into v_held from settlement.stage_runs s
  where s.stage = 'pay' and s.state <> 'done' and s.business_date < settlement.today()
    and exists (select 1 from settlement.stage_runs r where r.business_date = s.business_date and r.kind = s.kind and r.stage = 'record' and r.state = 'done');
  if v_held > 0 then
    perform settlement.pause(null, format('restored from a backup: %s day(s) before today were not paid out when it was taken; compare the bank statements since %s before settle resume (docs/deploy/restore.md)', v_held, v_from));
  end if;

  insert into settlement.restores (generation, last_activity, from_ymd, transfers_to_ask, days_to_reconcile, held_days, reason)
  values (v_gen, v_last, v_from, v_asked, v_days, v_held, v_reason)
  returning * into v_open;
  perform settlement.audit('after_restore', jsonb_build_object('generation', v_gen, 'from_ymd', v_from),
    jsonb_build_object('restore', v_open.id, 'transfers_to_ask', v_asked, 'days_to_reconcile', v_days, 'held_days', v_held), v_reason);
  return json_build_object('restore', v_open.id, 'generation', v_gen, 'from_ymd', v_from, 'last_activity', settlement.iso_time(v_last),
                           'transfers_to_ask', v_asked, 'days_to_reconcile', v_days, 'held_days', v_held, 'again', false);
end $$;
comment on function settlement.after_restore is 'Operator, once after restoring a backup and before any worker runs: moves the IsTuno generation on, makes every open transfer ask the bank first, forgets the statement reads since the backup point and reconciles those days again, holds new transfers until the statements are read (restore_statements_read), pauses every kind if a day may have been paid after the backup point. Audited. ST061 no reason.';

-- The accounts whose statements after_restore needs: every NH account of
-- ours (Bncd 011/012) from the restore's from_ymd to today.
create or replace function settlement.restore_statements()
returns table (restore_id bigint, bncd text, acno text, from_ymd text, to_ymd text, asked_at timestamptz)
language plpgsql as $$
#variable_conflict use_column
begin
  -- Each is a read request (statement_requests): record_statement takes its answer.
  return query
  select x.id, x.bank_code, x.account_no, x.from_ymd, x.to_ymd, settlement.ask_statement(x.bank_code, x.account_no, x.from_ymd, x.to_ymd)
  from (select r.id, a.bank_code, a.account_no, r.from_ymd, settlement.bank_ymd() as to_ymd, a.role
        from settlement.restores r
        cross join settlement.accounts a
        where r.statements_read_at is null and a.bank_code in ('011', '012')
          and (a.role <> 'loan' or exists (select 1 from settlement.transfers t where t.from_account = a.account_no))
          and r.id = (select max(id) from settlement.restores)) x
  order by x.role, x.account_no;
end $$;

-- The statements are read (record_statement stored their lines): the hold ends
-- and the stages that may plan a transfer run again.
create or replace function settlement.restore_statements_read(p_restore bigint) returns integer
language plpgsql as $$
declare
  v_n integer;
begin
  update settlement.restores set statements_read_at = settlement_meta.now() where id = p_restore and statements_read_at is null;
  if not found then
    perform settlement.raise_error('ST062', format('restore_statements_read: restore %s does not exist or its statements were read already', p_restore));
  end if;
  perform settlement.audit('restore_statements_read', jsonb_build_object('restore', p_restore));
  v_n := settlement.enqueue_stage_core('pay') + settlement.enqueue_stage_core('withdraw') + settlement.enqueue_stage_core('reconcile');
  return v_n;
end $$;
comment on function settlement.restore_statements_read is 'Operator (settle after-restore): the statements since the restore''s from_ymd are stored; ends the hold on new transfers and runs pay, withdraw and reconcile again. Audited. ST062 unknown or done.';
