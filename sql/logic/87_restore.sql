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

-- Payout chunks planned after the backup point. A day whose pay stage was
-- not done in the backup may have been planned and paid after it under
-- numbers this database never gave: its pay stage, when it plans after a
-- restore, adopts each chunk the stored statements show was booked already.
--
-- forgotten_payout_lines: the bookings of ours from loan accounts
-- (p_accounts; null: every loan account) since the latest restore's from_ymd
-- under an IsTuno of an earlier generation that no transfer or attempt of
-- this database holds (Ccyn 0, out), each with what could have paid it (its
-- owners): a chunk of a day whose pay stage is not done (planned from its
-- entries, or for a day that is over and not recorded, from its accruals),
-- from that account, of that amount, of a day before the booking, to the
-- account the other side of the booking landed on (the line of ours printing
-- the same 'DS' || IsTuno, when its statement is stored); or a failed payout
-- of a day not withdrawn (a retry after the backup point may have paid it
-- under a number forgotten). An owner is a day ('YYYY-MM-DD kind') or
-- 'failed transfer N (...)'. Lines with no owner nothing here explains.
create or replace function settlement.forgotten_payout_lines(p_accounts text[] default null)
returns table (line_id bigint, acno text, trdd text, tram bigint, ref_is_tuno text, owners text[])
language plpgsql stable as $$
#variable_conflict use_column
declare
  v_r settlement.restores;
  v_accounts text[];
  v_limit bigint;
begin
  select * into v_r from settlement.restores x order by x.id desc limit 1;
  if not found then
    return;
  end if;
  v_accounts := coalesce(p_accounts, array(select a.account_no from settlement.accounts a where a.role = 'loan'));
  select c.per_call_limit into v_limit from settlement.config c where c.id;
  return query
  with lines as (
    select l.id, l.acno, l.trdd, l.tram, l.ref_is_tuno,
           (select min(o.acno) from settlement.statement_lines o
            where o.ref_is_tuno = l.ref_is_tuno and o.id <> l.id and o.ccyn = '0' and settlement.is_in(o.mnrc_drot_dsnc)) as went_to
    from settlement.accounts a
    join settlement.statement_lines l on l.bncd = a.bank_code and l.acno = a.account_no and l.trdd >= v_r.from_ymd
    where a.account_no = any(v_accounts) and a.role = 'loan'
      and l.ccyn = '0' and not settlement.is_in(l.mnrc_drot_dsnc) and l.ref_is_tuno is not null
      and substr(l.ref_is_tuno, 2, 3)::integer < v_r.generation
      and not exists (select 1 from settlement.transfers t where t.is_tuno = l.ref_is_tuno)
      and not exists (select 1 from settlement.transfer_attempts x where x.is_tuno = l.ref_is_tuno)),
  payers as (
    select distinct x.acno from lines x),
  -- what each day not paid out yet is due to pay from those accounts
  due as (
    select e.business_date, e.kind, e.account_no, e.amount
    from settlement.stage_runs s
    join settlement.stage_runs rec on rec.business_date = s.business_date and rec.kind = s.kind and rec.stage = 'record' and rec.state = 'done'
    join settlement.entries e on e.business_date = s.business_date and e.kind = s.kind
    where s.stage = 'pay' and s.state <> 'done' and e.account_no in (select p.acno from payers p)
    union all
    select a.settle_date, a.kind, a.account_no, sum(a.amount)::bigint
    from settlement.stage_runs rec
    join settlement.accruals a on a.settle_date = rec.business_date and a.kind = rec.kind
    where rec.stage = 'record' and rec.state <> 'done' and rec.business_date < settlement.today()
      and a.account_no in (select p.acno from payers p)
    group by a.settle_date, a.kind, a.account_no),
  owners as (
    select distinct d.business_date, d.account_no, k.settlement_account as to_account,
           least(v_limit, d.amount - (s.seq - 1) * v_limit) as amount, format('%s %s', d.business_date, d.kind) as owner
    from due d
    left join settlement.kind_accounts k on k.kind = d.kind
    cross join lateral generate_series(1, ((d.amount + v_limit - 1) / v_limit)::int) s(seq)
    union all
    select t.business_date, t.from_account, t.to_account, t.amount, format('failed transfer %s (%s %s)', t.id, t.business_date, t.kind)
    from settlement.stage_runs w
    join settlement.transfers t on t.business_date = w.business_date and t.kind = w.kind and t.purpose = 'payout'
    where w.stage = 'withdraw' and w.state <> 'done' and t.state = 'failed' and t.from_account in (select p.acno from payers p))
  select l.id, l.acno, l.trdd, l.tram, l.ref_is_tuno,
         array(select distinct w.owner from owners w
               where w.account_no = l.acno and w.amount = l.tram and to_char(w.business_date, 'YYYYMMDD') < l.trdd
                 and (l.went_to is null or w.to_account is null or l.went_to = w.to_account)
               order by 1)
  from lines l;
end $$;
comment on function settlement.forgotten_payout_lines is 'Internal (after a restore): bookings of ours from loan accounts under IsTunos of an earlier generation that no transfer holds, each with the days (or failed transfers) it could have paid.';

-- The chunks of (p_date, p_kind) the stored statements show were booked
-- under a forgotten number (entry_id, seq, is_tuno, tsymd: its pay stage
-- plans them under that number and date, asks the bank first and never sends
-- them again), or why it cannot decide (problem; then nothing is adopted):
-- a booking after the day from one of its loan accounts that nothing here
-- explains, one that could be a chunk of this day or of another day (or a
-- failed transfer), or more such bookings of one amount from one account
-- than the day has chunks of it. Chunks of one entry and one amount are the
-- same obligation (same accounts, amount and day): its bookings are taken in
-- IsTuno order (the order the day was numbered in) for its chunks in seq order.
create or replace function settlement.forgotten_payouts(p_date date, p_kind settlement.kind)
returns table (entry_id bigint, seq integer, is_tuno text, tsymd text, problem text)
language plpgsql stable as $$
#variable_conflict use_column
declare
  v_me text := format('%s %s', p_date, p_kind);
  v_limit bigint;
  v_accounts text[];
begin
  if not exists (select 1 from settlement.restores) then
    return;
  end if;
  select c.per_call_limit into v_limit from settlement.config c where c.id;
  v_accounts := array(select e.account_no from settlement.entries e where e.business_date = p_date and e.kind = p_kind);
  return query
  with lines as (
    select f.* from settlement.forgotten_payout_lines(v_accounts) f where f.trdd > to_char(p_date, 'YYYYMMDD')),
  chunks as (
    select e.id as entry_id, s.seq, e.account_no, least(v_limit, e.amount - (s.seq - 1) * v_limit) as amount
    from settlement.entries e
    cross join lateral generate_series(1, ((e.amount + v_limit - 1) / v_limit)::int) s(seq)
    where e.business_date = p_date and e.kind = p_kind and e.account_no in (select l.acno from lines l)),
  mine as (
    select l.*, row_number() over (partition by l.acno, l.tram order by l.ref_is_tuno) as rn,
           count(*) over (partition by l.acno, l.tram) as n
    from lines l where l.owners = array[v_me]),
  problems as (
    select format('a booking under the forgotten IsTuno %s (%s KRW from %s on %s) is none of the chunks this database would plan',
                  l.ref_is_tuno, settlement.krw(l.tram), settlement.mask_account(l.acno), l.trdd) as problem
    from lines l where cardinality(l.owners) = 0
    union all
    select format('the booking under the forgotten IsTuno %s (%s KRW from %s on %s) could be a chunk of %s',
                  l.ref_is_tuno, settlement.krw(l.tram), settlement.mask_account(l.acno), l.trdd, array_to_string(l.owners, ' or '))
    from lines l where cardinality(l.owners) > 1 and v_me = any(l.owners)
    union all
    select format('%s bookings of %s KRW from %s under forgotten IsTunos, for %s chunk(s) of that amount',
                  m.n, settlement.krw(m.tram), settlement.mask_account(m.acno),
                  (select count(*) from chunks c where c.account_no = m.acno and c.amount = m.tram))
    from mine m
    where m.rn = 1 and m.n > (select count(*) from chunks c where c.account_no = m.acno and c.amount = m.tram))
  select null::bigint, null::integer, null::text, null::text, p.problem from problems p
  union all
  select c.entry_id, c.seq, m.ref_is_tuno, m.trdd, null::text
  from (select c.*, row_number() over (partition by c.account_no, c.amount order by c.seq) as rn from chunks c) c
  join mine m on m.acno = c.account_no and m.tram = c.amount and m.rn = c.rn
  where not exists (select 1 from problems);
end $$;
comment on function settlement.forgotten_payouts is 'Internal (the pay stage after a restore): the day''s chunks booked already under a forgotten IsTuno (adopted under it), or the problems that block the stage instead.';

-- The bookings of ours from loan accounts under a forgotten number that no
-- chunk still to plan (nor a failed transfer) could be: money moved after
-- the backup point that this database cannot tie to anything it will do (a
-- day recorded there from accruals this backup does not hold, a retry, a
-- settlement account changed after the backup point).
create or replace function settlement.restore_unexplained()
returns table (line_id bigint, acno text, trdd text, tram bigint, ref_is_tuno text)
language sql stable as $$
  select f.line_id, f.acno, f.trdd, f.tram, f.ref_is_tuno from settlement.forgotten_payout_lines() f where cardinality(f.owners) = 0
  order by f.trdd, f.ref_is_tuno
$$;
comment on function settlement.restore_unexplained is 'After a restore: bookings of ours from loan accounts under forgotten IsTunos that no chunk still to plan and no failed transfer could be (settle after-restore pauses every kind while there is one).';

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

  -- 5. The days before today not paid out in the backup: they may have been
  -- planned and paid after the backup point under numbers never planned here.
  -- Their pay stages match their chunks against the statements when they plan
  -- (forgotten_payouts); restore_statements_read pauses every kind if a
  -- booking is left that nothing here can be.
  select count(*)::integer into v_held from settlement.stage_runs s
  where s.stage = 'pay' and s.state <> 'done' and s.business_date < settlement.today();

  insert into settlement.restores (generation, last_activity, from_ymd, transfers_to_ask, days_to_reconcile, held_days, reason)
  values (v_gen, v_last, v_from, v_asked, v_days, v_held, v_reason)
  returning * into v_open;
  perform settlement.audit('after_restore', jsonb_build_object('generation', v_gen, 'from_ymd', v_from),
    jsonb_build_object('restore', v_open.id, 'transfers_to_ask', v_asked, 'days_to_reconcile', v_days, 'held_days', v_held), v_reason);
  return json_build_object('restore', v_open.id, 'generation', v_gen, 'from_ymd', v_from, 'last_activity', settlement.iso_time(v_last),
                           'transfers_to_ask', v_asked, 'days_to_reconcile', v_days, 'held_days', v_held, 'again', false);
end $$;
comment on function settlement.after_restore is 'Operator, once after restoring a backup and before any worker runs: moves the IsTuno generation on, makes every open transfer ask the bank first, forgets the statement reads since the backup point and reconciles those days again, holds new transfers until the statements are read (restore_statements_read); held_days: the days before today not paid out in the backup (their chunks are matched against the statements when planned). Audited. ST061 no reason.';

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
          and (a.role <> 'loan' or exists (select 1 from settlement.transfers t where t.from_account = a.account_no)
               -- a loan account a day not paid out yet pays from (planned and paid after the backup point?)
               or a.account_no in (select e.account_no from settlement.stage_runs s
                                   join settlement.entries e on e.business_date = s.business_date and e.kind = s.kind
                                   where s.stage = 'pay' and s.state <> 'done')
               or a.account_no in (select x.account_no from settlement.stage_runs s
                                   join settlement.accruals x on x.settle_date = s.business_date and x.kind = s.kind
                                   where s.stage = 'record' and s.state <> 'done' and s.business_date < settlement.today()))
          and r.id = (select max(id) from settlement.restores)) x
  order by x.role, x.account_no;
end $$;

-- The statements are read (record_statement stored their lines): the hold ends
-- and the stages that may plan a transfer run again.
create or replace function settlement.restore_statements_read(p_restore bigint) returns integer
language plpgsql as $$
declare
  v_n integer;
  v_unexplained integer;
begin
  update settlement.restores set statements_read_at = settlement_meta.now() where id = p_restore and statements_read_at is null;
  if not found then
    perform settlement.raise_error('ST062', format('restore_statements_read: restore %s does not exist or its statements were read already', p_restore));
  end if;
  -- 5. A booking of ours under a forgotten number that no chunk still to plan
  -- (and no failed transfer) can be: the database cannot tell what it paid
  -- for; a person compares before anything more is sent.
  select count(*)::integer into v_unexplained from settlement.restore_unexplained();
  if v_unexplained > 0 then
    perform settlement.pause(null, format('restored from a backup: %s booking(s) of ours since %s under numbers the backup never saw are none of the chunks still to pay (settlement.restore_unexplained()); compare them (docs/deploy/restore.md) before settle resume',
                                          v_unexplained, (select r.from_ymd from settlement.restores r where r.id = p_restore)));
  end if;
  perform settlement.audit('restore_statements_read', jsonb_build_object('restore', p_restore), jsonb_build_object('unexplained', v_unexplained));
  v_n := settlement.enqueue_stage_core('pay') + settlement.enqueue_stage_core('withdraw') + settlement.enqueue_stage_core('reconcile');
  return v_n;
end $$;
comment on function settlement.restore_statements_read is 'Operator (settle after-restore): the statements since the restore''s from_ymd are stored; ends the hold on new transfers, pauses every kind while a booking under a forgotten number is none of the chunks still to pay (restore_unexplained), runs pay, withdraw and reconcile again. Audited. ST062 unknown or done.';
