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
create function settlement.journal_transfers(p_ids bigint[]) returns void
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
comment on function settlement.journal_transfers is
  'Internal: posts the journal entry of each settled transfer (payout: bank and due_to/due_from lines; withdrawal: bank lines).';

create or replace function settlement.journal_transfer(t settlement.transfers) returns void
language plpgsql as $$
begin
  perform settlement.journal_transfers(array[t.id]);
end $$;

-- The tail of after_payout (0030): confirm once nothing of the day's kind is
-- pending or sending. p_id: a transfer of the day just settled (the search
-- for an open chunk starts beside it).
create function settlement.confirm_when_paid(p_date date, p_kind settlement.kind, p_id bigint) returns void
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

------------------------------------------------------------------------------
-- Slots of a desk connection.

-- Takes up to p_want free slots as session locks of this connection, never
-- one of p_held (the slots it holds already: a session lock is re-entrant,
-- so taking one again would count one call twice).
create function settlement.take_bank_slots(p_want integer, p_held integer[]) returns integer[]
language plpgsql volatile as $$
declare
  v_max integer;
  v_start integer;
  s integer;
  v integer[] := '{}';
begin
  if coalesce(p_want, 0) <= 0 then
    return v;
  end if;
  select max_in_flight into v_max from settlement.config where id;
  v_start := floor(random() * v_max)::integer;
  for i in 0 .. v_max - 1 loop
    s := (v_start + i) % v_max + 1;
    if not (s = any(coalesce(p_held, '{}'))) and pg_try_advisory_lock(21332, s) then
      v := v || s;
      exit when cardinality(v) >= p_want;
    end if;
  end loop;
  return v;
end $$;

-- try_bank_slot of 0030 (one slot, for claim_transfer) is the one-slot case.
create or replace function settlement.try_bank_slot() returns integer
language sql volatile as $$
  select (settlement.take_bank_slots(1, null))[1]
$$;

-- Gives back slots of this connection; wakes other processes' waiters when
-- there are any.
create function settlement.give_bank_slots(p_slots integer[]) returns void
language plpgsql volatile as $$
declare
  s integer;
  v_any boolean := false;
begin
  foreach s in array coalesce(p_slots, '{}') loop
    -- false (with a warning) for a slot this connection does not hold
    if pg_advisory_unlock(21332, s) then
      v_any := true;
    end if;
  end loop;
  if v_any and settlement.others_waiting_for_slots() then
    perform pg_notify('settlement_bank_slot', '');
  end if;
end $$;

-- Whether another session holds the "waiting" lock (21332, 0): a lock this
-- session holds itself never conflicts with its own request.
create function settlement.others_waiting_for_slots() returns boolean
language plpgsql volatile as $$
begin
  if pg_try_advisory_lock(21332, 0) then
    perform pg_advisory_unlock(21332, 0);
    return false;
  end if;
  return true;
end $$;

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
create function settlement.claim_transfers(p_ids bigint[], p_holders text[], p_lease_ms integer, p_want integer,
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
end $$;
comment on function settlement.claim_transfers is
  'Worker (bank desk): claim_transfer for a batch of transfers in one transaction, plus up to p_want bank-call slots for this connection; returns json {claims, slots, others_waiting, workers, max_in_flight}.';

------------------------------------------------------------------------------
-- finish_transfers: finish_transfer (0030) for a batch, giving back p_give
-- first. The everyday case (a payout, succeeded or failed, still sending or
-- pending under the IsTuno it was sent with) is set-based; every other item
-- goes through finish_transfer itself. Returns the results in input order.
create function settlement.finish_transfers(p_ids bigint[], p_is_tunos text[], p_outcomes text[], p_processed_at text[],
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
end $$;
comment on function settlement.finish_transfers is
  'Worker (bank desk): finish_transfer for a batch of outcomes in one transaction, after giving back the bank-call slots p_give of this connection; returns each result in input order.';

------------------------------------------------------------------------------
-- add_register_jobs of 0023 still deadlocked now and then (test/order.test.ts,
-- two pay stages adding register jobs for the same accounts): graphile's
-- add_jobs inserts its specs through a join, whose plan need not keep the
-- array's order. Callers now take turns (the lock lasts until the stage's
-- transaction ends; a stage adds these jobs once).
create or replace function settlement.add_register_jobs(p_accounts text[]) returns void
language plpgsql as $$
declare
  v graphile_worker.job_spec[];
begin
  select array_agg(row('register', json_build_object('account_no', a.account_no), null, null, 25, 'register:' || a.account_no, null, null)::graphile_worker.job_spec
                   order by a.account_no)
  into v
  from settlement.accounts a where a.account_no = any (p_accounts) and a.role = 'loan' and a.fin_acno is null;
  if v is not null then
    perform pg_advisory_xact_lock(hashtext('settlement.add_register_jobs'));
    perform graphile_worker.add_jobs(v);
  end if;
end $$;

------------------------------------------------------------------------------
-- The batch functions touch only the batch's rows, by primary key. A desk's
-- connection lives as long as its process, and PL/pgSQL keeps each
-- statement's plan for the session: a plan made on a fresh database, when
-- transfers held a few rows, scanned the whole table for every later batch
-- (and the table only grows). Index lookups and nested loops are the only
-- plans that suit them, whatever the statistics say.
alter function settlement.claim_transfers(bigint[], text[], integer, integer, integer[], integer)
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off;
alter function settlement.finish_transfers(bigint[], text[], text[], text[], text[], text[], integer[])
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off;

------------------------------------------------------------------------------
-- Grants (settlement_meta.api of 0023).
select settlement_meta.api('settlement_worker', array[
  'claim_transfers(bigint[], text[], integer, integer, integer[], integer)',
  'finish_transfers(bigint[], text[], text[], text[], text[], text[], integer[])',
  'take_bank_slots(integer, integer[])',
  'try_bank_slot()',
  'give_bank_slots(integer[])']);
revoke all on all functions in schema settlement from public;
