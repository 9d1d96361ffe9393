-- Ingestion: settlement.accrue, the one way accruals come in (append-only).

-- Idempotent on source_ref; refuses what it cannot take with a named error
-- and changes nothing: ST001 a missing field, ST032 a source_ref nobody can
-- read back, ST003 amount <= 0, ST030 over settlement.limits' maximum, ST031
-- a date outside the accepted window, ST002 an unknown loan account, ST004 a
-- source_ref used before with other values.
-- Bounds an ingest session's transaction (limits.ingest_idle_timeout, ingest_lock_timeout).
create or replace function settlement.bound_ingest_transaction() returns void
language plpgsql as $$
declare
  v_idle interval;
  v_lock interval;
  v_cur interval;
begin
  select ingest_idle_timeout, ingest_lock_timeout into v_idle, v_lock from settlement.limits where id;
  v_cur := current_setting('idle_in_transaction_session_timeout')::interval;
  if v_cur = '0' or v_cur > v_idle then
    perform set_config('idle_in_transaction_session_timeout', (extract(epoch from v_idle) * 1000)::bigint::text, true);
  end if;
  v_cur := current_setting('lock_timeout')::interval;
  if v_cur = '0' or v_cur > v_lock then
    perform set_config('lock_timeout', (extract(epoch from v_lock) * 1000)::bigint::text, true);
  end if;
end $$;
comment on function settlement.bound_ingest_transaction is 'accrue: bounds the caller''s transaction (settlement.limits.ingest_idle_timeout, ingest_lock_timeout), transaction-local.';

-- The chunks one more accrual adds to its (day, kind), and the day's total
-- with it; raises ST033 (nothing recorded) if that is over the limit. Called
-- by accrue after its insert (p_new_id: the row just inserted, not counted
-- in the account's sum). Accruals of one (day, kind, loan account) are
-- counted one transaction at a time (an advisory lock until commit).
create or replace function settlement.count_accrual_chunks(p_new_id bigint, p_settle date, p_kind settlement.kind, p_account text, p_amount bigint)
returns void
language plpgsql as $$
declare
  v_per_call bigint;
  v_max integer;
  v_sum bigint;
  v_delta bigint;
  v_chunks bigint;
begin
  perform pg_advisory_xact_lock(21334, hashtext(format('%s|%s|%s', p_settle, p_kind, p_account)));
  select per_call_limit into v_per_call from settlement.config where id;
  select max_chunks_per_day into v_max from settlement.limits where id;
  select coalesce(sum(a.amount), 0) into v_sum from settlement.accruals a
  where a.settle_date = p_settle and a.kind = p_kind and a.account_no = p_account and a.id <> p_new_id;
  v_delta := ceil((v_sum::numeric + p_amount) / v_per_call)::bigint - ceil(v_sum::numeric / v_per_call)::bigint;
  if v_delta = 0 then
    return;
  end if;
  insert into settlement.day_chunk_counts (settle_date, kind, chunks)
  select p_settle, p_kind, coalesce(sum(ceil(x.s::numeric / v_per_call)), 0)::bigint
  from (select sum(a.amount) as s from settlement.accruals a
        where a.settle_date = p_settle and a.kind = p_kind and a.id <> p_new_id group by a.account_no) x
  on conflict do nothing;
  update settlement.day_chunk_counts c set chunks = c.chunks + v_delta
  where c.settle_date = p_settle and c.kind = p_kind
  returning c.chunks into v_chunks;
  if v_chunks > v_max then
    perform settlement.raise_error('ST033', format(
      'accrue: %s KRW on loan account ****%s would take %s %s to %s payout chunks (at %s KRW per call), over settlement.limits.max_chunks_per_day %s: refused, nothing recorded (every other accrual of the day is paid)',
      p_amount, right(p_account, 4), p_settle, p_kind, v_chunks, v_per_call, v_max));
  end if;
end $$;
comment on function settlement.count_accrual_chunks is 'accrue: keeps settlement.day_chunk_counts; ST033 when an accrual would take its (day, kind) over limits.max_chunks_per_day.';

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
  perform settlement.bound_ingest_transaction();
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
    perform settlement.raise_error('ST002', format('accrue: %s is not a known loan account', settlement.mask_account(accrue.account_no)));
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
  perform settlement.count_accrual_chunks(v_id, v_settle, accrue.kind, accrue.account_no, accrue.amount);
  return v_id;
end $$;
comment on function settlement.accrue is
  'Ingests one accrual. Idempotent on source_ref. Bounds its transaction (limits.ingest_idle_timeout, ingest_lock_timeout). Errors: ST001 missing field, ST002 unknown loan account, ST003 amount <= 0, ST004 source_ref reused with other values, '
  'ST030 amount over settlement.limits.max_accrual_amount, ST031 date outside the accepted window, ST032 unreadable source_ref, ST033 the (day, kind) would need more than limits.max_chunks_per_day payout chunks.';

------------------------------------------------------------------------------
-- History that cannot be rewritten: accruals, entries and attempts refuse
-- UPDATE, DELETE and TRUNCATE; a transfer changes only along its state machine.
create or replace trigger accruals_append_only before update or delete on settlement.accruals
  for each row execute function settlement.journal_append_only();

create or replace trigger accruals_no_truncate before truncate on settlement.accruals
  for each statement execute function settlement.journal_append_only();

create or replace trigger entries_append_only before update or delete on settlement.entries
  for each row execute function settlement.journal_append_only();

create or replace trigger entries_no_truncate before truncate on settlement.entries
  for each statement execute function settlement.journal_append_only();
