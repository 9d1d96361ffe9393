-- Payout and withdrawal bookkeeping around the bank call, the operator's
-- enqueue and retry functions, the global bank-call limit and crash recovery.

-- What a payout job should do with its chunk, decided under the chunk's row lock.
--   settled : the chunk already has its result; nothing to do
--   busy    : another live attempt holds it; try again later
--   send    : call the bank under is_tuno; resume = an earlier attempt may
--             have reached the bank, so ask the bank about it first
-- slot: a bank-call slot taken in the same round trip (null if none was free
-- or none was asked for); finish_chunk gives it back.
create type settlement.transfer_claim as (
  action text, resume boolean, is_tuno text, tsymd text, from_account text, to_account text,
  amount bigint, business_date date, kind settlement.kind, attempt integer, slot integer
);

create function settlement.claim_chunk(p_chunk_id bigint, p_holder text, p_lease_ms integer,
  p_slot_holder text default null, p_slot_lease_ms integer default null)
returns settlement.transfer_claim
language plpgsql as $$
declare
  c settlement.chunks;
  v_resume boolean;
  v_slot integer;
begin
  select * into c from settlement.chunks where id = p_chunk_id for update;
  if not found then
    perform settlement.raise_error('ST008', format('chunk %s does not exist', p_chunk_id));
  end if;
  if c.state in ('succeeded', 'failed') then
    return row('settled'::text, false, c.is_tuno, c.tsymd, c.from_account, c.to_account, c.amount, c.business_date, c.kind, c.attempt, null::int);
  end if;
  if c.state = 'sending' and c.claimed_until > now() and c.claimed_by is distinct from p_holder then
    return row('busy'::text, true, c.is_tuno, c.tsymd, c.from_account, c.to_account, c.amount, c.business_date, c.kind, c.attempt, null::int);
  end if;
  v_resume := c.state = 'sending';
  update settlement.chunks
  set state = 'sending', tsymd = coalesce(tsymd, settlement.bank_ymd()), claimed_by = p_holder,
      claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
  where id = p_chunk_id
  returning * into c;
  -- Saves the payout's first bank call a round trip of its own to the limiter.
  if p_slot_holder is not null then
    v_slot := settlement.acquire_bank_slot(p_slot_holder, p_slot_lease_ms);
  end if;
  return row('send'::text, v_resume, c.is_tuno, c.tsymd, c.from_account, c.to_account, c.amount, c.business_date, c.kind, c.attempt, v_slot);
end $$;
comment on function settlement.claim_chunk is 'Payout task: claims a chunk for one bank attempt (lease), fixing its Tsymd on the first call.';

-- Records what the bank said about a chunk. Idempotent: a chunk that already
-- has its result is left alone. 'unknown' only releases the claim.
create function settlement.finish_chunk(p_chunk_id bigint, p_is_tuno text, p_outcome text,
  p_bank_ref text, p_code text, p_message text, p_slot integer default null, p_slot_holder text default null)
returns text
language plpgsql as $$
declare
  c settlement.chunks;
begin
  if p_outcome not in ('succeeded', 'failed', 'unknown') then
    perform settlement.raise_error('ST009', format('finish_chunk: outcome must be succeeded, failed or unknown, got %s', p_outcome));
  end if;
  if p_slot is not null then
    perform settlement.release_bank_slot(p_slot, p_slot_holder);
  end if;
  select * into c from settlement.chunks where id = p_chunk_id for update;
  if not found then
    perform settlement.raise_error('ST008', format('chunk %s does not exist', p_chunk_id));
  end if;
  if c.is_tuno <> p_is_tuno then
    return 'stale';
  end if;
  if c.state in ('succeeded', 'failed') then
    return 'already_settled';
  end if;
  if p_outcome = 'unknown' then
    update settlement.chunks set claimed_by = null, claimed_until = null, updated_at = now() where id = p_chunk_id;
    return 'unknown';
  end if;
  if p_outcome = 'failed' and p_code = 'expired_not_booked' then
    -- The bank confirmed nothing was booked under (tsymd, is_tuno) and that
    -- date is over: the chunk is planned again under a new number, at once.
    insert into settlement.transfer_attempts (chunk_id, business_date, kind, is_tuno, tsymd, amount, outcome, code, message)
    values (c.id, c.business_date, c.kind, c.is_tuno, c.tsymd, c.amount, 'failed', p_code, p_message);
    update settlement.chunks
    set state = 'pending', attempt = attempt + 1, is_tuno = settlement.next_istuno(), tsymd = null,
        claimed_by = null, claimed_until = null, updated_at = now()
    where id = p_chunk_id;
    return 'replanned';
  end if;
  update settlement.chunks
  set state = p_outcome::settlement.transfer_state, bank_ref = p_bank_ref, fail_code = p_code, fail_message = p_message,
      settled_at = now(), claimed_by = null, claimed_until = null, updated_at = now()
  where id = p_chunk_id;
  insert into settlement.transfer_attempts (chunk_id, business_date, kind, is_tuno, tsymd, amount, outcome, code, message, bank_ref)
  values (c.id, c.business_date, c.kind, c.is_tuno, c.tsymd, c.amount, p_outcome::settlement.transfer_state, p_code, p_message, p_bank_ref);
  if p_outcome = 'succeeded' then
    -- Money moved loan -> settlement account at the bank, and the loan
    -- account's recorded debt to the kind is paid down by the same amount.
    perform settlement.post_journal(c.business_date, c.kind, 'payout', c.is_tuno, jsonb_build_array(
      jsonb_build_object('account', 'bank:' || c.to_account, 'amount', c.amount),
      jsonb_build_object('account', 'bank:' || c.from_account, 'amount', -c.amount),
      jsonb_build_object('account', 'due_to:' || c.kind, 'amount', c.amount),
      jsonb_build_object('account', 'due_from:' || c.from_account, 'amount', -c.amount)),
      format('chunk %s (entry %s #%s)', c.id, c.entry_id, c.seq));
  end if;
  -- Once nothing of the day is in flight, enqueue the confirm stage. While
  -- chunks wait to be claimed, a later finisher will look again: no lock.
  -- Near the end, the lock serialises the day's finishers from here to
  -- commit, and each counts with a fresh snapshot after taking it, so the
  -- last of two racing finishers sees the other's result (the job key
  -- collapses doubles). A confirm missed by a finisher that saw a pending
  -- chunk, which was then claimed, paid and finished inside this
  -- transaction's last milliseconds, is caught by the crontab's confirm tick.
  if exists (select 1 from settlement.chunks x where x.business_date = c.business_date and x.kind = c.kind and x.state = 'pending') then
    return p_outcome;
  end if;
  perform pg_advisory_xact_lock(('x' || substr(md5('daily-settlement:finish:' || c.business_date || ':' || c.kind), 1, 16))::bit(64)::bigint);
  if not exists (select 1 from settlement.chunks x where x.business_date = c.business_date and x.kind = c.kind and x.state in ('pending', 'sending')) then
    perform settlement.add_stage_job('confirm', c.business_date, c.kind);
  end if;
  return p_outcome;
end $$;
comment on function settlement.finish_chunk is 'Payout task: records the bank''s answer for a chunk (+ journal) once.';

------------------------------------------------------------------------------
create function settlement.claim_withdrawal(p_date date, p_kind settlement.kind, p_holder text, p_lease_ms integer)
returns settlement.transfer_claim
language plpgsql as $$
declare
  w settlement.withdrawals;
  v_resume boolean;
begin
  select * into w from settlement.withdrawals where business_date = p_date and kind = p_kind for update;
  if not found then
    perform settlement.raise_error('ST008', format('no withdrawal exists for %s %s', p_date, p_kind));
  end if;
  if w.state in ('succeeded', 'failed') then
    return row('settled'::text, false, w.is_tuno, w.tsymd, w.from_account, w.to_account, w.amount, w.business_date, w.kind, w.attempt, null::int);
  end if;
  if w.state = 'sending' and w.claimed_until > now() and w.claimed_by is distinct from p_holder then
    return row('busy'::text, true, w.is_tuno, w.tsymd, w.from_account, w.to_account, w.amount, w.business_date, w.kind, w.attempt, null::int);
  end if;
  v_resume := w.state = 'sending';
  update settlement.withdrawals
  set state = 'sending', tsymd = coalesce(tsymd, settlement.bank_ymd()), claimed_by = p_holder,
      claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
  where business_date = p_date and kind = p_kind
  returning * into w;
  return row('send'::text, v_resume, w.is_tuno, w.tsymd, w.from_account, w.to_account, w.amount, w.business_date, w.kind, w.attempt, null::int);
end $$;

create function settlement.finish_withdrawal(p_date date, p_kind settlement.kind, p_is_tuno text, p_outcome text,
  p_bank_ref text, p_code text, p_message text)
returns text
language plpgsql as $$
declare
  w settlement.withdrawals;
begin
  if p_outcome not in ('succeeded', 'failed', 'unknown') then
    perform settlement.raise_error('ST009', format('finish_withdrawal: outcome must be succeeded, failed or unknown, got %s', p_outcome));
  end if;
  select * into w from settlement.withdrawals where business_date = p_date and kind = p_kind for update;
  if not found then
    perform settlement.raise_error('ST008', format('no withdrawal exists for %s %s', p_date, p_kind));
  end if;
  if w.is_tuno <> p_is_tuno then
    return 'stale';
  end if;
  if w.state in ('succeeded', 'failed') then
    return 'already_settled';
  end if;
  if p_outcome = 'unknown' then
    update settlement.withdrawals set claimed_by = null, claimed_until = null, updated_at = now()
    where business_date = p_date and kind = p_kind;
    return 'unknown';
  end if;
  if p_outcome = 'failed' and p_code = 'expired_not_booked' then
    insert into settlement.transfer_attempts (chunk_id, business_date, kind, is_tuno, tsymd, amount, outcome, code, message)
    values (null, p_date, p_kind, w.is_tuno, w.tsymd, w.amount, 'failed', p_code, p_message);
    update settlement.withdrawals
    set state = 'pending', attempt = attempt + 1, is_tuno = settlement.next_istuno(), tsymd = null,
        claimed_by = null, claimed_until = null, updated_at = now()
    where business_date = p_date and kind = p_kind;
    return 'replanned';
  end if;
  update settlement.withdrawals
  set state = p_outcome::settlement.transfer_state, bank_ref = p_bank_ref, fail_code = p_code, fail_message = p_message,
      settled_at = now(), claimed_by = null, claimed_until = null, updated_at = now()
  where business_date = p_date and kind = p_kind;
  insert into settlement.transfer_attempts (chunk_id, business_date, kind, is_tuno, tsymd, amount, outcome, code, message, bank_ref)
  values (null, p_date, p_kind, w.is_tuno, w.tsymd, w.amount, p_outcome::settlement.transfer_state, p_code, p_message, p_bank_ref);
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', p_date, p_kind));
  if p_outcome = 'succeeded' then
    perform settlement.post_journal(p_date, p_kind, 'withdrawal', w.is_tuno, jsonb_build_array(
      jsonb_build_object('account', 'bank:' || w.to_account, 'amount', w.amount),
      jsonb_build_object('account', 'bank:' || w.from_account, 'amount', -w.amount)),
      format('withdrawal %s %s', p_date, p_kind));
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'done', format('%s KRW withdrawn (%s)', w.amount, w.is_tuno));
  else
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'blocked',
      format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', p_code, p_message, p_date, p_kind));
  end if;
  return p_outcome;
end $$;

------------------------------------------------------------------------------
-- Operator: re-enqueue what failed for good, after fixing the cause. A failed
-- transfer gets a new IsTuno: the bank said the old one was not booked.
create function settlement.retry_failed(business_date date, kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_d date := retry_failed.business_date;
  v_k settlement.kind := retry_failed.kind;
  v_n integer := 0;
  v_w integer := 0;
begin
  if v_d is null or v_k is null then
    perform settlement.raise_error('ST001', 'retry_failed: business_date and kind are required');
  end if;
  if not exists (select 1 from settlement.days d where d.business_date = v_d and d.kind = v_k) then
    perform settlement.raise_error('ST010', format('retry_failed: no settlement day %s %s', v_d, v_k));
  end if;
  -- Serialise with the confirm and withdraw stages of the day.
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', v_d, v_k));
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', v_d, v_k));

  update settlement.chunks c
  set state = 'pending', attempt = c.attempt + 1, is_tuno = settlement.next_istuno(), tsymd = null,
      fail_code = null, fail_message = null, bank_ref = null, settled_at = null, updated_at = now()
  where c.business_date = v_d and c.kind = v_k and c.state = 'failed';
  get diagnostics v_n = row_count;
  if v_n > 0 then
    perform graphile_worker.add_jobs(settlement.payout_job_specs(v_d, v_k, array['pending']::settlement.transfer_state[]));
    update settlement.stage_runs r set state = 'pending', detail = format('%s chunks retried by operator', v_n), updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'confirm' and r.state = 'blocked';
  end if;

  update settlement.withdrawals w
  set state = 'pending', attempt = w.attempt + 1, is_tuno = settlement.next_istuno(), tsymd = null,
      fail_code = null, fail_message = null, bank_ref = null, settled_at = null, updated_at = now()
  where w.business_date = v_d and w.kind = v_k and w.state = 'failed';
  get diagnostics v_w = row_count;
  if v_w > 0 then
    perform settlement.add_withdraw_job(v_d, v_k);
    update settlement.stage_runs r set state = 'running', detail = 'withdrawal retried by operator', updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'withdraw';
  end if;
  return v_n + v_w;
end $$;
comment on function settlement.retry_failed is 'Operator: re-enqueues the chunks (and withdrawal) of a day that failed for good, under new IsTunos. Returns how many.';

-- Days that are over and not fully settled (withdraw not done), oldest first:
-- what the crontab's stage ticks and enqueue_stage(stage) work through.
create function settlement.open_days()
returns table (business_date date, kind settlement.kind)
language sql stable as $$
  select w.business_date, w.kind from settlement.stage_runs w
  where w.stage = 'withdraw' and w.state <> 'done' and w.business_date < settlement.today()
  order by w.business_date, w.kind
$$;
comment on function settlement.open_days is 'Days that are over and whose withdraw is not done, oldest first.';

-- Operator / crontab: enqueue stage jobs. Null date = every open day; null
-- kind = every kind.
create function settlement.enqueue_stage(stage settlement.stage, business_date date default null, kind settlement.kind default null)
returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  r record;
begin
  if enqueue_stage.stage is null then
    perform settlement.raise_error('ST001', 'enqueue_stage: stage is required');
  end if;
  for r in
    select o.business_date as d, o.kind as k from settlement.open_days() o
    where enqueue_stage.business_date is null and (enqueue_stage.kind is null or o.kind = enqueue_stage.kind)
    union all
    select enqueue_stage.business_date, k.kind from unnest(enum_range(null::settlement.kind)) as k(kind)
    where enqueue_stage.business_date is not null and (enqueue_stage.kind is null or k.kind = enqueue_stage.kind)
    order by 1, 2
  loop
    perform settlement.add_stage_job(enqueue_stage.stage, r.d, r.k);
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;
comment on function settlement.enqueue_stage is 'Operator: adds stage jobs (job keys collapse duplicates). Null date = every open day; null kind = every kind. Returns how many.';

-- Safety net run by the crontab: any unsettled chunk or withdrawal of a paid
-- day gets its job again (the job key collapses it with a waiting one).
create function settlement.requeue_unsettled() returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  r record;
begin
  for r in
    select distinct c.business_date, c.kind from settlement.chunks c where c.state in ('pending', 'sending')
      and (c.claimed_until is null or c.claimed_until < now())
      and not exists (select 1 from graphile_worker.jobs j where j.key = 'payout:' || c.id and j.attempts < j.max_attempts)
  loop
    perform graphile_worker.add_jobs(settlement.payout_job_specs(r.business_date, r.kind, array['pending', 'sending']::settlement.transfer_state[]));
    v_n := v_n + 1;
  end loop;
  for r in
    select w.business_date, w.kind from settlement.withdrawals w where w.state in ('pending', 'sending')
      and not exists (select 1 from graphile_worker.jobs j where j.key = format('withdraw:%s:%s', w.business_date, w.kind) and j.attempts < j.max_attempts)
  loop
    perform settlement.add_withdraw_job(r.business_date, r.kind);
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;

------------------------------------------------------------------------------
-- Global bank-call limit: lease one of max_in_flight slots per call.
create function settlement.acquire_bank_slot(p_holder text, p_lease_ms integer) returns integer
language sql as $$
  update settlement.bank_slots s
  set holder = p_holder, lease_until = now() + make_interval(secs => p_lease_ms / 1000.0)
  where s.slot = (
    select slot from settlement.bank_slots
    where slot <= (select max_in_flight from settlement.config where id)
      and (holder is null or lease_until < now())
    order by slot
    limit 1
    for update skip locked)
  returning s.slot
$$;

create function settlement.release_bank_slot(p_slot integer, p_holder text) returns void
language sql as $$
  update settlement.bank_slots set holder = null, lease_until = null where slot = p_slot and holder = p_holder
$$;

-- Applies the worker's validated settings (time zone, limits) to the database.
create function settlement.configure(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer) returns void
language plpgsql as $$
begin
  perform now() at time zone p_time_zone; -- raises for an unknown zone
  update settlement.config
  set time_zone = p_time_zone, per_call_limit = p_per_call_limit, max_in_flight = p_max_in_flight, updated_at = now()
  where id and (time_zone, per_call_limit, max_in_flight) is distinct from (p_time_zone, p_per_call_limit, p_max_in_flight);
  insert into settlement.bank_slots (slot) select generate_series(1, p_max_in_flight) on conflict do nothing;
end $$;

------------------------------------------------------------------------------
-- Crash recovery: workers beat; the jobs of a pool that stopped beating are
-- unlocked (graphile-worker alone would keep them locked for 4 hours), and its
-- bank slots and chunk claims are released.
create function settlement.worker_beat(p_pool_id text, p_host text, p_pid integer) returns void
language sql as $$
  insert into settlement.workers (pool_id, host, pid) values (p_pool_id, p_host, p_pid)
  on conflict (pool_id) do update set last_beat = now()
$$;

create function settlement.worker_gone(p_pool_id text) returns void
language sql as $$ delete from settlement.workers where pool_id = p_pool_id $$;

create function settlement.recover_dead_workers(p_dead_after_ms integer) returns text[]
language plpgsql as $$
declare
  v_dead text[];
begin
  select coalesce(array_agg(pool_id), '{}') into v_dead
  from settlement.workers where last_beat < now() - make_interval(secs => p_dead_after_ms / 1000.0);
  -- Also pools that hold jobs but never registered or were already removed.
  select coalesce(array_agg(distinct x), '{}') into v_dead from (
    select unnest(v_dead) as x
    union
    select j.locked_by from graphile_worker.jobs j
    where j.locked_by is not null and j.locked_at < now() - make_interval(secs => p_dead_after_ms / 1000.0)
      and not exists (select 1 from settlement.workers w where w.pool_id = j.locked_by)
  ) t;
  if cardinality(v_dead) = 0 then
    return v_dead;
  end if;
  perform graphile_worker.force_unlock_workers(v_dead);
  update settlement.bank_slots set holder = null, lease_until = null where split_part(holder, '/', 1) = any (v_dead);
  update settlement.chunks set claimed_until = null where claimed_by = any (v_dead) and state = 'sending';
  update settlement.withdrawals set claimed_until = null where claimed_by = any (v_dead) and state = 'sending';
  delete from settlement.workers where pool_id = any (v_dead);
  return v_dead;
end $$;
comment on function settlement.recover_dead_workers is 'Unlocks the jobs, bank slots and claims of worker pools whose heartbeat stopped.';
