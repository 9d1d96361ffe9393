-- Helpers and ingestion (settlement.accrue).

create function settlement.time_zone() returns text
language sql stable as $$ select time_zone from settlement.config where id $$;

-- The business date of an instant, in the settlement time zone.
create function settlement.business_date_of(p_at timestamptz) returns date
language sql stable as $$ select (p_at at time zone settlement.time_zone())::date $$;

-- Today's business date. Day D can be settled once today > D.
create function settlement.today() returns date
language sql stable as $$ select settlement.business_date_of(now()) $$;

-- NH's transaction date (Tsymd): always Korea time, whatever the settlement zone.
create function settlement.bank_ymd() returns text
language sql stable as $$ select to_char(now() at time zone 'Asia/Seoul', 'YYYYMMDD') $$;

-- A fresh bank transaction number (IsTuno): 'DS' + 14 digits, unique for all
-- time (NH needs unique per day; never reusing one is stricter).
create function settlement.next_istuno() returns text
language sql volatile as $$ select 'DS' || lpad(nextval('settlement.istuno_seq')::text, 14, '0') $$;

-- Creates the day and its four stage rows if they do not exist.
create function settlement.ensure_day(p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
begin
  if not exists (select 1 from settlement.days where business_date = p_date and kind = p_kind) then
    insert into settlement.days (business_date, kind) values (p_date, p_kind) on conflict do nothing;
    insert into settlement.stage_runs (business_date, kind, stage)
    select p_date, p_kind, s from unnest(enum_range(null::settlement.stage)) s
    on conflict do nothing;
  end if;
end $$;

-- Raises the project's named errors (SQLSTATE class ST, see README).
create function settlement.raise_error(p_code text, p_message text) returns void
language plpgsql as $$
begin
  raise exception '%', p_message using errcode = p_code;
end $$;

create function settlement.accrue(
  source_ref text, account_no text, kind settlement.kind, amount bigint, occurred_at timestamptz
) returns bigint
language plpgsql as $$
declare
  v_id bigint;
  v_existing settlement.accruals;
  v_origin date;
  v_settle date;
  v_state settlement.stage_state;
begin
  if source_ref is null or account_no is null or kind is null or amount is null or occurred_at is null then
    perform settlement.raise_error('ST001', 'accrue: source_ref, account_no, kind, amount and occurred_at are all required');
  end if;
  if length(source_ref) = 0 or length(source_ref) > 200 then
    perform settlement.raise_error('ST001', 'accrue: source_ref must be 1-200 characters');
  end if;
  if amount <= 0 then
    perform settlement.raise_error('ST003', format('accrue: amount must be > 0 KRW, got %s', amount));
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
  'Ingests one accrual. Idempotent on source_ref; errors ST001 missing field, ST002 unknown loan account, ST003 amount <= 0, ST004 source_ref reused with other values.';
