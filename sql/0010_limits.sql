-- Limits on what comes in, isolation of a failing day, history that cannot be
-- rewritten, and one set of settings for every worker.

------------------------------------------------------------------------------
-- accrue, with the limits. Same signature and behaviour otherwise.
create or replace function settlement.accrue(
  source_ref text, account_no text, kind settlement.kind, amount bigint, occurred_at timestamptz
) returns bigint
language plpgsql as $$
declare
  v_id bigint;
  v_existing settlement.accruals;
  v_lim settlement.limits;
  v_origin date;
  v_settle date;
  v_state settlement.stage_state;
begin
  if source_ref is null or account_no is null or kind is null or amount is null or occurred_at is null then
    perform settlement.raise_error('ST001', 'accrue: source_ref, account_no, kind, amount and occurred_at are all required');
  end if;
  -- A reference nobody can read back or type: empty, blank, control or zero-width characters.
  if length(source_ref) = 0 or length(source_ref) > 200 or btrim(source_ref, E' \t\r\n\u00a0\u3000') = ''
     or source_ref ~ '[[:cntrl:]]' or source_ref ~ '[\u0080-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]' then
    perform settlement.raise_error('ST032', format('accrue: source_ref must be 1-200 visible characters, without control or zero-width characters; got %s', quote_literal(left(source_ref, 60))));
  end if;
  if amount <= 0 then
    perform settlement.raise_error('ST003', format('accrue: amount must be > 0 KRW, got %s', amount));
  end if;
  select * into v_lim from settlement.limits where id;
  if amount > v_lim.max_accrual_amount then
    perform settlement.raise_error('ST030', format('accrue: amount %s KRW is over the per-accrual maximum %s KRW (settlement.limits)', amount, v_lim.max_accrual_amount));
  end if;
  if not isfinite(occurred_at)
     or settlement.business_date_of(occurred_at) not between settlement.today() - v_lim.accrual_days_back and settlement.today() + v_lim.accrual_days_ahead then
    perform settlement.raise_error('ST031', format('accrue: occurred_at %s is outside the accepted window (%s days back to %s days ahead of %s, settlement.limits)',
                                                  occurred_at, v_lim.accrual_days_back, v_lim.accrual_days_ahead, settlement.today()));
  end if;
  if not exists (select 1 from settlement.accounts a where a.account_no = accrue.account_no and a.role = 'loan') then
    perform settlement.raise_error('ST002', format('accrue: %s is not a known loan account', accrue.account_no));
  end if;

  -- Idempotent on source_ref: the same accrual again returns the existing row.
  select * into v_existing from settlement.accruals a where a.source_ref = accrue.source_ref;
  if found then
    if v_existing.account_no = accrue.account_no and v_existing.kind = accrue.kind
       and v_existing.amount = accrue.amount and v_existing.occurred_at = accrue.occurred_at then
      return v_existing.id;
    end if;
    perform settlement.raise_error('ST004', format('accrue: source_ref %s was already used with different values', accrue.source_ref));
  end if;

  -- The day it belongs to, or the next day whose record stage has not run.
  -- FOR SHARE on the record stage row waits for a record stage in progress,
  -- so an accrual is never inserted into a day while it is being recorded.
  -- The window above bounds this walk.
  v_origin := settlement.business_date_of(occurred_at);
  v_settle := v_origin;
  loop
    perform settlement.ensure_day(v_settle, accrue.kind);
    select r.state into v_state from settlement.stage_runs r
    where r.business_date = v_settle and r.kind = accrue.kind and r.stage = 'record'
    for share;
    exit when v_state <> 'done';
    v_settle := v_settle + 1;
  end loop;

  insert into settlement.accruals (source_ref, account_no, kind, amount, occurred_at, origin_date, settle_date)
  values (accrue.source_ref, accrue.account_no, accrue.kind, accrue.amount, accrue.occurred_at, v_origin, v_settle)
  on conflict on constraint accruals_source_ref_key do nothing
  returning id into v_id;
  if v_id is null then
    -- A concurrent call with the same source_ref won the race: compare with it.
    return settlement.accrue(source_ref, account_no, kind, amount, occurred_at);
  end if;
  return v_id;
end $$;
comment on function settlement.accrue is
  'Ingests one accrual. Idempotent on source_ref. Errors: ST001 missing field, ST002 unknown loan account, ST003 amount <= 0, ST004 source_ref reused with other values, '
  'ST030 amount over settlement.limits.max_accrual_amount, ST031 date outside the accepted window, ST032 unreadable source_ref.';

------------------------------------------------------------------------------
-- A stage that raised for one (date, kind) says so on that day; the others go on.
create function settlement.record_stage_error(p_stage settlement.stage, p_date date, p_kind settlement.kind, p_error text) returns void
language plpgsql as $$
begin
  update settlement.stage_runs
  set state = case when state = 'done' then state else 'blocked' end,
      detail = left(format('error: %s (the stage is tried again at the next tick)', p_error), 1000), updated_at = now()
  where business_date = p_date and kind = p_kind and stage = p_stage and state <> 'done';
end $$;
comment on function settlement.record_stage_error is 'Worker: a stage that failed with an error for one (date, kind) is shown blocked with the error; the next tick tries it again.';

------------------------------------------------------------------------------
-- History that cannot be rewritten: accruals, entries and attempts refuse
-- UPDATE, DELETE and TRUNCATE; a transfer changes only along its state machine.
create trigger accruals_append_only before update or delete on settlement.accruals
  for each row execute function settlement.journal_append_only();
create trigger accruals_no_truncate before truncate on settlement.accruals
  for each statement execute function settlement.journal_append_only();
create trigger entries_append_only before update or delete on settlement.entries
  for each row execute function settlement.journal_append_only();
create trigger entries_no_truncate before truncate on settlement.entries
  for each statement execute function settlement.journal_append_only();
create trigger transfer_attempts_append_only before update or delete on settlement.transfer_attempts
  for each row execute function settlement.journal_append_only();
create trigger transfer_attempts_no_truncate before truncate on settlement.transfer_attempts
  for each statement execute function settlement.journal_append_only();
create trigger transfers_no_delete before delete on settlement.transfers
  for each row execute function settlement.journal_append_only();
create trigger transfers_no_truncate before truncate on settlement.transfers
  for each statement execute function settlement.journal_append_only();

-- The transfer state machine, enforced on every UPDATE whoever makes it:
--   what and how much never change; pending -> sending -> succeeded | failed;
--   sending -> sending (a new claim, or unresolved); failed -> pending only
--   with a new IsTuno and the next attempt (an operator's retry after the bank
--   proved the old number unbooked); succeeded never changes again.
create function settlement.transfers_guard() returns trigger
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
-- The WHEN clause lets the legal, everyday transitions (claims, outcomes,
-- releases) through without calling the function; only what might break the
-- rules is examined by it.
create trigger transfers_state_machine before update on settlement.transfers
  for each row
  when ((new.purpose, new.business_date, new.kind, new.entry_id, new.seq, new.from_account, new.to_account, new.amount, new.fintech_apsno)
          is distinct from (old.purpose, old.business_date, old.kind, old.entry_id, old.seq, old.from_account, old.to_account, old.amount, old.fintech_apsno)
        or old.state = 'succeeded'
        or new.is_tuno <> old.is_tuno or new.attempt <> old.attempt
        or not ((old.state = 'pending' and new.state in ('pending', 'sending'))
                or (old.state = 'sending' and new.state in ('sending', 'succeeded', 'failed'))
                or (old.state = 'failed' and new.state = 'failed' and (new.fail_code, new.settled_at) is not distinct from (old.fail_code, old.settled_at))))
  execute function settlement.transfers_guard();

-- A journal entry's lines are written with it, in its transaction, never
-- later: the balance check (one pass over the inserted lines' entries) also
-- refuses lines for an entry posted by another transaction.
alter table settlement.journal_entries add column txid bigint not null default txid_current();
create or replace function settlement.journal_check_balance() returns trigger
language plpgsql as $$
declare
  bad record;
begin
  select n.journal_id, sum(l.amount) as diff, bool_or(e.txid <> txid_current()) as closed into bad
  from (select distinct journal_id from new_lines) n
  join settlement.journal_entries e on e.id = n.journal_id
  join settlement.journal_lines l on l.journal_id = n.journal_id
  group by n.journal_id
  having sum(l.amount) <> 0 or bool_or(e.txid <> txid_current())
  order by 3 desc
  limit 1;
  if found and bad.closed then
    raise exception 'journal entry % is closed: lines can only be added in the transaction that posts it', bad.journal_id
      using errcode = 'ST007';
  end if;
  if found then
    raise exception 'journal entry % does not balance (debits - credits = %)', bad.journal_id, bad.diff
      using errcode = 'ST006';
  end if;
  return null;
end $$;

------------------------------------------------------------------------------
-- One set of settings. settlement.config is written once — by the first
-- `settle migrate` or worker that finds it unset — and afterwards only by an
-- operator (`settle configure`, settlement.configure). A worker whose
-- environment says otherwise is refused, naming each difference, instead of
-- silently rewriting everyone's settings.
alter table settlement.config add column configured boolean not null default false;

create function settlement.adopt_settings(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer)
returns table (setting text, in_database text, in_environment text)
language plpgsql as $$
declare
  c settlement.config;
begin
  select * into c from settlement.config where id for update;
  if not c.configured then
    perform settlement.configure(p_time_zone, p_per_call_limit, p_max_in_flight);
    update settlement.config set configured = true where id;
    return;
  end if;
  return query
    select x.s, x.db, x.env from (values
      ('SETTLEMENT_TIMEZONE', c.time_zone, p_time_zone),
      ('BANK_PER_CALL_LIMIT', c.per_call_limit::text, p_per_call_limit::text),
      ('BANK_MAX_IN_FLIGHT', c.max_in_flight::text, p_max_in_flight::text)) x(s, db, env)
    where x.db is distinct from x.env;
end $$;
comment on function settlement.adopt_settings is
  'Worker/migrate: writes the settings the SQL needs if they were never set; otherwise returns every setting where the caller''s environment differs from the database.';

create or replace function settlement.configure(p_time_zone text, p_per_call_limit bigint, p_max_in_flight integer) returns void
language plpgsql as $$
begin
  if p_time_zone is null or p_per_call_limit is null or p_max_in_flight is null or p_per_call_limit <= 0 or p_max_in_flight <= 0 then
    perform settlement.raise_error('ST001', 'configure: time zone, a per-call limit > 0 and a max in flight > 0 are required');
  end if;
  perform now() at time zone p_time_zone; -- raises for an unknown zone
  update settlement.config
  set time_zone = p_time_zone, per_call_limit = p_per_call_limit, max_in_flight = p_max_in_flight, configured = true, updated_at = now()
  where id;
  insert into settlement.bank_slots (slot) select generate_series(1, p_max_in_flight) on conflict do nothing;
end $$;
comment on function settlement.configure is 'Operator: sets the settings every worker must share (settle configure). Workers started with other values refuse to start.';

------------------------------------------------------------------------------
-- A freed bank-call slot wakes the workers waiting for one (LISTEN
-- settlement_bank_slot) instead of their polling for it.
create or replace function settlement.release_bank_slot(p_slot integer, p_holder text) returns void
language plpgsql as $$
begin
  update settlement.bank_slots set holder = null, lease_until = null where slot = p_slot and holder = p_holder;
  -- Only a release into a full cap can have waiters: notify then, and spare
  -- every commit the notification queue while slots are free.
  if found and not exists (select 1 from settlement.bank_slots s
                           where s.slot <> p_slot and s.slot <= (select max_in_flight from settlement.config where id)
                             and (s.holder is null or s.lease_until < now())) then
    perform pg_notify('settlement_bank_slot', '');
  end if;
end $$;
