-- Support: the business date and the bank's date, the project's named errors,
-- formatting helpers, and the day with its stage rows.
-- Errors raised on purpose use SQLSTATE class 'ST' (registry in README.md).

-- The SQL's one clock (sql/schema/0004_clock.sql says why and who may
-- replace it): every time the logic reads is settlement_meta.now().
create or replace function settlement_meta.now() returns timestamptz
language sql stable parallel safe as $$ select pg_catalog.now() $$;
comment on function settlement_meta.now() is
  'The SQL''s one clock: pg_catalog.now() (only the owner can replace it; a test database may, to move business time).';

create or replace function settlement.time_zone() returns text
language sql stable as $$ select time_zone from settlement.config where id $$;

-- The business date of an instant, in the settlement time zone.
create or replace function settlement.business_date_of(p_at timestamptz) returns date
language sql stable as $$ select (p_at at time zone settlement.time_zone())::date $$;

-- Today's business date. Day D can be settled once today > D.
create or replace function settlement.today() returns date
language sql stable as $$ select settlement.business_date_of(settlement_meta.now()) $$;

-- NH's transaction date (Tsymd): always Korea time, whatever the settlement zone.
create or replace function settlement.bank_ymd() returns text
language sql stable as $$ select to_char(settlement_meta.now() at time zone 'Asia/Seoul', 'YYYYMMDD') $$;

create or replace function settlement.ymd_add(p_ymd text, p_days integer) returns text
language sql immutable as $$ select to_char(to_date(p_ymd, 'YYYYMMDD') + p_days, 'YYYYMMDD') $$;

-- Raises the project's named errors (SQLSTATE class ST, see README).
create or replace function settlement.raise_error(p_code text, p_message text) returns void
language plpgsql as $$
begin
  raise exception '%', p_message using errcode = p_code;
end $$;

-- Creates the day and its stage rows (one per stage) if they do not exist.
create or replace function settlement.ensure_day(p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
begin
  if not exists (select 1 from settlement.days where business_date = p_date and kind = p_kind) then
    insert into settlement.days (business_date, kind) values (p_date, p_kind) on conflict do nothing;
    insert into settlement.stage_runs (business_date, kind, stage)
    select p_date, p_kind, s from unnest(enum_range(null::settlement.stage)) s
    on conflict do nothing;
  end if;
end $$;

create or replace function settlement.is_in(p_dsnc text) returns boolean
language sql immutable as $$ select p_dsnc in ('1', '2') $$;

-- 1,234,567
create or replace function settlement.krw(p bigint) returns text
language sql immutable as $$ select to_char(p, 'FM999,999,999,999,999,990') $$;

-- A time for people, in the settlement time zone (KST for Asia/Seoul).
create or replace function settlement.local_time(p timestamptz) returns text
language sql stable as $$
  select to_char(p at time zone c.time_zone, 'YYYY-MM-DD HH24:MI') || ' ' || case c.time_zone when 'Asia/Seoul' then 'KST' else c.time_zone end
  from settlement.config c where c.id
$$;

-- The bank's processing time (YYYYMMDDHHMMSS in KST, as NH prints it) as a timestamptz.
create or replace function settlement.bank_time(p text) returns timestamptz
language sql immutable as $$
  select case when p ~ '^[0-9]{14}$' then to_timestamp(p, 'YYYYMMDDHH24MISS')::timestamp at time zone 'Asia/Seoul' end
$$;
comment on function settlement.bank_time is 'A bank processing time (YYYYMMDDHHMMSS, KST) as timestamptz; null if it is not one.';

-- A time for files (CSV, JSON): ISO 8601 in the settlement time zone with its
-- offset, to the second (2026-11-27T09:30:00+09:00).
create or replace function settlement.iso_time(p timestamptz) returns text
language sql stable as $$
  select to_char(p at time zone c.time_zone, 'YYYY-MM-DD"T"HH24:MI:SS')
         || case when o.s < 0 then '-' else '+' end || lpad((abs(o.s) / 3600)::text, 2, '0') || ':' || lpad((abs(o.s) % 3600 / 60)::text, 2, '0')
  from settlement.config c
  cross join lateral (select extract(epoch from (p at time zone c.time_zone) - (p at time zone 'UTC'))::integer as s) o
  where c.id and p is not null
$$;
comment on function settlement.iso_time is 'A time as ISO 8601 in the settlement time zone with its offset (2026-11-27T09:30:00+09:00); null for null.';

-- What a person reads shows an account number (6-20 digits) or a FinAcno (up
-- to 30 digits) as **** and its last four digits (issue 23): every message,
-- stage detail, break and alert made here calls this where it names one.
-- The tables keep the full numbers (the bank needs them); an operator sees
-- one on purpose with settlement.reveal_account (audited). The TypeScript
-- twin is maskAccount in src/mask.ts.
create or replace function settlement.mask_account(p_account text) returns text
language sql immutable parallel safe as $$
  select case when p_account is null then null
              when length(p_account) <= 4 then '****'
              else '****' || right(p_account, 4) end
$$;
comment on function settlement.mask_account(text) is 'An account number or FinAcno for people: **** and its last four characters (null stays null; four or fewer: ****).';

-- A JSON value for people (a change, its row before and after): every string
-- of digits under a key naming an account (…account, …account_no, …acno,
-- fin_acno, from, to) masked; everything else as it is. Twin of maskJson in src/mask.ts.
create or replace function settlement.mask_json(p jsonb) returns jsonb
language plpgsql immutable parallel safe as $$
begin
  if p is null then
    return null;
  elsif jsonb_typeof(p) = 'object' then
    return (select coalesce(jsonb_object_agg(k, case when jsonb_typeof(x) = 'string' and k ~* '(account|account_no|acno|from|to)$' and (x #>> '{}') ~ '^[0-9-]{5,}$'
                                                     then to_jsonb(settlement.mask_account(replace(x #>> '{}', '-', '')))
                                                     else settlement.mask_json(x) end), '{}'::jsonb)
            from jsonb_each(p) e(k, x));
  elsif jsonb_typeof(p) = 'array' then
    return (select coalesce(jsonb_agg(settlement.mask_json(x) order by i), '[]'::jsonb) from jsonb_array_elements(p) with ordinality a(x, i));
  end if;
  return p;
end $$;
comment on function settlement.mask_json(jsonb) is 'A JSON value for people: strings of digits under keys naming an account (…account, …account_no, …acno, from, to) masked by mask_account.';
