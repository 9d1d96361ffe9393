-- Transfers: payout chunks and withdrawals, one claim and one finish, the
-- journal entries of a settled transfer and the state machine.

-- The transfer state machine, enforced on every UPDATE whoever makes it:
--   what and how much never change; pending -> sending -> succeeded | failed;
--   sending -> sending (a new claim, or unresolved); failed -> pending only
--   with a new IsTuno and the next attempt (an operator's retry after the bank
--   proved the old number unbooked); succeeded never changes again.
create or replace function settlement.transfers_guard() returns trigger
language plpgsql as $$
begin
  if (new.purpose, new.business_date, new.kind, new.entry_id, new.seq, new.from_account, new.to_account, new.amount, new.fintech_apsno)
     is distinct from (old.purpose, old.business_date, old.kind, old.entry_id, old.seq, old.from_account, old.to_account, old.amount, old.fintech_apsno) then
    raise exception 'transfer %: what is moved, from where, to where and how much never change', old.id using errcode = 'ST007';
  end if;
  if old.state = 'succeeded' then
    raise exception 'transfer %: a succeeded transfer never changes', old.id using errcode = 'ST007';
  end if;
  if new.is_tuno <> old.is_tuno or new.attempt <> old.attempt then
    -- Only a transfer the bank proved unbooked gets a new number, and only the next one.
    if not (old.state in ('failed', 'sending') and new.state = 'pending' and new.attempt = old.attempt + 1
            and exists (select 1 from settlement.transfer_attempts a where a.transfer_id = old.id and a.is_tuno = old.is_tuno and a.outcome = 'failed')) then
      raise exception 'transfer %: a new IsTuno needs a failed attempt under the old one', old.id using errcode = 'ST007';
    end if;
    return new;
  end if;
  if not ((old.state = 'pending' and new.state in ('pending', 'sending'))
          or (old.state = 'sending' and new.state in ('sending', 'succeeded', 'failed'))
          or (old.state = 'failed' and new.state = 'failed')) then
    raise exception 'transfer %: % -> % is not a transition of a transfer', old.id, old.state, new.state using errcode = 'ST007';
  end if;
  if old.state = 'failed' and (new.fail_code, new.settled_at) is distinct from (old.fail_code, old.settled_at) then
    raise exception 'transfer %: a failed transfer''s outcome is history', old.id using errcode = 'ST007';
  end if;
  return new;
end $$;

create or replace trigger transfers_state_machine before update on settlement.transfers
  for each row execute function settlement.transfers_guard();

create or replace trigger transfers_no_delete before delete on settlement.transfers
  for each row execute function settlement.journal_append_only();

create or replace trigger transfers_no_truncate before truncate on settlement.transfers
  for each statement execute function settlement.journal_append_only();

create or replace trigger transfer_attempts_append_only before update or delete on settlement.transfer_attempts
  for each row execute function settlement.journal_append_only();

create or replace trigger transfer_attempts_no_truncate before truncate on settlement.transfer_attempts
  for each statement execute function settlement.journal_append_only();

create or replace function settlement.journal_transfer(t settlement.transfers) returns void
language plpgsql as $$
begin
  perform settlement.journal_transfers(array[t.id]);
end $$;

-- The bank desk (issue 13): each worker process claims and finishes its
-- transfers in batches, one round trip and one transaction for every claim
-- (or outcome) that is waiting when the last one returns, on one connection
-- of its own that also holds the process's bank-call slots.
--
-- 1. claim_transfers / finish_transfers give the same answers as
--    claim_transfer / finish_transfer for each transfer, set-based: one
--    UPDATE for the batch's claims; one UPDATE, one insert of attempts, one
--    of journal entries and one of journal lines for the batch's payout
--    outcomes. Anything off the everyday path (a withdrawal, an unresolved
--    outcome, a transfer no longer sending under that IsTuno) goes through
--    finish_transfer itself, one by one.
-- 2. Slots stay session advisory locks (21332, slot) of 0030; a desk
--    connection may hold several (try_bank_slot of 0030 holds at most one
--    per connection), so it names the ones it holds and they are skipped.
--    The cap holds across processes and hosts as before, and a process that
--    dies frees every slot with its connection.
-- 3. The desk holds (21332, 0) shared while its process has calls waiting
--    for a slot: a release anywhere notifies settlement_bank_slot only then,
--    and a desk learns whether another process is waiting (it may hand a
--    freed slot straight to a waiting call of its own otherwise).

------------------------------------------------------------------------------
-- The journal entry of settled transfers, set-based: one entry per transfer
-- (ref = its IsTuno), lines as 0007 defined them. journal_transfer (one
-- transfer, from finish_transfer) posts through it, so there is one
-- definition of a transfer's entry.
create or replace function settlement.journal_transfers(p_ids bigint[]) returns void
language plpgsql as $$
begin
  with t as (
    select * from settlement.transfers where id = any(p_ids)),
  e as (
    insert into settlement.journal_entries (business_date, kind, event, ref, memo)
    select t.business_date, t.kind, t.purpose::text, t.is_tuno,
           case t.purpose when 'payout' then format('transfer %s (entry %s #%s)', t.id, t.entry_id, t.seq)
                          else format('withdrawal %s %s', t.business_date, t.kind) end
    from t
    returning id, ref)
  insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
  select e.id, l.line_no, l.ledger_account, l.amount
  from e join t on t.is_tuno = e.ref
  cross join lateral (values (1, 'bank:' || t.to_account, t.amount), (2, 'bank:' || t.from_account, -t.amount),
                             (3, 'due_to:' || t.kind, t.amount), (4, 'due_from:' || t.from_account, -t.amount)) l(line_no, ledger_account, amount)
  where l.line_no <= 2 or t.purpose = 'payout';
end $$;
comment on function settlement.journal_transfers is 'Internal: posts the journal entry of each settled transfer (payout: bank and due_to/due_from lines; withdrawal: bank lines).';

-- The tail of after_payout (0030): confirm once nothing of the day's kind is
-- pending or sending. p_id: a transfer of the day just settled (the search
-- for an open chunk starts beside it).
create or replace function settlement.confirm_when_paid(p_date date, p_kind settlement.kind, p_id bigint) returns void
language plpgsql as $$
begin
  -- Chunks are claimed in id order: a pending one is almost always among the
  -- next few ids of the day (then a later finisher will look again: no lock).
  if exists (select 1 from settlement.transfers x where x.business_date = p_date and x.kind = p_kind
             and x.purpose = 'payout' and x.id > p_id and x.state = 'pending')
     or exists (select 1 from settlement.transfers x where x.business_date = p_date and x.kind = p_kind
                and x.purpose = 'payout' and x.id < p_id and x.state = 'pending') then
    return;
  end if;
  -- Near the end the lock serialises the day's finishers, each looking with a
  -- fresh snapshot after taking it, so the last of two racing finishers sees
  -- the other's result (the job key collapses doubles). The crontab's
  -- confirm tick catches anything missed.
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', p_date, p_kind) # 1);
  if not exists (select 1 from settlement.transfers x where x.business_date = p_date and x.kind = p_kind
                 and x.purpose = 'payout' and x.id > p_id and x.state in ('pending', 'sending'))
     and not exists (select 1 from settlement.transfers x where x.business_date = p_date and x.kind = p_kind
                     and x.purpose = 'payout' and x.id < p_id and x.state in ('pending', 'sending')) then
    perform settlement.add_stage_job('confirm', p_date, p_kind);
  end if;
end $$;

create or replace function settlement.after_payout(t settlement.transfers) returns void
language plpgsql as $$
begin
  if t.state = 'succeeded' then
    perform settlement.journal_transfer(t);
  end if;
  perform settlement.confirm_when_paid(t.business_date, t.kind, t.id);
end $$;

-- The withdrawal settled: its journal entry and the withdraw stage's end.
create or replace function settlement.after_withdrawal(t settlement.transfers) returns void
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', t.business_date, t.kind));
  if t.state = 'succeeded' then
    perform settlement.journal_transfer(t);
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'done', format('%s KRW withdrawn (%s)', t.amount, t.is_tuno));
    perform settlement.after_stage('withdraw', t.business_date, t.kind);
  else
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'blocked',
      format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', t.fail_code, t.fail_message, t.business_date, t.kind));
  end if;
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
comment on function settlement.claim_transfer is 'Transfer task: claims a transfer for one bank attempt (a lease), fixing its Tsymd by the database''s clock on the first call; answers paused (no claim) while settlement.pause covers its kind. With p_slot_holder, also takes a bank-call slot held by this connection (slot null: none free).';

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
comment on function settlement.finish_transfer is 'Transfer task: records the bank''s answer for a transfer (+ journal, + what follows) once, giving back the attempt''s bank-call slot. A booking confirmed for a number the transfer no longer holds (stale) is recorded as an orphan with a suspense journal entry.';

------------------------------------------------------------------------------
-- claim_transfers: claim_transfer (0030) for a batch. Rows are locked in id
-- order (as every claimer locks), the decision is the same per transfer
-- (paused, send, settled or busy; missing when there is no such transfer),
-- and the batch's sends are one UPDATE. p_want slots are taken too (the
-- desk's calls about to need one), and p_flag takes (1) or lets go (-1) of
-- the "waiting" lock. One json document comes back:
--   {"claims": [claim, ...] (in p_ids order), "slots": [..], "others_waiting": bool, "workers": n, "max_in_flight": m}
-- where a claim has the columns of settlement.transfer_claim (transfer_id and
-- amount as text: no number of a money path goes through a float).
create or replace function settlement.claim_transfers(p_ids bigint[], p_holders text[], p_lease_ms integer, p_want integer,
  p_held integer[], p_flag integer)
returns json
language plpgsql as $$
declare
  v_ymd text := settlement.bank_ymd();
  v_send bigint[];
  v_paused bigint[];
  v_resume bigint[];
  v_claims json;
  v_slots integer[];
  v_max integer;
  v_workers integer;
  v_others boolean;
begin
  if cardinality(coalesce(p_ids, '{}')) <> cardinality(coalesce(p_holders, '{}')) then
    perform settlement.raise_error('ST001', 'claim_transfers: p_ids and p_holders must have the same length');
  end if;
  if p_flag > 0 then
    perform pg_advisory_lock_shared(21332, 0);
  elsif p_flag < 0 then
    perform pg_advisory_unlock_shared(21332, 0);
  end if;

  -- The row locks first (id order), then the decision on what they hold.
  with l as (
    select t.id, t.state, t.kind, t.tsymd, t.claimed_by, t.claimed_until
    from settlement.transfers t where t.id = any(p_ids) order by t.id for update),
  d as (
    select l.id, l.tsymd,
           case when l.state not in ('pending', 'sending') then 'done'
                when settlement.is_paused(l.kind) then 'paused'
                when l.claimed_until is null or l.claimed_until < now() or l.claimed_by = r.holder then 'send'
                else 'busy' end as action
    from l join unnest(p_ids, p_holders) r(id, holder) on r.id = l.id)
  select coalesce(array_agg(d.id) filter (where d.action = 'send'), '{}'),
         coalesce(array_agg(d.id) filter (where d.action = 'paused'), '{}'),
         coalesce(array_agg(d.id) filter (where d.action = 'send' and d.tsymd is not null), '{}')
  into v_send, v_paused, v_resume
  from d;

  -- By primary key (an index condition: no plan can turn it into a scan of
  -- the table); a row's own values are found by its place in the batch.
  update settlement.transfers x
  set state = 'sending', tsymd = coalesce(x.tsymd, v_ymd), claimed_by = p_holders[array_position(p_ids, x.id)],
      claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
  where x.id = any(v_send);

  select json_agg(json_build_object(
           'action', case when t.id is null then 'missing'
                          when t.id = any(v_send) then 'send'
                          when t.id = any(v_paused) then 'paused'
                          when t.state in ('succeeded', 'failed') then 'settled'
                          else 'busy' end,
           'resume', t.id = any(v_resume),
           'sendable', t.id = any(v_send) and t.tsymd = v_ymd,
           'transfer_id', r.id::text, 'purpose', t.purpose, 'is_tuno', t.is_tuno, 'tsymd', t.tsymd, 'memo', t.memo,
           'fintech_apsno', t.fintech_apsno, 'fin_acno', t.fin_acno, 'to_bncd', t.to_bncd, 'to_account', t.to_account,
           'amount', t.amount::text, 'business_date', t.business_date::text, 'kind', t.kind, 'attempt', t.attempt, 'slot', null)
         order by r.ord)
  into v_claims
  from unnest(p_ids) with ordinality r(id, ord)
  left join settlement.transfers t on t.id = r.id;

  -- While another process waits, this one takes no more than its share of
  -- the cap (max_in_flight over the live workers).
  select max_in_flight into v_max from settlement.config where id;
  select greatest(count(*), 1) into v_workers from settlement.workers w cross join settlement.ops_settings o
  where o.id and w.last_beat > now() - o.worker_silent_after;
  v_others := settlement.others_waiting_for_slots();
  if v_others then
    p_want := least(p_want, ceil(v_max::numeric / v_workers)::integer - cardinality(coalesce(p_held, '{}')));
  end if;
  v_slots := settlement.take_bank_slots(p_want, p_held);

  return json_build_object('claims', coalesce(v_claims, '[]'::json), 'slots', v_slots, 'others_waiting', v_others,
                           'workers', v_workers, 'max_in_flight', v_max);
end $$
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off;
comment on function settlement.claim_transfers is 'Worker (bank desk): claim_transfer for a batch of transfers in one transaction, plus up to p_want bank-call slots for this connection; returns json {claims, slots, others_waiting, workers, max_in_flight}.';

------------------------------------------------------------------------------
-- finish_transfers: finish_transfer (0030) for a batch, giving back p_give
-- first. The everyday case (a payout, succeeded or failed, still sending or
-- pending under the IsTuno it was sent with) is set-based; every other item
-- goes through finish_transfer itself. Returns the results in input order.
create or replace function settlement.finish_transfers(p_ids bigint[], p_is_tunos text[], p_outcomes text[], p_processed_at text[],
  p_codes text[], p_messages text[], p_give integer[])
returns text[]
language plpgsql as $$
declare
  v_n integer := cardinality(coalesce(p_ids, '{}'));
  v_fast bigint[];
  v_done bigint[];
  v_succeeded bigint[];
  v_out text[] := '{}';
  g record;
  i integer;
begin
  if cardinality(coalesce(p_is_tunos, '{}')) <> v_n or cardinality(coalesce(p_outcomes, '{}')) <> v_n
     or cardinality(coalesce(p_processed_at, '{}')) <> v_n or cardinality(coalesce(p_codes, '{}')) <> v_n
     or cardinality(coalesce(p_messages, '{}')) <> v_n then
    perform settlement.raise_error('ST001', 'finish_transfers: the arrays must have the same length');
  end if;
  if exists (select 1 from unnest(p_outcomes) o where o is null or o not in ('succeeded', 'failed', 'unresolved')) then
    perform settlement.raise_error('ST009', 'finish_transfers: every outcome must be succeeded, failed or unresolved');
  end if;
  perform settlement.give_bank_slots(p_give);
  -- The batch's rows are locked in id order, as claims lock them (an UPDATE
  -- joined to the batch would lock them in whatever order its plan visits).
  perform 1 from settlement.transfers t where t.id = any(p_ids) order by t.id for update;
  -- As finish_transfer: the bank holds the truth, so the commit need not wait
  -- for the WAL flush (a finish lost in a crash is asked about again).
  perform set_config('synchronous_commit', 'off', true);
  if v_n = 0 then
    return v_out;
  end if;

  -- Everyday payouts, by primary key (an index condition: no plan can turn
  -- it into a scan of the table); a row's own values are found by its place
  -- in the batch.
  v_fast := array(select p_ids[k] from generate_subscripts(p_ids, 1) k where p_outcomes[k] in ('succeeded', 'failed'));
  with u as (
    update settlement.transfers t
    set state = p_outcomes[array_position(p_ids, t.id)]::settlement.transfer_state,
        processed_at = p_processed_at[array_position(p_ids, t.id)], fail_code = p_codes[array_position(p_ids, t.id)],
        fail_message = left(p_messages[array_position(p_ids, t.id)], 500), settled_at = now(), claimed_by = null, claimed_until = null,
        unresolved_since = null, unresolved_reason = null, updated_at = now()
    where t.id = any(v_fast) and t.is_tuno = p_is_tunos[array_position(p_ids, t.id)]
      and t.state in ('pending', 'sending') and t.purpose = 'payout'
    returning t.*),
  a as (
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message, processed_at)
    select u.id, u.is_tuno, u.tsymd, u.amount, u.state, u.fail_code, u.fail_message, u.processed_at from u)
  select coalesce(array_agg(u.id), '{}'), coalesce(array_agg(u.id) filter (where u.state = 'succeeded'), '{}')
  into v_done, v_succeeded from u;

  perform settlement.journal_transfers(v_succeeded);

  for i in 1 .. v_n loop
    if p_ids[i] = any(v_done) then
      v_out := v_out || p_outcomes[i];
    else
      v_out := v_out || settlement.finish_transfer(p_ids[i], p_is_tunos[i], p_outcomes[i], p_processed_at[i], p_codes[i], p_messages[i], null);
    end if;
  end loop;

  -- One look per day and kind, in one order for every batch (each may take
  -- that day's confirm lock and add its job).
  for g in select t.business_date, t.kind, max(t.id) as id from settlement.transfers t where t.id = any(v_done)
           group by t.business_date, t.kind order by t.business_date, t.kind loop
    perform settlement.confirm_when_paid(g.business_date, g.kind, g.id);
  end loop;
  return v_out;
end $$
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off;
comment on function settlement.finish_transfers is 'Worker (bank desk): finish_transfer for a batch of outcomes in one transaction, after giving back the bank-call slots p_give of this connection; returns each result in input order.';

-- Safety net run by the crontab: an unsettled transfer without a live job gets
-- one again (the job key collapses it with a waiting one), and a loan account
-- still without a fin-account gets its registration job again.
create or replace function settlement.requeue_unsettled() returns integer
language plpgsql as $$
declare
  v_ids bigint[];
  v_accounts text[];
begin
  -- An unsettled transfer belongs to a day whose withdraw is not done.
  select array_agg(t.id) into v_ids from settlement.transfers t
  join settlement.stage_runs r on r.business_date = t.business_date and r.kind = t.kind and r.stage = 'withdraw' and r.state <> 'done'
  where t.state in ('pending', 'sending') and (t.claimed_until is null or t.claimed_until < now())
    and not exists (select 1 from graphile_worker.jobs j where j.key = 'transfer:' || t.id and j.attempts < j.max_attempts);
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;
  select array_agg(a.account_no) into v_accounts from settlement.accounts a
  where a.role = 'loan' and a.fin_acno is null
    and exists (select 1 from settlement.entries e where e.account_no = a.account_no)
    and not exists (select 1 from graphile_worker.jobs j where j.key = 'register:' || a.account_no and j.attempts < j.max_attempts);
  if v_accounts is not null then
    perform settlement.add_register_jobs(v_accounts);
  end if;
  return coalesce(cardinality(v_ids), 0) + coalesce(cardinality(v_accounts), 0);
end $$;
