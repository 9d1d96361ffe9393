-- The stages. Each is one SQL function run by settlement.run_stage inside
-- the caller's transaction: a non-waiting advisory lock per (stage, date,
-- kind), a verifier, then the whole stage or a named outcome and no change.
-- A finished stage enqueues the next stage's job in the same transaction.

create or replace function settlement.stage_lock_key(p_stage settlement.stage, p_date date, p_kind settlement.kind) returns bigint
language sql immutable as $$
  select ('x' || substr(md5('daily-settlement:' || p_stage || ':' || p_date || ':' || p_kind), 1, 16))::bit(64)::bigint
$$;

-- Locks a stage row (after the advisory lock, this only waits for short
-- writers such as accrue or a payout result) and returns its state.
create or replace function settlement.lock_stage(p_date date, p_kind settlement.kind, p_stage settlement.stage)
returns settlement.stage_state
language sql as $$
  select state from settlement.stage_runs
  where business_date = p_date and kind = p_kind and stage = p_stage
  for update
$$;

create or replace function settlement.stage_state_of(p_date date, p_kind settlement.kind, p_stage settlement.stage)
returns settlement.stage_state
language sql stable as $$
  select state from settlement.stage_runs where business_date = p_date and kind = p_kind and stage = p_stage
$$;

create or replace function settlement.set_stage(p_date date, p_kind settlement.kind, p_stage settlement.stage,
  p_state settlement.stage_state, p_detail text) returns void
language sql as $$
  update settlement.stage_runs
  set state = p_state,
      detail = p_detail,
      runs = runs + 1,
      started_at = coalesce(started_at, settlement_meta.now()),
      finished_at = case when p_state = 'done' then settlement_meta.now() else finished_at end,
      updated_at = settlement_meta.now()
  where business_date = p_date and kind = p_kind and stage = p_stage;
$$;

create or replace function settlement.outcome(p_outcome text, p_detail text) returns settlement.stage_result
language sql immutable as $$ select row(p_outcome, p_detail)::settlement.stage_result $$;

-- Reconcile tasks run one at a time. A job key does not stop a second job
-- while the first is locked (graphile-worker adds a new one), so concurrent
-- reconcile tasks each read the same unread statements from the bank (in the
-- demo, five tasks read the same 309 statements) and then find each other's
-- stages busy. A named queue runs its jobs serially, across every worker: a
-- reconcile job added while one runs waits for it and then finds the
-- statements read. The crontab's reconcile entry uses the same queue
-- (add_reconcile_job, in 70_reconcile.sql).

-- A wake-up is never lost to a race inside graphile-worker's add_job.
-- add_jobs first clears the key of a job with that key that is already
-- locked, then inserts with ON CONFLICT (key) DO UPDATE ... WHERE locked_at
-- is null. When a worker locks the keyed job between those two statements
-- (its get_job transaction holds the row, the insert waits for it, then finds
-- it locked), add_job neither inserts nor updates and returns no job: the
-- job that now runs may read the world before this transaction commits (a
-- pay stage that does not yet see the fin-account this registration
-- records), and nothing would run after it. Seen in the demo: a kind's pay
-- stage waited for fin-accounts that were all registered. When add_job
-- returns no job, a job without a key is added: it runs after the locked one
-- (finding the stage busy meanwhile, it retries). Every keyed job of the
-- SQL is added through add_keyed_job (add_transfer_jobs_at does the same for
-- a batch, with add_jobs).
create or replace function settlement.add_keyed_job(p_task text, p_payload json, p_key text, p_key_mode text,
  p_run_at timestamptz, p_max_attempts integer, p_queue text default null)
returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  select j.id into v_id
  from graphile_worker.add_job(p_task, p_payload, queue_name => p_queue, run_at => p_run_at, max_attempts => p_max_attempts,
                               job_key => p_key, job_key_mode => p_key_mode) j;
  if v_id is null then
    perform graphile_worker.add_job(p_task, p_payload, queue_name => p_queue, run_at => p_run_at, max_attempts => p_max_attempts);
  end if;
end $$;

create or replace function settlement.add_stage_job(p_stage settlement.stage, p_date date, p_kind settlement.kind, p_run_at timestamptz default null)
returns void
language sql as $$
  select settlement.add_keyed_job('stage', json_build_object('stage', p_stage, 'date', p_date, 'kind', p_kind),
                                  format('stage:%s:%s:%s', p_stage, p_date, p_kind), 'replace', p_run_at, 10)
$$;

-- '1', the IsTuno generation (3 digits; settle after-restore moves it on,
-- see sql/logic/87_restore.sql) and the sequence (14 digits). Generation 0
-- gives the same numbers as '1' || lpad(seq, 17, '0') did.
create or replace function settlement.next_is_tuno() returns text
language plpgsql volatile as $$
declare
  v_seq bigint := nextval('settlement.is_tuno_seq');
begin
  if v_seq >= 100000000000000 then
    perform settlement.raise_error('ST070', 'next_is_tuno: the IsTuno sequence is spent for this generation (settle after-restore moves the generation on)');
  end if;
  return '1' || (select lpad(g.generation::text, 3, '0') from settlement.is_tuno_space g where g.id) || lpad(v_seq::text, 14, '0');
end $$;

------------------------------------------------------------------------------
-- Jobs
create or replace function settlement.transfer_job_specs(p_ids bigint[]) returns graphile_worker.job_spec[]
language sql stable as $$
  select coalesce(array_agg(row(
      'transfer', json_build_object('transfer_id', t.id), null, null, 25, 'transfer:' || t.id, null, null
    )::graphile_worker.job_spec order by t.id), '{}')
  from settlement.transfers t where t.id = any (p_ids)
$$;

create or replace function settlement.add_transfer_jobs(p_ids bigint[]) returns void
language sql as $$
  select null from graphile_worker.add_jobs(settlement.transfer_job_specs(p_ids)) limit 1
$$;

-- record: the day's accruals summed into one entry per loan account, and the
-- journal's record entries; the entries' totals come back from the insert
-- itself (no second read of the day's entries).
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
-- pay refuses a day that would need more chunks than the limit.
create or replace function settlement.pay_chunk_count(p_date date, p_kind settlement.kind) returns bigint
language sql stable as $$
  select coalesce(sum((e.amount + c.per_call_limit - 1) / c.per_call_limit), 0)::bigint
  from settlement.entries e cross join settlement.config c
  where c.id and e.business_date = p_date and e.kind = p_kind
$$;

create or replace function settlement.pay_within_limits(p_date date, p_kind settlement.kind) returns text
language plpgsql stable as $$
declare
  v_need bigint := settlement.pay_chunk_count(p_date, p_kind);
  v_max integer;
begin
  select max_chunks_per_day into v_max from settlement.limits where id;
  if v_need > v_max then
    return format('too many chunks: %s KRW at %s per call needs %s chunks, over settlement.limits.max_chunks_per_day %s',
                  (select sum(amount) from settlement.entries where business_date = p_date and kind = p_kind),
                  (select per_call_limit from settlement.config where id), v_need, v_max);
  end if;
  return null;
end $$;

------------------------------------------------------------------------------
-- Stages over transfers
create or replace function settlement.stage_pay(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_limit bigint;
  v_contract settlement.kind_accounts;
  v_missing text[];
  v_missing_n bigint;
  v_chunks bigint;
  v_total bigint;
  v_ids bigint[];
  v_detail text;
  v_problems text[];
  v_adopt_entries bigint[];
  v_adopt_seqs integer[];
  v_adopt_tunos text[];
  v_adopt_ymds text[];
begin
  if settlement.stage_state_of(p_date, p_kind, 'record') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'record is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'pay') = 'done' then
    return settlement.outcome('already_done'::text, 'paid out earlier');
  end if;
  -- After a restore, nothing new is planned before the statements are read.
  if settlement.restore_hold() is not null then
    return settlement.outcome('not_ready'::text, settlement.restore_hold());
  end if;
  select * into v_contract from settlement.kind_accounts where kind = p_kind;
  if not found then
    v_detail := format('no settlement account is configured for %s (settlement.kind_accounts)', p_kind);
    perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  -- A chunk is sent from the loan account's fin-account: wait for registration.
  select count(*), (array_agg(e.account_no order by e.account_no))[1:5] into v_missing_n, v_missing
  from settlement.entries e join settlement.accounts a on a.account_no = e.account_no
  where e.business_date = p_date and e.kind = p_kind and a.fin_acno is null;
  if v_missing_n > 0 then
    perform settlement.add_register_jobs(array(select e.account_no from settlement.entries e join settlement.accounts a using (account_no)
                                                where e.business_date = p_date and e.kind = p_kind and a.fin_acno is null));
    v_detail := format('waiting for the fin-accounts of %s loan account(s) (%s%s): registration is enqueued',
                       v_missing_n, array_to_string(array(select settlement.mask_account(x) from unnest(v_missing) x), ', '), case when v_missing_n > 5 then ', …' else '' end);
    update settlement.stage_runs set detail = v_detail, updated_at = settlement_meta.now()
    where business_date = p_date and kind = p_kind and stage = 'pay';
    return settlement.outcome('not_ready'::text, v_detail);
  end if;
  v_detail := settlement.pay_within_limits(p_date, p_kind);
  if v_detail is not null then
    perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  select per_call_limit into v_limit from settlement.config where id;
  -- After a restore: a chunk the bank booked already under a number this
  -- database forgot (planned and paid after the backup point) is planned
  -- under that number and date, so that its claim asks the bank and records
  -- it succeeded; when the statements cannot tell, the stage blocks.
  if exists (select 1 from settlement.restores) then
    select array_agg(f.problem order by f.problem) filter (where f.problem is not null),
           array_agg(f.entry_id) filter (where f.problem is null), array_agg(f.seq) filter (where f.problem is null),
           array_agg(f.is_tuno) filter (where f.problem is null), array_agg(f.tsymd) filter (where f.problem is null)
    into v_problems, v_adopt_entries, v_adopt_seqs, v_adopt_tunos, v_adopt_ymds
    from settlement.forgotten_payouts(p_date, p_kind) f;
    if v_problems is not null then
      v_detail := left(format('after the restore, the statements cannot tell which chunks were paid after the backup point (%s problem(s)): %s; a person decides (docs/deploy/restore.md)',
                              cardinality(v_problems), array_to_string(v_problems[1:3], '; ') || case when cardinality(v_problems) > 3 then '; …' else '' end), 1000);
      perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
      return settlement.outcome('blocked'::text, v_detail);
    end if;
  end if;

  -- 250,000 with a 100,000 limit -> 100,000 + 100,000 + 50,000.
  with planned as (
    insert into settlement.transfers (purpose, business_date, kind, entry_id, seq, from_account, to_account, fintech_apsno, fin_acno, amount, is_tuno, tsymd)
    select 'payout', p_date, p_kind, e.id, s.seq, e.account_no, v_contract.settlement_account, v_contract.fintech_apsno, a.fin_acno,
           least(v_limit, e.amount - (s.seq - 1) * v_limit), coalesce(f.is_tuno, settlement.next_is_tuno()), f.tsymd
    from settlement.entries e
    join settlement.accounts a on a.account_no = e.account_no
    cross join lateral generate_series(1, ((e.amount + v_limit - 1) / v_limit)::int) as s(seq)
    left join unnest(coalesce(v_adopt_entries, '{}'), coalesce(v_adopt_seqs, '{}'), coalesce(v_adopt_tunos, '{}'), coalesce(v_adopt_ymds, '{}'))
      as f(entry_id, seq, is_tuno, tsymd) on f.entry_id = e.id and f.seq = s.seq
    where e.business_date = p_date and e.kind = p_kind
    order by e.id, s.seq
    returning id, amount)
  select count(*), coalesce(sum(amount), 0), array_agg(id) into v_chunks, v_total, v_ids from planned;
  perform settlement.add_transfer_jobs(v_ids);

  v_detail := format('%s chunks, %s KRW enqueued (limit %s per call)', v_chunks, v_total, v_limit)
    || case when v_adopt_entries is not null
            then format('; %s of them booked already under forgotten IsTunos after the backup point (adopted: asked about, never sent again)', cardinality(v_adopt_entries))
            else '' end;
  perform settlement.set_stage(p_date, p_kind, 'pay', 'done', v_detail);
  if v_chunks = 0 then
    perform settlement.add_stage_job('confirm', p_date, p_kind);
  end if;
  return settlement.outcome('done'::text, v_detail);
end $$;

create or replace function settlement.stage_confirm(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_total bigint; v_ok bigint; v_failed bigint; v_open bigint; v_unresolved bigint; v_amount bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'pay') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'pay is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'confirm') = 'done' then
    return settlement.outcome('already_done'::text, 'confirmed earlier');
  end if;
  select count(*), count(*) filter (where state = 'succeeded'), count(*) filter (where state = 'failed'),
         count(*) filter (where state in ('pending', 'sending')), count(*) filter (where unresolved_since is not null),
         coalesce(sum(amount) filter (where state = 'succeeded'), 0)
  into v_total, v_ok, v_failed, v_open, v_unresolved, v_amount
  from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'payout';

  if v_failed > 0 then
    v_detail := format('%s of %s chunks failed for good (see settlement.payout_failures; fix, then settlement.retry_failed(%L, %L)); %s in flight',
                       v_failed, v_total, p_date, p_kind, v_open);
    perform settlement.set_stage(p_date, p_kind, 'confirm', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  if v_open > 0 then
    return settlement.outcome('not_ready'::text, format('%s of %s chunks still in flight (%s unresolved)', v_open, v_total, v_unresolved));
  end if;
  v_detail := format('%s chunks succeeded, %s KRW', v_ok, v_amount);
  perform settlement.set_stage(p_date, p_kind, 'confirm', 'done', v_detail);
  perform settlement.add_stage_job('withdraw', p_date, p_kind);
  return settlement.outcome('done'::text, v_detail);
end $$;

create or replace function settlement.stage_withdraw(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  w settlement.transfers;
  v_total bigint;
  v_ka settlement.kind_accounts;
  v_bncd text;
  v_from text;
  v_app text;
  v_sources bigint;
  v_id bigint;
  v_detail text;
  v_hold text;
  v_known record;
  v_proof settlement.stage_result;
begin
  if settlement.stage_state_of(p_date, p_kind, 'confirm') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'confirm is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'withdraw') = 'done' then
    return settlement.outcome('already_done'::text, 'withdrawn earlier');
  end if;
  select * into w from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'withdrawal';
  if found then
    if w.state = 'failed' then
      return settlement.outcome('blocked'::text, format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', w.fail_code, w.fail_message, p_date, p_kind));
    end if;
    -- Already started: make sure its job exists (collapses with a waiting one).
    perform settlement.add_transfer_jobs(array[w.id]);
    return settlement.outcome('in_progress'::text, format('withdrawal %s of %s KRW is %s', w.is_tuno, w.amount, w.state));
  end if;
  -- Confirm is proven by the bank (issue 22): every payout recorded succeeded
  -- shows on the settlement account's statement, else wait (the statement may
  -- lag) or block with a break, before any money leaves the account.
  v_proof := settlement.withdraw_unproven(p_date, p_kind);
  if v_proof.outcome is not null then
    return v_proof;
  end if;

  select coalesce(sum(amount), 0) into v_total
  from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'payout' and state = 'succeeded';
  if v_total = 0 then
    v_detail := 'nothing to withdraw (0 KRW confirmed)';
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'done', v_detail);
    perform settlement.after_stage('withdraw', p_date, p_kind);
    return settlement.outcome('done'::text, v_detail);
  end if;
  -- The money is withdrawn from where the day's payouts went (the account and
  -- app they were planned with), even if the kind's settlement account changed
  -- since (issue 22); the corporate account is the kind's now.
  select min(t.to_account), min(t.fintech_apsno), count(distinct (t.to_account, t.fintech_apsno))
  into v_from, v_app, v_sources
  from settlement.transfers t where t.business_date = p_date and t.kind = p_kind and t.purpose = 'payout' and t.state = 'succeeded';
  if v_sources > 1 then
    v_detail := format('the payouts of %s %s went to %s settlement accounts (the payee changed while they were planned): withdraw each by hand', p_date, p_kind, v_sources);
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  select * into v_ka from settlement.kind_accounts where kind = p_kind;
  select bank_code into v_bncd from settlement.accounts where account_no = v_ka.corporate_account;
  -- After a restore: a withdrawal the bank booked under a number this
  -- database forgot is that withdrawal (asked about first, never sent again).
  v_hold := settlement.restore_hold();
  if v_hold is not null then
    return settlement.outcome('not_ready'::text, v_hold);
  end if;
  select * into v_known from settlement.forgotten_booking(v_from, v_total, p_date);
  if v_known.candidates > 1 then
    v_detail := format('after the restore, %s bookings the database forgot could be this withdrawal of %s KRW: see settlement.restores and docs/deploy/restore.md', v_known.candidates, v_total);
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  insert into settlement.transfers (purpose, business_date, kind, from_account, to_account, fintech_apsno, to_bncd, amount, is_tuno, tsymd)
  values ('withdrawal', p_date, p_kind, v_from, v_ka.corporate_account, v_app, v_bncd, v_total,
          coalesce(v_known.is_tuno, settlement.next_is_tuno()), v_known.tsymd)
  returning id into v_id;
  perform settlement.add_transfer_jobs(array[v_id]);
  v_detail := format('withdrawal of %s KRW enqueued', v_total);
  perform settlement.set_stage(p_date, p_kind, 'withdraw', 'running', v_detail);
  return settlement.outcome('started'::text, v_detail);
end $$;

-- Withdraw done chains reconcile: inline only if the matcher lock and
-- the stage lock are free right now (never waited for here: this runs inside
-- finish_transfers or stage_withdraw, holding rows), else a stage job.
create or replace function settlement.after_stage(p_stage settlement.stage, p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
declare
  v_at timestamptz;
begin
  if p_stage <> 'withdraw' then
    return;
  end if;
  select max(settlement.statement_final_at(s.ymd)) into v_at from settlement.reconcile_scope s where s.business_date = p_date and s.kind = p_kind;
  if v_at is null and pg_try_advisory_xact_lock(settlement.stage_lock_key('reconcile', p_date, p_kind))
     and pg_try_advisory_xact_lock(settlement.matcher_lock_key()) then
    perform settlement.stage_reconcile(p_date, p_kind);
    return;
  end if;
  perform settlement.add_stage_job('reconcile', p_date, p_kind, case when v_at > settlement_meta.now() then v_at end);
end $$;

create or replace function settlement.run_stage(stage settlement.stage, business_date date, kind settlement.kind)
returns table (outcome text, detail text)
language plpgsql as $$
declare
  r settlement.stage_result;
begin
  if run_stage.stage is null or run_stage.business_date is null or run_stage.kind is null then
    perform settlement.raise_error('ST001', 'run_stage: stage, business_date and kind are required');
  end if;
  if not pg_try_advisory_xact_lock(settlement.stage_lock_key(run_stage.stage, run_stage.business_date, run_stage.kind)) then
    r := settlement.outcome('busy'::text, format('%s %s %s is running elsewhere', run_stage.stage, run_stage.business_date, run_stage.kind));
  else
    if run_stage.stage = 'reconcile' then
      -- Before any other lock of this transaction (see above).
      perform pg_advisory_xact_lock(settlement.matcher_lock_key());
    end if;
    r := case run_stage.stage
           when 'record' then settlement.stage_record(run_stage.business_date, run_stage.kind)
           when 'pay' then settlement.stage_pay(run_stage.business_date, run_stage.kind)
           when 'confirm' then settlement.stage_confirm(run_stage.business_date, run_stage.kind)
           when 'withdraw' then settlement.stage_withdraw(run_stage.business_date, run_stage.kind)
           when 'reconcile' then settlement.stage_reconcile(run_stage.business_date, run_stage.kind)
         end;
  end if;
  -- A person's run is audited (issue 22); a worker login's stage jobs are not
  -- (the owner, a superuser, counts as a worker here: it holds every role).
  if not pg_has_role(session_user, 'settlement_worker', 'member') then
    perform settlement.audit('run_stage', jsonb_build_object('stage', run_stage.stage, 'business_date', run_stage.business_date, 'kind', run_stage.kind),
                             jsonb_build_object('outcome', r.outcome, 'detail', r.detail));
  end if;
  return query select r.outcome, r.detail;
end $$;
comment on function settlement.run_stage is 'Runs one stage for (business_date, kind) now, in the caller''s transaction (for reconcile, call it first in its transaction: it waits for the matcher lock). Outcomes: done, already_done, not_ready, busy, blocked; withdraw also started, in_progress.';

------------------------------------------------------------------------------
-- A stage that raised for one (date, kind) says so on that day; the others go on.
create or replace function settlement.record_stage_error(p_stage settlement.stage, p_date date, p_kind settlement.kind, p_error text) returns void
language plpgsql as $$
begin
  update settlement.stage_runs
  set state = case when state = 'done' then state else 'blocked' end,
      detail = left(format('error: %s (the stage is tried again at the next tick)', p_error), 1000), updated_at = settlement_meta.now()
  where business_date = p_date and kind = p_kind and stage = p_stage and state <> 'done';
end $$;
comment on function settlement.record_stage_error is 'Worker: a stage that failed with an error for one (date, kind) is shown blocked with the error; the next tick tries it again.';

-- Days stay open until they are reconciled.
create or replace function settlement.open_days()
returns table (business_date date, kind settlement.kind)
language sql stable as $$
  select r.business_date, r.kind from settlement.stage_runs r
  where r.stage = 'reconcile' and r.state <> 'done' and r.business_date < settlement.today()
  order by r.business_date, r.kind
$$;
comment on function settlement.open_days is 'Days that are over and not reconciled yet, oldest first.';

------------------------------------------------------------------------------
-- The operator's enqueue and retry, unaudited: settlement.enqueue_stage and
-- settlement.retry_failed (80_operations.sql) record the action and call
-- these (the owner's alone).
create or replace function settlement.enqueue_stage_core(stage settlement.stage, business_date date default null, kind settlement.kind default null)
returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  r record;
begin
  if enqueue_stage_core.stage is null then
    perform settlement.raise_error('ST001', 'enqueue_stage: stage is required');
  end if;
  for r in
    select o.business_date as d, o.kind as k from settlement.open_days() o
    where enqueue_stage_core.business_date is null and (enqueue_stage_core.kind is null or o.kind = enqueue_stage_core.kind)
    union all
    select enqueue_stage_core.business_date, k.kind from unnest(enum_range(null::settlement.kind)) as k(kind)
    where enqueue_stage_core.business_date is not null and (enqueue_stage_core.kind is null or k.kind = enqueue_stage_core.kind)
    order by 1, 2
  loop
    perform settlement.add_stage_job(enqueue_stage_core.stage, r.d, r.k);
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;

create or replace function settlement.retry_failed_core(business_date date, kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_d date := retry_failed_core.business_date;
  v_k settlement.kind := retry_failed_core.kind;
  v_ids bigint[];
  v_payouts integer;
  v_withdrawals integer;
  v_bad record;
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
  if settlement.stage_state_of(v_d, v_k, 'withdraw') = 'done' then
    perform settlement.raise_error('ST012', format('retry_failed: %s %s is already withdrawn; nothing of it can be paid again', v_d, v_k));
  end if;
  if exists (select 1 from settlement.transfers t join settlement.transfer_attempts a on a.transfer_id = t.id and a.outcome = 'succeeded'
             where t.business_date = v_d and t.kind = v_k and t.state = 'failed') then
    perform settlement.raise_error('ST013', format('retry_failed: a failed transfer of %s %s has a succeeded attempt; it must not be sent again (investigate)', v_d, v_k));
  end if;
  -- Nor one whose request may still be in flight: an attempt's lease, kept
  -- past any later answer (sent_until; 50_transfers.sql).
  select t.id, t.sent_until into v_bad from settlement.transfers t
  where t.business_date = v_d and t.kind = v_k and t.state = 'failed' and t.sent_until > settlement_meta.now()
  order by t.id limit 1;
  if found then
    perform settlement.raise_error('ST015', format('retry_failed: transfer %s of %s %s may still have a request at the bank until %s (an attempt''s lease); try after it',
                                                   v_bad.id, v_d, v_k, settlement.local_time(v_bad.sent_until)));
  end if;
  -- Nor one the bank has booked or may still book under any of its numbers:
  -- evidence of a booking, a statement line or an orphan naming one of them,
  -- an attempt whose outcome is unknown.
  select t.id, n.is_tuno into v_bad from settlement.transfers t
  cross join lateral (select t.is_tuno union select a.is_tuno from settlement.transfer_attempts a where a.transfer_id = t.id) n(is_tuno)
  where t.business_date = v_d and t.kind = v_k and t.state = 'failed'
    and (exists (select 1 from settlement.transfer_evidence e where e.transfer_id = t.id and e.booked)
         or exists (select 1 from settlement.statement_lines l where l.ref_is_tuno = n.is_tuno and l.ccyn = '0')
         or exists (select 1 from settlement.breaks b where b.is_tuno = n.is_tuno and b.problem = 'orphan')
         or exists (select 1 from settlement.transfer_attempts a where a.is_tuno = n.is_tuno and a.outcome = 'sending')
         -- an attempt that never learnt its outcome after another took the transfer over, unless a person since said not booked
         or exists (select 1 from settlement.unknown_outcomes u where u.transfer_id = t.id and u.is_tuno = n.is_tuno
                    and not exists (select 1 from settlement.transfer_evidence e
                                    where e.transfer_id = t.id and e.is_tuno = u.is_tuno and not e.booked and e.at >= u.at))
         -- after a restore: a booking under a forgotten number (a retry after the backup point) that could be it
         or exists (select 1 from settlement.restores)
            and exists (select 1 from settlement.forgotten_payout_lines(array[t.from_account]) f
                        where format('failed transfer %s (%s %s)', t.id, t.business_date, t.kind) = any(f.owners)))
  order by t.id limit 1;
  if found then
    perform settlement.raise_error('ST016', format('retry_failed: transfer %s of %s %s may be booked under IsTuno %s (a statement line, an orphan, evidence or an attempt whose outcome is unknown names it); it must not be sent again: decide it (settlement.decide_transfer) or investigate',
                                                   v_bad.id, v_d, v_k, v_bad.is_tuno));
  end if;

  -- A failed transfer gets a new IsTuno: the bank said the old one was not booked.
  with retried as (
    update settlement.transfers t
    set state = 'pending', attempt = t.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null, processed_at = null,
        fail_code = null, fail_message = null, settled_at = null, updated_at = settlement_meta.now()
    where t.business_date = v_d and t.kind = v_k and t.state = 'failed'
    returning t.id, t.purpose)
  select array_agg(id), count(*) filter (where purpose = 'payout'), count(*) filter (where purpose = 'withdrawal')
  into v_ids, v_payouts, v_withdrawals from retried;
  if v_payouts > 0 then
    update settlement.stage_runs r set state = 'pending', detail = format('%s chunks retried by operator', v_payouts), updated_at = settlement_meta.now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'confirm' and r.state = 'blocked';
  end if;
  if v_withdrawals > 0 then
    update settlement.stage_runs r set state = 'running', detail = 'withdrawal retried by operator', updated_at = settlement_meta.now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'withdraw';
  end if;
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;
  return coalesce(v_payouts + v_withdrawals, 0);
end $$;
