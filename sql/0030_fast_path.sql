-- A cheap payout path (issue 13), with the same guarantees.
--
-- 1. Bank-call slots are session-level advisory locks (21332, slot), held by
--    the database connection of the transfer attempt that makes the call:
--    nothing is written (no WAL) to take or give one, the cap holds across
--    every process and host using the database, and a holder that dies frees
--    its slot with its connection. Waiters LISTEN settlement_bank_slot; a
--    process with waiters holds (21332, 0) shared on its listening connection,
--    and a release notifies only then.
-- 2. A finishing payout looks for the day's open chunks from its own id
--    onwards (transfers_day_id_idx) instead of scanning the day from its start
--    for every chunk (quadratic in the day's size).
-- 3. claim_transfer / finish_transfer keep their signatures and behaviour
--    (0021's pause, 0009's orphans); their slot arguments now name an
--    advisory-lock slot.

------------------------------------------------------------------------------
-- Slots
create function settlement.try_bank_slot() returns integer
language plpgsql volatile as $$
declare
  v_max integer;
  v_start integer;
  s integer;
begin
  select max_in_flight into v_max from settlement.config where id;
  -- A random first slot: concurrent takers rarely try the same slots.
  v_start := floor(random() * v_max)::integer;
  for i in 0 .. v_max - 1 loop
    s := (v_start + i) % v_max + 1;
    if pg_try_advisory_lock(21332, s) then
      return s;
    end if;
  end loop;
  return null;
end $$;
comment on function settlement.try_bank_slot is
  'Worker: takes a free bank-call slot (1..max_in_flight) as a session advisory lock of the calling connection, or null when all are taken. A connection holds at most one.';

create function settlement.give_bank_slot(p_slot integer) returns boolean
language plpgsql volatile as $$
declare
  v boolean;
begin
  if p_slot is null then
    -- After an error: whatever this connection may hold.
    perform pg_advisory_unlock_all();
    v := true;
  else
    v := pg_advisory_unlock(21332, p_slot);
  end if;
  -- Waiting processes hold (21332, 0) shared: only then is there anyone to wake.
  if pg_try_advisory_lock(21332, 0) then
    perform pg_advisory_unlock(21332, 0);
  else
    perform pg_notify('settlement_bank_slot', '');
  end if;
  return v;
end $$;
comment on function settlement.give_bank_slot is 'Worker: gives back the bank-call slot this connection holds (null: every advisory lock of the connection) and wakes waiters.';

-- The slots in use right now, database-wide (what the console shows).
create function settlement.bank_slots_in_use() returns bigint
language sql stable as $$
  select count(*) from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
    and l.classid = 21332 and l.objsubid = 2 and l.objid > 0 and l.granted
$$;

-- The lease-based acquire/release of 0005/0010: nothing calls them now
-- (claim_transfer and finish_transfer below take and give advisory slots).
-- The table settlement.bank_slots is no longer read.
drop function settlement.acquire_bank_slot(text, integer);
drop function settlement.release_bank_slot(integer, text);

------------------------------------------------------------------------------
-- An index that no claim or outcome changes (updates stay HOT), in id order
-- within a day's kind.
create index transfers_day_id_idx on settlement.transfers (business_date, kind, purpose, id);
drop index settlement.transfers_day_idx;

-- journal_transfer of 0007, same entry and lines: two plain inserts of a
-- plpgsql function, planned once per connection (the SQL function of 0007
-- was parsed and planned again for every transfer).
create or replace function settlement.journal_transfer(t settlement.transfers) returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.journal_entries (business_date, kind, event, ref, memo)
  values (t.business_date, t.kind, t.purpose::text, t.is_tuno,
          case t.purpose when 'payout' then format('transfer %s (entry %s #%s)', t.id, t.entry_id, t.seq)
                         else format('withdrawal %s %s', t.business_date, t.kind) end)
  returning id into v_id;
  if t.purpose = 'payout' then
    insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
    values (v_id, 1, 'bank:' || t.to_account, t.amount), (v_id, 2, 'bank:' || t.from_account, -t.amount),
           (v_id, 3, 'due_to:' || t.kind, t.amount), (v_id, 4, 'due_from:' || t.from_account, -t.amount);
  else
    insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
    values (v_id, 1, 'bank:' || t.to_account, t.amount), (v_id, 2, 'bank:' || t.from_account, -t.amount);
  end if;
end $$;

-- A payout chunk settled: its journal entry, and confirm once nothing of the day is open.
create or replace function settlement.after_payout(t settlement.transfers) returns void
language plpgsql as $$
begin
  if t.state = 'succeeded' then
    perform settlement.journal_transfer(t);
  end if;
  -- Chunks are claimed in id order: a pending one is almost always among the
  -- next few ids of the day (then a later finisher will look again: no lock).
  if exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
             and x.purpose = 'payout' and x.id > t.id and x.state = 'pending')
     or exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
                and x.purpose = 'payout' and x.id < t.id and x.state = 'pending') then
    return;
  end if;
  -- Near the end the lock serialises the day's finishers, each looking with a
  -- fresh snapshot after taking it, so the last of two racing finishers sees
  -- the other's result (the job key collapses doubles). The crontab's
  -- confirm tick catches anything missed.
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', t.business_date, t.kind) # 1);
  if not exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
                 and x.purpose = 'payout' and x.id > t.id and x.state in ('pending', 'sending'))
     and not exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
                     and x.purpose = 'payout' and x.id < t.id and x.state in ('pending', 'sending')) then
    perform settlement.add_stage_job('confirm', t.business_date, t.kind);
  end if;
end $$;

------------------------------------------------------------------------------
-- The transfer state machine of 0010, same rules, checked by its function on
-- every update. The WHEN clause of 0010 was meant to spare the function call
-- on everyday transitions, but Postgres rebuilds a trigger's WHEN expression
-- for every statement, and each claim and outcome is a statement of one row:
-- the expression cost more than the function it spared.
drop trigger transfers_state_machine on settlement.transfers;
create trigger transfers_state_machine before update on settlement.transfers
  for each row execute function settlement.transfers_guard();

------------------------------------------------------------------------------
-- The balance check of 0010, same rule: after every statement that adds
-- lines, each entry they belong to balances and was posted by this
-- transaction (a missing entry included). Since every earlier statement left
-- its entries balanced, and lines are only ever added in the posting
-- transaction, an entry balances exactly when the lines this statement adds
-- to it sum to zero: the check reads the statement's own lines and one
-- entry row per entry, never the entry's earlier lines.
create or replace function settlement.journal_check_balance() returns trigger
language plpgsql as $$
declare
  r record;
  v_txid bigint;
  v_bad_id bigint;
  v_bad_diff bigint;
begin
  -- One lookup by primary key per entry (a plan that cannot turn into a scan
  -- of the journal when the statistics are stale). An entry that is closed
  -- (or missing) is reported before one that does not balance.
  for r in select journal_id, sum(amount) as diff from new_lines group by journal_id loop
    select e.txid into v_txid from settlement.journal_entries e where e.id = r.journal_id;
    if v_txid is null or v_txid <> txid_current() then
      raise exception 'journal entry % is closed: lines can only be added in the transaction that posts it', r.journal_id
        using errcode = 'ST007';
    end if;
    if r.diff <> 0 and v_bad_id is null then
      v_bad_id := r.journal_id;
      v_bad_diff := r.diff;
    end if;
  end loop;
  if v_bad_id is not null then
    raise exception 'journal entry % does not balance (debits - credits = %)', v_bad_id, v_bad_diff
      using errcode = 'ST006';
  end if;
  return null;
end $$;

------------------------------------------------------------------------------
-- The record stage (1M accruals -> 100k entries and journal lines): most of
-- its time went to per-row foreign-key checks, three per entry. Each is
-- implied by what remains:
--   entries -> accounts, entries -> days: entries are written only by
--     stage_record (no role may insert them), from that day's accruals, which
--     carry the same two foreign keys; accruals are append-only, so an
--     account or day with an entry always has an accrual holding it.
--   journal_lines -> journal_entries: the balance trigger below refuses any
--     line whose entry was not posted by the same transaction, a missing
--     entry included; entries are append-only.
alter table settlement.entries drop constraint entries_account_no_fkey;
alter table settlement.entries drop constraint entries_business_date_kind_fkey;
alter table settlement.journal_lines drop constraint journal_lines_journal_id_fkey;
-- Four more index entries per payout and one per recorded entry, for no
-- reader: every query of the lines by account matches a prefix (like
-- 'bank:%'), which this index of the database's collation cannot serve.
drop index settlement.journal_lines_account_idx;

-- stage_record of 0004, same results: the entries' totals come back from the
-- insert itself instead of a second read of the day's entries.
create or replace function settlement.stage_record(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_entries bigint;
  v_total bigint;
  v_accruals bigint;
  v_late bigint;
  v_journal bigint;
  v_detail text;
begin
  if p_date >= settlement.today() then
    return settlement.outcome('not_ready'::text, format('%s is not over yet in %s (today is %s)', p_date, settlement.time_zone(), settlement.today()));
  end if;
  perform settlement.ensure_day(p_date, p_kind);
  if settlement.lock_stage(p_date, p_kind, 'record') = 'done' then
    return settlement.outcome('already_done'::text, 'recorded earlier');
  end if;

  with ins as (
    insert into settlement.entries (business_date, kind, account_no, amount, accrual_count, late_count)
    select p_date, p_kind, a.account_no, sum(a.amount), count(*), count(*) filter (where a.origin_date <> a.settle_date)
    from settlement.accruals a
    where a.settle_date = p_date and a.kind = p_kind
    group by a.account_no
    returning amount, accrual_count, late_count)
  select count(*), coalesce(sum(amount), 0), coalesce(sum(accrual_count), 0), coalesce(sum(late_count), 0)
  into v_entries, v_total, v_accruals, v_late
  from ins;

  if v_entries > 0 then
    insert into settlement.journal_entries (business_date, kind, event, ref, memo)
    values (p_date, p_kind, 'record', format('record:%s:%s', p_date, p_kind), format('%s entries', v_entries))
    returning id into v_journal;
    -- Dr due_from:<loan account> for each entry, Cr due_to:<kind> for the total.
    insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
    select v_journal, (row_number() over (order by e.id))::int + 1, 'due_from:' || e.account_no, e.amount
    from settlement.entries e where e.business_date = p_date and e.kind = p_kind
    union all
    select v_journal, 1, 'due_to:' || p_kind, -v_total;
  end if;

  v_detail := format('%s entries, %s KRW from %s accruals (%s late)', v_entries, v_total, v_accruals, v_late);
  perform settlement.set_stage(p_date, p_kind, 'record', 'done', v_detail);
  perform settlement.add_stage_job('pay', p_date, p_kind);
  return settlement.outcome('done'::text, v_detail);
end $$;

------------------------------------------------------------------------------
-- claim_transfer of 0021 (pause check, then the claim), same answers; the
-- row is locked by its first read, so the update needs no self-join.
-- p_slot_holder not null: also take a bank-call slot for the attempt's first
-- call (an advisory lock of this connection; p_slot_lease_ms is not used: the
-- slot lives as long as the connection holds it).
create or replace function settlement.claim_transfer(p_id bigint, p_holder text, p_lease_ms integer,
  p_slot_holder text default null, p_slot_lease_ms integer default null)
returns settlement.transfer_claim
language plpgsql as $$
declare
  c settlement.transfer_claim;
  t settlement.transfers;
begin
  -- The row lock first: t is then the row the claim replaces (was it sent before?).
  select * into t from settlement.transfers where id = p_id for update;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  if t.state in ('pending', 'sending') and settlement.is_paused(t.kind) then
    return row('paused', false, false, t.id, t.purpose, t.is_tuno, t.tsymd, t.memo, t.fintech_apsno, t.fin_acno, t.to_bncd, t.to_account,
               t.amount, t.business_date, t.kind, t.attempt, null)::settlement.transfer_claim;
  end if;
  if t.state in ('pending', 'sending') and (t.claimed_until is null or t.claimed_until < now() or t.claimed_by = p_holder) then
    update settlement.transfers x
    set state = 'sending', tsymd = coalesce(x.tsymd, settlement.bank_ymd()), claimed_by = p_holder,
        claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
    where x.id = p_id
    returning 'send', t.tsymd is not null, x.tsymd = settlement.bank_ymd(), x.id, x.purpose, x.is_tuno, x.tsymd, x.memo, x.fintech_apsno,
              x.fin_acno, x.to_bncd, x.to_account, x.amount, x.business_date, x.kind, x.attempt, null::integer
    into c;
    if p_slot_holder is not null then
      c.slot := settlement.try_bank_slot();
    end if;
    return c;
  end if;
  return row(case when t.state in ('succeeded', 'failed') then 'settled' else 'busy' end, false, false, t.id, t.purpose, t.is_tuno, t.tsymd,
             t.memo, t.fintech_apsno, t.fin_acno, t.to_bncd, t.to_account, t.amount, t.business_date, t.kind, t.attempt, null)::settlement.transfer_claim;
end $$;
comment on function settlement.claim_transfer is
  'Transfer task: claims a transfer for one bank attempt (a lease), fixing its Tsymd by the database''s clock on the first call; answers paused (no claim) while settlement.pause covers its kind. With p_slot_holder, also takes a bank-call slot held by this connection (slot null: none free).';

------------------------------------------------------------------------------
-- finish_transfer of 0009 (orphans recorded); p_slot not null: gives back
-- that bank-call slot of this connection first.
create or replace function settlement.finish_transfer(p_id bigint, p_is_tuno text, p_outcome text, p_processed_at text,
  p_code text, p_message text, p_slot integer default null, p_slot_holder text default null)
returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  if p_slot is not null then
    perform settlement.give_bank_slot(p_slot);
  end if;
  -- The bank holds the truth about a transfer, so a finish lost in a database
  -- crash is recovered like a worker that died before finishing: the transfer
  -- is still 'sending' under its claim and its next attempt asks the bank
  -- first. Its commit need not wait for the WAL flush. (The job's completion
  -- commits after it, synchronously: once that is durable, so is this.)
  perform set_config('synchronous_commit', 'off', true);
  if p_outcome is null or p_outcome not in ('succeeded', 'failed', 'unresolved') then
    perform settlement.raise_error('ST009', format('finish_transfer: outcome must be succeeded, failed or unresolved, got %s', p_outcome));
  end if;
  if p_outcome = 'unresolved' then
    update settlement.transfers
    set claimed_by = null, claimed_until = null, unresolved_since = coalesce(unresolved_since, now()),
        unresolved_reason = left(p_message, 500), updated_at = now()
    where id = p_id and is_tuno = p_is_tuno and state = 'sending';
    return case when found then 'unresolved' else settlement.finish_miss(p_id, p_is_tuno) end;
  end if;

  update settlement.transfers
  set state = p_outcome::settlement.transfer_state, processed_at = p_processed_at, fail_code = p_code,
      fail_message = left(p_message, 500), settled_at = now(), claimed_by = null, claimed_until = null,
      unresolved_since = null, unresolved_reason = null, updated_at = now()
  where id = p_id and is_tuno = p_is_tuno and state in ('pending', 'sending')
  returning * into t;
  if not found then
    return settlement.finish_miss(p_id, p_is_tuno, p_outcome, p_processed_at);
  end if;
  insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message, processed_at)
  values (t.id, t.is_tuno, t.tsymd, t.amount, t.state, t.fail_code, t.fail_message, t.processed_at);
  if t.purpose = 'payout' then
    perform settlement.after_payout(t);
  else
    perform settlement.after_withdrawal(t);
  end if;
  return p_outcome;
end $$;
comment on function settlement.finish_transfer is
  'Transfer task: records the bank''s answer for a transfer (+ journal, + what follows) once, giving back the attempt''s bank-call slot. A booking confirmed for a number the transfer no longer holds (stale) is recorded as an orphan with a suspense journal entry.';

------------------------------------------------------------------------------
-- What the console shows: slots in use from the lock table; per worker, the
-- slots held by its connections (application_name settle-worker:<pid>).
create or replace function settlement.console_bank()
returns table (in_use bigint, max_in_flight integer, per_call_limit bigint, time_zone text)
language sql stable as $$
  select settlement.bank_slots_in_use(), c.max_in_flight, c.per_call_limit, c.time_zone
  from settlement.config c where c.id
$$;

create or replace function settlement.console_workers()
returns table (pool_id text, host text, pid integer, started_at text, age_seconds double precision, alive boolean,
               jobs_locked bigint, tasks text, bank_slots bigint, transfers_claimed bigint)
language sql stable as $$
  select w.pool_id, w.host, w.pid, settlement.console_time(w.started_at), extract(epoch from now() - w.last_beat)::float8,
         w.last_beat > now() - o.worker_silent_after,
         (select count(*) from graphile_worker.jobs j where j.locked_by = w.pool_id),
         (select string_agg(x.task_identifier || ' ' || x.n, ', ' order by x.task_identifier)
          from (select j.task_identifier, count(*) as n from graphile_worker.jobs j where j.locked_by = w.pool_id group by 1) x),
         (select count(*) from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.classid = 21332 and l.objsubid = 2 and l.objid > 0 and l.granted
            and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
            and a.application_name = 'settle-worker:' || w.pid),
         (select count(*) from settlement.transfers t where t.claimed_by = w.pool_id and t.state = 'sending' and t.claimed_until > now())
  from settlement.workers w cross join settlement.ops_settings o
  where o.id
  order by w.started_at, w.pool_id
$$;

------------------------------------------------------------------------------
-- Grants (settlement_meta.api of 0023): definer functions with a fixed
-- search_path; create or replace reset that for the functions replaced above.

select settlement_meta.api('settlement_worker', array[
  'claim_transfer(bigint, text, integer, text, integer)',
  'finish_transfer(bigint, text, text, text, text, text, integer, text)',
  'try_bank_slot()',
  'give_bank_slot(integer)',
  'bank_slots_in_use()']);
select settlement_meta.api('settlement_viewer', array[
  'bank_slots_in_use()',
  'console_bank()',
  'console_workers()']);
revoke all on all functions in schema settlement from public;
