-- Transfers: payout chunks and withdrawals, one claim and one finish, the
-- journal entries of a settled transfer and the state machine.

-- The transfer state machine, enforced on every UPDATE whoever makes it:
--   what and how much never change; pending -> sending -> succeeded | failed;
--   sending -> sending (a new claim, or unresolved); failed -> pending only
--   with a new IsTuno and the next attempt (an operator's retry after the bank
--   proved the old number unbooked); any -> succeeded on the bank's evidence
--   that one of its numbers was booked; succeeded never changes again.
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
  -- The bank's evidence that one of its numbers was booked (recorded first,
  -- settlement.take_booking_evidence) makes it succeeded from any state, under
  -- that number; the number it held is kept in transfer_attempts.
  if new.state = 'succeeded' and old.state <> 'succeeded'
     and exists (select 1 from settlement.transfer_evidence e where e.transfer_id = old.id and e.is_tuno = new.is_tuno and e.booked) then
    if new.is_tuno <> old.is_tuno
       and not (exists (select 1 from settlement.transfer_attempts a where a.transfer_id = old.id and a.is_tuno = new.is_tuno)
                and exists (select 1 from settlement.transfer_attempts a where a.transfer_id = old.id and a.is_tuno = old.is_tuno)) then
      raise exception 'transfer %: evidence makes it succeeded only under a number of its own, keeping the one it held', old.id using errcode = 'ST007';
    end if;
    return new;
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

create or replace trigger transfer_evidence_append_only before update or delete on settlement.transfer_evidence
  for each row execute function settlement.journal_append_only();

------------------------------------------------------------------------------
-- The bank desk: each worker process claims and finishes its transfers in
-- batches, one round trip and one transaction for every claim (or outcome)
-- waiting when the last one returns, on one connection of its own that also
-- holds the process's bank-call slots (45_bank_slots.sql). claim_transfers
-- and finish_transfers are the only bodies that claim and finish a transfer:
-- one transfer is a batch of one.

-- The journal entry of settled transfers, set-based: one entry per transfer
-- (ref = its IsTuno). Payout: bank:<settlement> +, bank:<loan> -,
-- due_to:<kind> +, due_from:<loan> -; withdrawal: the two bank lines.
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

-- A payout settled: confirm once nothing of the day's kind is pending or
-- sending. p_id: a transfer of the day just settled (the search for an open
-- chunk starts beside it).
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

-- The withdrawal settled: its journal entry and the withdraw stage's end.
create or replace function settlement.after_withdrawal(t settlement.transfers) returns void
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', t.business_date, t.kind));
  if t.state = 'succeeded' then
    perform settlement.journal_transfers(array[t.id]);
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'done', format('%s KRW withdrawn (%s)', t.amount, t.is_tuno));
    perform settlement.after_stage('withdraw', t.business_date, t.kind);
  else
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'blocked',
      format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', t.fail_code, t.fail_message, t.business_date, t.kind));
  end if;
end $$;

-- An answer that changes nothing: 'stale' (the transfer holds another
-- number now, or another attempt holds its claim) or 'already_settled'.
create or replace function settlement.finish_miss(p_id bigint, p_is_tuno text) returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  select * into t from settlement.transfers where id = p_id;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  return case when t.is_tuno = p_is_tuno and t.state in ('succeeded', 'failed') then 'already_settled' else 'stale' end;
end $$;

-- An attempt that could not learn its outcome ('unresolved') after another
-- attempt took the transfer over (its claim was freed or taken again): the
-- bank may book its number whatever the other attempt records, so unless the
-- transfer is already paid, it is kept in unknown_outcomes (retry_failed
-- refuses while one stands: ST016). Returns what finish_miss returns.
create or replace function settlement.finish_unknown(p_id bigint, p_is_tuno text, p_message text) returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  select * into t from settlement.transfers where id = p_id;
  if found and t.state <> 'succeeded'
     and (t.is_tuno = p_is_tuno or exists (select 1 from settlement.transfer_attempts a where a.transfer_id = p_id and a.is_tuno = p_is_tuno)) then
    insert into settlement.unknown_outcomes (transfer_id, is_tuno, message)
    values (p_id, p_is_tuno, left(coalesce(p_message, 'no answer'), 500));
  end if;
  return settlement.finish_miss(p_id, p_is_tuno);
end $$;

-- Evidence wins, in one place: the bank booked p_is_tuno, one of transfer
-- p_id's numbers (an answer, a statement line, a person's word; p_source).
-- Whatever state the transfer is in, it becomes succeeded under that number
-- (the evidence recorded, the journal posted, what follows done), unless it
-- is already paid: then the booking is an orphan in suspense. The number it
-- held, if another, is kept in transfer_attempts: 'failed' code 'withdrawn'
-- when never sent (no Tsymd), 'sending' code 'superseded' when an attempt may
-- have sent it (a booking under it is then this transfer's orphan). A number
-- that is none of the transfer's is an orphan too. Returns 'succeeded',
-- 'already_settled' (paid under that number) or 'stale' (an orphan).
create or replace function settlement.take_booking_evidence(p_id bigint, p_is_tuno text, p_processed_at text, p_source text,
  p_line_id bigint default null, p_detail text default null)
returns text
language plpgsql as $$
declare
  t settlement.transfers;
  a settlement.transfer_attempts;
begin
  select * into t from settlement.transfers where id = p_id for update;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  if t.is_tuno = p_is_tuno and t.state = 'succeeded' then
    return 'already_settled';
  end if;
  -- A number never claimed was never sent by us: a booking under it is money
  -- nobody here moved (an orphan for a person), not this transfer's payment.
  if t.is_tuno = p_is_tuno and t.tsymd is null then
    perform settlement.record_booked_orphan(t, p_is_tuno, p_processed_at);
    return 'stale';
  end if;
  if t.is_tuno <> p_is_tuno then
    select * into a from settlement.transfer_attempts x where x.transfer_id = t.id and x.is_tuno = p_is_tuno;
    if not found or t.state = 'succeeded' then
      perform settlement.record_booked_orphan(t, p_is_tuno, p_processed_at);
      return 'stale';
    end if;
    if not exists (select 1 from settlement.transfer_attempts x where x.is_tuno = t.is_tuno) then
      insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message)
      values (t.id, t.is_tuno, t.tsymd, t.amount,
              case when t.tsymd is null then 'failed' else 'sending' end::settlement.transfer_state,
              case when t.tsymd is null then 'withdrawn' else 'superseded' end,
              format('IsTuno %s of the same transfer was booked (%s)', p_is_tuno, p_source));
    end if;
  end if;
  if t.is_tuno = p_is_tuno and t.state <> 'failed' then
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, processed_at)
    values (t.id, t.is_tuno, t.tsymd, t.amount, 'succeeded', p_processed_at);
  end if;
  insert into settlement.transfer_evidence (transfer_id, is_tuno, booked, source, processed_at, line_id, detail)
  values (t.id, p_is_tuno, true, p_source, p_processed_at, p_line_id,
          coalesce(p_detail, format('the bank booked IsTuno %s (processed %s) while the transfer was %s under %s',
                                    p_is_tuno, coalesce(p_processed_at, '?'), t.state, t.is_tuno)));
  update settlement.transfers x
  set state = 'succeeded', is_tuno = p_is_tuno, tsymd = case when a.is_tuno is null then x.tsymd else a.tsymd end,
      -- (a person's word carries no bank time: the moment it was recorded, KST)
      processed_at = coalesce(p_processed_at, to_char(settlement_meta.now() at time zone 'Asia/Seoul', 'YYYYMMDDHH24MISS')),
      fail_code = null, fail_message = null, settled_at = settlement_meta.now(),
      claimed_by = null, claimed_until = null, claim_token = null, unresolved_since = null, unresolved_reason = null, updated_at = settlement_meta.now()
  where x.id = t.id
  returning * into t;
  if t.purpose = 'payout' then
    perform settlement.journal_transfers(array[t.id]);
    perform settlement.confirm_when_paid(t.business_date, t.kind, t.id);
  else
    perform settlement.after_withdrawal(t);
  end if;
  return 'succeeded';
end $$;
comment on function settlement.take_booking_evidence is 'Internal: the bank booked one of a transfer''s numbers: it becomes succeeded under it from any state (evidence kept, journal posted, a newer number withdrawn or kept as superseded), or the booking is an orphan when the transfer is paid otherwise.';

-- A claim's holder string is "<pool id>#<secret of the process>" (the desk's;
-- 0015_claim_fencing.sql): claimed_by keeps the pool id, claim_key the
-- string's sha256. Without '#', the whole string is the pool id and there is
-- no key (nobody takes such a claim again while it is live).
create or replace function settlement.holder_pool(p_holder text) returns text
language sql immutable parallel safe as $$ select split_part(p_holder, '#', 1) $$;
create or replace function settlement.holder_key(p_holder text) returns bytea
language sql immutable parallel safe as $$
  select case when strpos(p_holder, '#') > 0 then sha256(convert_to(p_holder, 'UTF8')) end
$$;

-- A claim's fencing token: 63 bits from the server's strong random source
-- (gen_random_uuid), told only to the attempt that claimed. A sequence's next
-- value would let a login that cannot read the transfers guess a live
-- attempt's token from its own.
create or replace function settlement.new_claim_token() returns bigint
language sql volatile parallel safe as $$
  select ('x' || substr(md5(gen_random_uuid()::text), 1, 16))::bit(64)::bigint & 9223372036854775807
$$;

------------------------------------------------------------------------------
-- Claims a batch of transfers for one bank attempt each (a lease), in one
-- transaction. Rows are locked in id order (as every claimer locks); for each
-- transfer the decision is made under its row lock:
--   paused  : settlement.pause covers its kind (no claim; try again later)
--   send    : claimed; call the bank under is_tuno. The database fixes its
--             Tsymd (KST, its own clock) on the first claim. resume = an
--             earlier attempt may have reached the bank (ask it first);
--             sendable = the database's KST date is still the Tsymd
--             (otherwise only ask, never send)
--   settled : it already has its result;  busy : another live attempt holds it
--   missing : there is no such transfer.
-- The batch's sends are one UPDATE. p_want bank-call slots are taken too (the
-- desk's calls about to need one; never one of p_held, the slots the
-- connection holds), and p_flag takes (1) or lets go (-1) of the "waiting"
-- lock. One json document comes back:
--   {"claims": [claim, ...] (in p_ids order), "slots": [..], "others_waiting": bool, "workers": n, "max_in_flight": m}
-- where a claim is {action, resume, sendable, transfer_id, purpose, is_tuno,
-- tsymd, memo, fintech_apsno, fin_acno, to_bncd, to_account, amount,
-- business_date, kind, attempt, claim_token, lease_until_ms} (transfer_id,
-- amount and the token as text: no number of a money path goes through a
-- float). claim_token (send only) fences the attempt: only its finish
-- changes the transfer (finish_transfers); lease_until_ms (the database's
-- clock, epoch ms) is when the claim ends: no request of the attempt may be
-- in flight after it, and no send starts once the database's KST date is
-- past tsymd (the bank client checks both before every send). The lease
-- (p_lease_ms) covers the whole attempt, slot wait included, and is at most
-- config.max_attempt (else ST019); a batch naming a transfer twice is
-- refused (ST014). When the attempt (its lease) would meet one of the bank's
-- quiet windows (47_bank_windows.sql), nothing of the batch is claimed and no
-- slot taken: each transfer that would have been sent is 'quiet' (with
-- quiet_until_ms, when the window ends), marked quiet_until, and its job runs
-- again then.
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
  v_lease interval := make_interval(secs => p_lease_ms / 1000.0);
  v_quiet timestamptz;
  v_quiet_ids bigint[] := '{}';
  v_pause_all boolean;
  v_paused_kinds settlement.kind[];
begin
  -- A malformed batch is refused before anything is taken (no slot, no lock).
  if cardinality(coalesce(p_ids, '{}')) <> cardinality(coalesce(p_holders, '{}')) then
    perform settlement.raise_error('ST001', 'claim_transfers: p_ids and p_holders must have the same length');
  end if;
  if cardinality(p_ids) > 1 and (select count(distinct x) from unnest(p_ids) x) <> cardinality(p_ids) then
    perform settlement.raise_error('ST014', 'claim_transfers: a transfer appears twice in the batch');
  end if;
  select c.max_in_flight into v_max from settlement.config c where c.id and v_lease > interval '0' and v_lease <= c.max_attempt;
  if not found then
    perform settlement.raise_error('ST019', format('claim_transfers: a lease of %s ms is not within (0, config.max_attempt]', p_lease_ms));
  end if;
  v_quiet := settlement.bank_quiet_until(settlement_meta.now(), v_lease);
  if p_flag > 0 then
    perform pg_advisory_lock_shared(settlement.bank_slot_lock_class(), 0);
  elsif p_flag < 0 then
    perform pg_advisory_unlock_shared(settlement.bank_slot_lock_class(), 0);
  end if;

  -- settlement.pause, read once for the batch (per row it would be a
  -- function call planned anew with every claim).
  select coalesce(bool_or(p.kind is null), false), coalesce(array_agg(p.kind) filter (where p.kind is not null), '{}')
  into v_pause_all, v_paused_kinds
  from settlement.pauses p where p.resumed_at is null;

  -- The row locks first (id order), then the decision on what they hold.
  with l as (
    select t.id, t.state, t.kind, t.tsymd, t.claim_key, t.claimed_until
    from settlement.transfers t where t.id = any(p_ids) order by t.id for update),
  d as (
    select l.id, l.tsymd,
           case when l.state not in ('pending', 'sending') then 'done'
                when v_pause_all or l.kind = any(v_paused_kinds) then 'paused'
                when l.claimed_until is null or l.claimed_until < settlement_meta.now() then 'send'
                -- a live claim: only its own holder string (the same process) takes it again
                when l.claim_key = settlement.holder_key(r.holder) then 'send'
                else 'busy' end as action
    from l join unnest(p_ids, p_holders) r(id, holder) on r.id = l.id)
  select coalesce(array_agg(d.id) filter (where d.action = 'send'), '{}'),
         coalesce(array_agg(d.id) filter (where d.action = 'paused'), '{}'),
         coalesce(array_agg(d.id) filter (where d.action = 'send' and d.tsymd is not null), '{}')
  into v_send, v_paused, v_resume
  from d;

  -- The bank's quiet hours: what would be sent waits for the window's end.
  if v_quiet is not null then
    v_quiet_ids := v_send;
    v_send := '{}';
    v_resume := '{}';
    p_want := 0;
    if cardinality(v_quiet_ids) > 0 then
      update settlement.transfers x set quiet_until = v_quiet where x.id = any(v_quiet_ids);
      perform settlement.add_transfer_jobs_at(v_quiet_ids, v_quiet);
    end if;
  end if;

  -- By primary key (an index condition: no plan can turn it into a scan of
  -- the table); a row's own values are found by its place in the batch.
  -- Each claim gets a new fencing token; sent_until covers its lease, and
  -- open_until keeps the bound of the attempts before it.
  update settlement.transfers x
  set state = 'sending', tsymd = coalesce(x.tsymd, v_ymd), claimed_by = settlement.holder_pool(p_holders[array_position(p_ids, x.id)]),
      claim_key = settlement.holder_key(p_holders[array_position(p_ids, x.id)]),
      claimed_until = settlement_meta.now() + v_lease, claim_token = settlement.new_claim_token(),
      open_until = x.sent_until, sent_until = greatest(x.sent_until, settlement_meta.now() + v_lease), quiet_until = null, updated_at = settlement_meta.now()
  where x.id = any(v_send);

  select json_agg(json_build_object(
           'action', case when t.id is null then 'missing'
                          when t.id = any(v_send) then 'send'
                          when t.id = any(v_paused) then 'paused'
                          when t.id = any(v_quiet_ids) then 'quiet'
                          when t.state in ('succeeded', 'failed') then 'settled'
                          else 'busy' end,
           'resume', t.id = any(v_resume),
           'sendable', t.id = any(v_send) and t.tsymd = v_ymd,
           'transfer_id', r.id::text, 'purpose', t.purpose, 'is_tuno', t.is_tuno, 'tsymd', t.tsymd, 'memo', t.memo,
           'fintech_apsno', t.fintech_apsno, 'fin_acno', t.fin_acno, 'to_bncd', t.to_bncd, 'to_account', t.to_account,
           'amount', t.amount::text, 'business_date', t.business_date::text, 'kind', t.kind, 'attempt', t.attempt,
           'claim_token', case when t.id = any(v_send) then t.claim_token::text end,
           'lease_until_ms', case when t.id = any(v_send) then floor(extract(epoch from t.claimed_until) * 1000)::bigint::text end,
           'quiet_until_ms', case when t.id = any(v_quiet_ids) then floor(extract(epoch from v_quiet) * 1000)::bigint::text end)
         order by r.ord)
  into v_claims
  from unnest(p_ids) with ordinality r(id, ord)
  left join settlement.transfers t on t.id = r.id;

  -- While another process waits, this one takes no more than its share of
  -- the cap (max_in_flight over the live workers).
  select greatest(count(*), 1) into v_workers from settlement.workers w cross join settlement.ops_settings o
  where o.id and w.last_beat > settlement_meta.now() - o.worker_silent_after;
  v_others := settlement.others_waiting_for_slots();
  if v_others then
    p_want := least(p_want, ceil(v_max::numeric / v_workers)::integer - cardinality(coalesce(p_held, '{}')));
  end if;
  v_slots := settlement.take_bank_slots(p_want, p_held);

  return json_build_object('claims', coalesce(v_claims, '[]'::json), 'slots', v_slots, 'others_waiting', v_others,
                           'workers', v_workers, 'max_in_flight', v_max);
end $$
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off set plan_cache_mode = force_generic_plan;
comment on function settlement.claim_transfers is 'Worker (bank desk): claims a batch of transfers (a lease each; paused, send, settled, busy or missing) in one transaction, plus up to p_want bank-call slots for this connection; returns json {claims, slots, others_waiting, workers, max_in_flight}.';

------------------------------------------------------------------------------
-- Records the bank's answers for a batch of transfers, once each, in one
-- transaction, after giving back the bank-call slots p_give of this
-- connection (first of all: they are given back whatever follows). An
-- outcome is succeeded (p_processed_at: the bank's processing time), failed
-- (p_codes, p_messages) or unresolved (p_messages: why; the transfer stays
-- sending, its claim let go, and is asked about again). p_tokens: each
-- attempt's claim token (claim_transfers). Fencing: failed and unresolved
-- change the transfer only from the attempt holding its live claim (else
-- 'stale'); succeeded is the bank's evidence and is always taken
-- (settlement.take_booking_evidence: from any state, under any of the
-- transfer's numbers). A settled transfer gets its attempt row and journal
-- entry, then what follows: a payout's day is confirmed once nothing of it is
-- open; a withdrawal ends (or blocks) the withdraw stage. The attempt holding
-- the claim sets sent_until to now: none of its requests is in flight after
-- it. Returns each result in input order: succeeded, failed, unresolved,
-- stale, already_settled. Refused: arrays of different lengths (ST001), an
-- unknown outcome (ST009), a transfer twice in the batch (ST014).
--
-- The everyday case (a payout, succeeded or failed, sending under the IsTuno
-- it was sent with, by the claim's holder) is set-based: one UPDATE, one
-- insert of attempts, one of journal entries and one of journal lines for the
-- batch. Every other item (a withdrawal, an unresolved outcome, a miss,
-- evidence) is taken one by one after it.
create or replace function settlement.finish_transfers(p_ids bigint[], p_is_tunos text[], p_outcomes text[], p_processed_at text[],
  p_codes text[], p_messages text[], p_give integer[], p_tokens bigint[] default null)
returns text[]
language plpgsql as $$
declare
  v_n integer := cardinality(coalesce(p_ids, '{}'));
  v_tokens bigint[] := coalesce(p_tokens, array_fill(null::bigint, array[cardinality(coalesce(p_ids, '{}'))]));
  v_fast bigint[];
  v_done bigint[];
  v_succeeded bigint[];
  v_out text[] := '{}';
  t settlement.transfers;
  g record;
  i integer;
begin
  perform settlement.give_bank_slots(p_give);
  if cardinality(coalesce(p_is_tunos, '{}')) <> v_n or cardinality(coalesce(p_outcomes, '{}')) <> v_n
     or cardinality(coalesce(p_processed_at, '{}')) <> v_n or cardinality(coalesce(p_codes, '{}')) <> v_n
     or cardinality(coalesce(p_messages, '{}')) <> v_n or cardinality(v_tokens) <> v_n then
    perform settlement.raise_error('ST001', 'finish_transfers: the arrays must have the same length');
  end if;
  if exists (select 1 from unnest(p_outcomes) o where o is null or o not in ('succeeded', 'failed', 'unresolved')) then
    perform settlement.raise_error('ST009', 'finish_transfers: every outcome must be succeeded, failed or unresolved');
  end if;
  if v_n > 1 and (select count(distinct x) from unnest(p_ids) x) <> v_n then
    perform settlement.raise_error('ST014', 'finish_transfers: a transfer appears twice in the batch');
  end if;
  -- The batch's rows are locked in id order, as claims lock them (an UPDATE
  -- joined to the batch would lock them in whatever order its plan visits).
  perform 1 from settlement.transfers x where x.id = any(p_ids) order by x.id for update;
  -- The bank holds the truth about a transfer, so a finish lost in a database
  -- crash is recovered like a worker that died before finishing: the transfer
  -- is still 'sending' under its claim and its next attempt asks the bank
  -- first. The commit need not wait for the WAL flush. (The job's completion
  -- commits after it, synchronously: once that is durable, so is this.)
  perform set_config('synchronous_commit', 'off', true);
  if v_n = 0 then
    return v_out;
  end if;

  -- Everyday payouts, by primary key (an index condition: no plan can turn
  -- it into a scan of the table); a row's own values are found by its place
  -- in the batch.
  v_fast := array(select p_ids[k] from generate_subscripts(p_ids, 1) k where p_outcomes[k] in ('succeeded', 'failed'));
  with u as (
    update settlement.transfers x
    set state = p_outcomes[array_position(p_ids, x.id)]::settlement.transfer_state,
        processed_at = p_processed_at[array_position(p_ids, x.id)], fail_code = p_codes[array_position(p_ids, x.id)],
        fail_message = left(p_messages[array_position(p_ids, x.id)], 500), settled_at = settlement_meta.now(), claimed_by = null, claimed_until = null,
        claim_token = null, sent_until = case when x.claim_token = v_tokens[array_position(p_ids, x.id)] then greatest(settlement_meta.now(), x.open_until) else x.sent_until end,
        unresolved_since = null, unresolved_reason = null, updated_at = settlement_meta.now()
    where x.id = any(v_fast) and x.is_tuno = p_is_tunos[array_position(p_ids, x.id)]
      and x.state = 'sending' and x.purpose = 'payout'
      and (p_outcomes[array_position(p_ids, x.id)] = 'succeeded' or x.claim_token = v_tokens[array_position(p_ids, x.id)])
    returning x.*),
  a as (
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message, processed_at)
    select u.id, u.is_tuno, u.tsymd, u.amount, u.state, u.fail_code, u.fail_message, u.processed_at from u)
  select coalesce(array_agg(u.id), '{}'), coalesce(array_agg(u.id) filter (where u.state = 'succeeded'), '{}')
  into v_done, v_succeeded from u;

  perform settlement.journal_transfers(v_succeeded);

  -- The rest, one by one.
  for i in 1 .. v_n loop
    if p_ids[i] = any(v_done) then
      v_out := v_out || p_outcomes[i];
    elsif p_outcomes[i] = 'unresolved' then
      update settlement.transfers x
      set claimed_by = null, claimed_until = null, claim_token = null, sent_until = greatest(settlement_meta.now(), x.open_until),
          unresolved_since = coalesce(x.unresolved_since, settlement_meta.now()), unresolved_reason = left(p_messages[i], 500), updated_at = settlement_meta.now()
      where x.id = p_ids[i] and x.is_tuno = p_is_tunos[i] and x.state = 'sending' and x.claim_token = v_tokens[i];
      v_out := v_out || case when found then 'unresolved' else settlement.finish_unknown(p_ids[i], p_is_tunos[i], p_messages[i]) end;
    else
      update settlement.transfers x
      set state = p_outcomes[i]::settlement.transfer_state, processed_at = p_processed_at[i], fail_code = p_codes[i],
          fail_message = left(p_messages[i], 500), settled_at = settlement_meta.now(), claimed_by = null, claimed_until = null,
          claim_token = null, sent_until = case when x.claim_token = v_tokens[i] then greatest(settlement_meta.now(), x.open_until) else x.sent_until end,
          unresolved_since = null, unresolved_reason = null, updated_at = settlement_meta.now()
      where x.id = p_ids[i] and x.is_tuno = p_is_tunos[i] and x.state = 'sending'
        and (p_outcomes[i] = 'succeeded' or x.claim_token = v_tokens[i])
      returning * into t;
      if not found then
        v_out := v_out || case when p_outcomes[i] = 'succeeded'
                               then settlement.take_booking_evidence(p_ids[i], p_is_tunos[i], p_processed_at[i], 'answer')
                               else settlement.finish_miss(p_ids[i], p_is_tunos[i]) end;
        continue;
      end if;
      insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message, processed_at)
      values (t.id, t.is_tuno, t.tsymd, t.amount, t.state, t.fail_code, t.fail_message, t.processed_at);
      if t.purpose = 'payout' then
        if t.state = 'succeeded' then
          perform settlement.journal_transfers(array[t.id]);
        end if;
        perform settlement.confirm_when_paid(t.business_date, t.kind, t.id);
      else
        perform settlement.after_withdrawal(t);
      end if;
      v_out := v_out || p_outcomes[i];
    end if;
  end loop;

  -- One look per day and kind, in one order for every batch (each may take
  -- that day's confirm lock and add its job).
  for g in select x.business_date, x.kind, max(x.id) as id from settlement.transfers x where x.id = any(v_done)
           group by x.business_date, x.kind order by x.business_date, x.kind loop
    perform settlement.confirm_when_paid(g.business_date, g.kind, g.id);
  end loop;
  return v_out;
end $$
  set enable_seqscan = off set enable_hashjoin = off set enable_mergejoin = off set plan_cache_mode = force_generic_plan;
comment on function settlement.finish_transfers is 'Worker (bank desk): records the bank''s answers for a batch of transfers (+ attempts, journal, what follows) once each, in one transaction, after giving back the bank-call slots p_give of this connection; failed and unresolved only from the attempt holding the live claim (p_tokens), succeeded always (the bank''s evidence); returns each result in input order (succeeded, failed, unresolved, stale, already_settled).';

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
  where t.state in ('pending', 'sending') and (t.claimed_until is null or t.claimed_until < settlement_meta.now())
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
