-- The four stages. Each is one SQL function run by settlement.run_stage inside
-- the caller's transaction: a non-waiting advisory lock per (stage, date,
-- kind), a verifier, then the whole stage or a named outcome and no change.

create type settlement.stage_result as (outcome text, detail text);

create function settlement.outcome(p_outcome text, p_detail text) returns settlement.stage_result
language sql immutable as $$ select row(p_outcome, p_detail)::settlement.stage_result $$;

create function settlement.stage_lock_key(p_stage settlement.stage, p_date date, p_kind settlement.kind) returns bigint
language sql immutable as $$
  select ('x' || substr(md5('daily-settlement:' || p_stage || ':' || p_date || ':' || p_kind), 1, 16))::bit(64)::bigint
$$;

-- Adds the job that runs a stage for one (date, kind). The job key collapses
-- duplicates that are still waiting.
create function settlement.add_stage_job(p_stage settlement.stage, p_date date, p_kind settlement.kind, p_run_at timestamptz default null)
returns void
language sql as $$
  select null from graphile_worker.add_job(
    'stage',
    json_build_object('stage', p_stage, 'date', p_date, 'kind', p_kind),
    run_at => p_run_at,
    max_attempts => 10,
    job_key => format('stage:%s:%s:%s', p_stage, p_date, p_kind),
    job_key_mode => 'replace');
$$;

create function settlement.set_stage(p_date date, p_kind settlement.kind, p_stage settlement.stage,
  p_state settlement.stage_state, p_detail text) returns void
language sql as $$
  update settlement.stage_runs
  set state = p_state,
      detail = p_detail,
      runs = runs + 1,
      started_at = coalesce(started_at, now()),
      finished_at = case when p_state = 'done' then now() else finished_at end,
      updated_at = now()
  where business_date = p_date and kind = p_kind and stage = p_stage;
$$;

-- Locks a stage row (after the advisory lock, this only waits for short
-- writers such as accrue or a payout result) and returns its state.
create function settlement.lock_stage(p_date date, p_kind settlement.kind, p_stage settlement.stage)
returns settlement.stage_state
language sql as $$
  select state from settlement.stage_runs
  where business_date = p_date and kind = p_kind and stage = p_stage
  for update
$$;

create function settlement.stage_state_of(p_date date, p_kind settlement.kind, p_stage settlement.stage)
returns settlement.stage_state
language sql stable as $$
  select state from settlement.stage_runs where business_date = p_date and kind = p_kind and stage = p_stage
$$;

------------------------------------------------------------------------------
-- record: that day's accruals -> one entry per loan account (+ journal)
create function settlement.stage_record(p_date date, p_kind settlement.kind) returns settlement.stage_result
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

  insert into settlement.entries (business_date, kind, account_no, amount, accrual_count, late_count)
  select p_date, p_kind, a.account_no, sum(a.amount), count(*), count(*) filter (where a.origin_date <> a.settle_date)
  from settlement.accruals a
  where a.settle_date = p_date and a.kind = p_kind
  group by a.account_no;

  select count(*), coalesce(sum(amount), 0), coalesce(sum(accrual_count), 0), coalesce(sum(late_count), 0)
  into v_entries, v_total, v_accruals, v_late
  from settlement.entries where business_date = p_date and kind = p_kind;

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
-- pay: entries -> chunks <= per-call limit, one payout job per chunk, same txn
create function settlement.payout_job_specs(p_date date, p_kind settlement.kind, p_states settlement.transfer_state[])
returns graphile_worker.job_spec[]
language sql stable as $$
  select coalesce(array_agg(row(
      'payout', json_build_object('chunk_id', c.id), null, null, 25, 'payout:' || c.id, null, null
    )::graphile_worker.job_spec order by c.id), '{}')
  from settlement.chunks c
  where c.business_date = p_date and c.kind = p_kind and c.state = any (p_states)
$$;

create function settlement.stage_pay(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_limit bigint;
  v_to text;
  v_chunks bigint;
  v_total bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'record') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'record is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'pay') = 'done' then
    return settlement.outcome('already_done'::text, 'paid out earlier');
  end if;
  select settlement_account into v_to from settlement.kind_accounts where kind = p_kind;
  if v_to is null then
    v_detail := format('no settlement account is configured for %s (settlement.kind_accounts)', p_kind);
    perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  select per_call_limit into v_limit from settlement.config where id;

  -- 250,000 with a 100,000 limit -> 100,000 + 100,000 + 50,000.
  insert into settlement.chunks (entry_id, seq, business_date, kind, from_account, to_account, amount, is_tuno)
  select e.id, s.seq, p_date, p_kind, e.account_no, v_to,
         least(v_limit, e.amount - (s.seq - 1) * v_limit), settlement.next_istuno()
  from settlement.entries e
  cross join lateral generate_series(1, ((e.amount + v_limit - 1) / v_limit)::int) as s(seq)
  where e.business_date = p_date and e.kind = p_kind
  order by e.id, s.seq;
  get diagnostics v_chunks = row_count;

  perform graphile_worker.add_jobs(settlement.payout_job_specs(p_date, p_kind, array['pending']::settlement.transfer_state[]));

  select coalesce(sum(amount), 0) into v_total from settlement.chunks where business_date = p_date and kind = p_kind;
  v_detail := format('%s chunks, %s KRW enqueued (limit %s per call)', v_chunks, v_total, v_limit);
  perform settlement.set_stage(p_date, p_kind, 'pay', 'done', v_detail);
  if v_chunks = 0 then
    perform settlement.add_stage_job('confirm', p_date, p_kind);
  end if;
  return settlement.outcome('done'::text, v_detail);
end $$;

------------------------------------------------------------------------------
-- confirm: every chunk succeeded? (from results recorded in the database)
create function settlement.stage_confirm(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_total bigint; v_ok bigint; v_failed bigint; v_open bigint; v_amount bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'pay') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'pay is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'confirm') = 'done' then
    return settlement.outcome('already_done'::text, 'confirmed earlier');
  end if;
  select count(*), count(*) filter (where state = 'succeeded'), count(*) filter (where state = 'failed'),
         count(*) filter (where state in ('pending', 'sending')), coalesce(sum(amount) filter (where state = 'succeeded'), 0)
  into v_total, v_ok, v_failed, v_open, v_amount
  from settlement.chunks where business_date = p_date and kind = p_kind;

  if v_failed > 0 then
    v_detail := format('%s of %s chunks failed for good (see settlement.payout_failures; fix, then settlement.retry_failed(%L, %L)); %s in flight',
                       v_failed, v_total, p_date, p_kind, v_open);
    perform settlement.set_stage(p_date, p_kind, 'confirm', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  if v_open > 0 then
    return settlement.outcome('not_ready'::text, format('%s of %s chunks still in flight', v_open, v_total));
  end if;
  v_detail := format('%s chunks succeeded, %s KRW', v_ok, v_amount);
  perform settlement.set_stage(p_date, p_kind, 'confirm', 'done', v_detail);
  perform settlement.add_stage_job('withdraw', p_date, p_kind);
  return settlement.outcome('done'::text, v_detail);
end $$;

------------------------------------------------------------------------------
-- withdraw: the confirmed total, settlement account -> corporate account, once
create function settlement.stage_withdraw(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_w settlement.withdrawals;
  v_total bigint;
  v_from text; v_to text;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'confirm') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'confirm is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'withdraw') = 'done' then
    return settlement.outcome('already_done'::text, 'withdrawn earlier');
  end if;
  select * into v_w from settlement.withdrawals where business_date = p_date and kind = p_kind;
  if found then
    if v_w.state = 'failed' then
      return settlement.outcome('blocked'::text, format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', v_w.fail_code, v_w.fail_message, p_date, p_kind));
    end if;
    -- Already started: make sure its job exists (collapses with a waiting one).
    perform settlement.add_withdraw_job(p_date, p_kind);
    return settlement.outcome('in_progress'::text, format('withdrawal %s of %s KRW is %s', v_w.is_tuno, v_w.amount, v_w.state));
  end if;

  select coalesce(sum(amount), 0) into v_total
  from settlement.chunks where business_date = p_date and kind = p_kind and state = 'succeeded';
  if v_total = 0 then
    v_detail := 'nothing to withdraw (0 KRW confirmed)';
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'done', v_detail);
    return settlement.outcome('done'::text, v_detail);
  end if;
  select settlement_account, corporate_account into v_from, v_to from settlement.kind_accounts where kind = p_kind;
  insert into settlement.withdrawals (business_date, kind, from_account, to_account, amount, is_tuno)
  values (p_date, p_kind, v_from, v_to, v_total, settlement.next_istuno());
  perform settlement.add_withdraw_job(p_date, p_kind);
  v_detail := format('withdrawal of %s KRW enqueued', v_total);
  perform settlement.set_stage(p_date, p_kind, 'withdraw', 'running', v_detail);
  return settlement.outcome('started'::text, v_detail);
end $$;

create function settlement.add_withdraw_job(p_date date, p_kind settlement.kind) returns void
language sql as $$
  select null from graphile_worker.add_job(
    'withdraw', json_build_object('date', p_date, 'kind', p_kind),
    max_attempts => 25, job_key => format('withdraw:%s:%s', p_date, p_kind), job_key_mode => 'replace');
$$;

------------------------------------------------------------------------------
create function settlement.run_stage(stage settlement.stage, business_date date, kind settlement.kind)
returns table (outcome text, detail text)
language plpgsql as $$
declare
  r settlement.stage_result;
begin
  if run_stage.stage is null or run_stage.business_date is null or run_stage.kind is null then
    perform settlement.raise_error('ST001', 'run_stage: stage, business_date and kind are required');
  end if;
  if not pg_try_advisory_xact_lock(settlement.stage_lock_key(run_stage.stage, run_stage.business_date, run_stage.kind)) then
    return query select 'busy'::text, format('%s %s %s is running elsewhere', run_stage.stage, run_stage.business_date, run_stage.kind);
    return;
  end if;
  r := case run_stage.stage
         when 'record' then settlement.stage_record(run_stage.business_date, run_stage.kind)
         when 'pay' then settlement.stage_pay(run_stage.business_date, run_stage.kind)
         when 'confirm' then settlement.stage_confirm(run_stage.business_date, run_stage.kind)
         when 'withdraw' then settlement.stage_withdraw(run_stage.business_date, run_stage.kind)
       end;
  return query select r.outcome, r.detail;
end $$;
comment on function settlement.run_stage is
  'Runs one stage for (business_date, kind) now, in the caller''s transaction. Outcomes: done, already_done, not_ready, busy, blocked; withdraw also started, in_progress.';
