-- Ingestion: settlement.accrue, the one way accruals come in (append-only).

-- Idempotent on source_ref; refuses what it cannot take with a named error
-- and changes nothing: ST001 a missing field, ST032 a source_ref nobody can
-- read back, ST003 amount <= 0, ST030 over settlement.limits' maximum, ST031
-- a date outside the accepted window, ST002 an unknown loan account, ST004 a
-- source_ref used before with other values.
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
comment on function settlement.accrue is 'Ingests one accrual. Idempotent on source_ref. Errors: ST001 missing field, ST002 unknown loan account, ST003 amount <= 0, ST004 source_ref reused with other values, '
  'ST030 amount over settlement.limits.max_accrual_amount, ST031 date outside the accepted window, ST032 unreadable source_ref.';

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
