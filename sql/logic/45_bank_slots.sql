-- Bank-call slots: the global in-flight limit. Each HTTP call to the bank
-- holds one of max_in_flight slots, a session-level advisory lock
-- (bank_slot_lock_class(), slot) of the bank desk's connection (claimed with
-- claim_transfers, given back with finish_transfers or give_bank_slots): the
-- cap holds across processes and hosts, nothing is written to take or give
-- one, and a process that dies frees its slots with its connection. A desk
-- whose process has calls waiting for a slot holds (bank_slot_lock_class(), 0)
-- shared: a release notifies settlement_bank_slot only then.

-- The advisory-lock class (the first key) of every bank-call slot and of the
-- "waiting" lock; src/db/bank-slots.ts has the same number.
create or replace function settlement.bank_slot_lock_class() returns integer
language sql immutable parallel safe as $$ select 21332 $$;

-- Takes up to p_want free slots as session locks of this connection, never
-- one of p_held (the slots it holds already: a session lock is re-entrant,
-- so taking one again would count one call twice).
create or replace function settlement.take_bank_slots(p_want integer, p_held integer[]) returns integer[]
language plpgsql volatile as $$
declare
  v_class constant integer := settlement.bank_slot_lock_class();
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
    if not (s = any(coalesce(p_held, '{}'))) and pg_try_advisory_lock(v_class, s) then
      v := v || s;
      exit when cardinality(v) >= p_want;
    end if;
  end loop;
  return v;
end $$;

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
    if pg_advisory_unlock(settlement.bank_slot_lock_class(), s) then
      v_any := true;
    end if;
  end loop;
  if v_any and settlement.others_waiting_for_slots() then
    perform pg_notify('settlement_bank_slot', '');
  end if;
end $$;

-- Whether another session holds the "waiting" lock (class, 0): a lock this
-- session holds itself never conflicts with its own request.
create or replace function settlement.others_waiting_for_slots() returns boolean
language plpgsql volatile as $$
begin
  if pg_try_advisory_lock(settlement.bank_slot_lock_class(), 0) then
    perform pg_advisory_unlock(settlement.bank_slot_lock_class(), 0);
    return false;
  end if;
  return true;
end $$;

-- The slots in use right now, database-wide (what the console shows).
create or replace function settlement.bank_slots_in_use() returns bigint
language sql stable as $$
  select count(*) from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
    and l.classid = settlement.bank_slot_lock_class() and l.objsubid = 2 and l.objid > 0 and l.granted
$$;
