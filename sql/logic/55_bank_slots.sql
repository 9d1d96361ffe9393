-- Bank-call slots: the global in-flight limit, one session-level advisory
-- lock (class 21332, slot) per call at the bank.

------------------------------------------------------------------------------
-- Slots of a desk connection.

-- Takes up to p_want free slots as session locks of this connection, never
-- one of p_held (the slots it holds already: a session lock is re-entrant,
-- so taking one again would count one call twice).
create or replace function settlement.take_bank_slots(p_want integer, p_held integer[]) returns integer[]
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
comment on function settlement.try_bank_slot is 'Worker: takes a free bank-call slot (1..max_in_flight) as a session advisory lock of the calling connection, or null when all are taken. A connection holds at most one.';

-- Gives back slots of this connection; wakes other processes' waiters when
-- there are any.
create or replace function settlement.give_bank_slots(p_slots integer[]) returns void
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

create or replace function settlement.give_bank_slot(p_slot integer) returns boolean
language plpgsql volatile as $$
declare
  v boolean;
begin
  if p_slot is null then
    -- After an error: whatever this connection may hold.
    perform pg_advisory_unlock_all();
    v := true;
  else
    v := pg_advisory_unlock(21332, p_slot);
  end if;
  -- Waiting processes hold (21332, 0) shared: only then is there anyone to wake.
  if pg_try_advisory_lock(21332, 0) then
    perform pg_advisory_unlock(21332, 0);
  else
    perform pg_notify('settlement_bank_slot', '');
  end if;
  return v;
end $$;
comment on function settlement.give_bank_slot is 'Worker: gives back the bank-call slot this connection holds (null: every advisory lock of the connection) and wakes waiters.';

-- Whether another session holds the "waiting" lock (21332, 0): a lock this
-- session holds itself never conflicts with its own request.
create or replace function settlement.others_waiting_for_slots() returns boolean
language plpgsql volatile as $$
begin
  if pg_try_advisory_lock(21332, 0) then
    perform pg_advisory_unlock(21332, 0);
    return false;
  end if;
  return true;
end $$;

-- The slots in use right now, database-wide (what the console shows).
create or replace function settlement.bank_slots_in_use() returns bigint
language sql stable as $$
  select count(*) from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
    and l.classid = 21332 and l.objsubid = 2 and l.objid > 0 and l.granted
$$;
