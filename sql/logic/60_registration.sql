-- Fin-account registration: a loan account inserted without a FinAcno gets
-- a register job in the same transaction.

------------------------------------------------------------------------------
-- Job keys are locks too: two pay stages adding register jobs for the same
-- accounts (job keys 'register:<account>') could each wait for a key the
-- other inserted first (test/sql/order.test.ts: a deadlock), and graphile's
-- add_jobs inserts its specs through a join whose plan need not keep the
-- array's order. So callers take turns (the lock lasts until the stage's
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

-- A loan account that appears without a fin-account gets its registration job
-- in the same transaction.
create or replace function settlement.accounts_enqueue_registration() returns trigger
language plpgsql as $$
begin
  perform settlement.add_register_jobs(array(select n.account_no from new_accounts n where n.role = 'loan' and n.fin_acno is null));
  return null;
end $$;

create or replace trigger accounts_registration after insert on settlement.accounts
  referencing new table as new_accounts
  for each statement execute function settlement.accounts_enqueue_registration();

-- What the register task needs to know about an account.
create or replace function settlement.fin_registration(p_account_no text)
returns table (account_no text, bank_code text, fin_rgno text, fin_acno text)
language plpgsql stable as $$
begin
  return query select a.account_no, a.bank_code, a.fin_rgno, a.fin_acno from settlement.accounts a
  where a.account_no = p_account_no and a.role = 'loan';
  if not found then
    perform settlement.raise_error('ST002', format('%s is not a known loan account', p_account_no));
  end if;
end $$;

------------------------------------------------------------------------------
-- Fin-account registration (the register task)

-- Step 1 done: the bank gave a registration number.
create or replace function settlement.record_fin_rgno(p_account_no text, p_rgno text) returns void
language plpgsql as $$
begin
  update settlement.accounts set fin_rgno = p_rgno where account_no = p_account_no and role = 'loan' and fin_acno is null;
end $$;

-- Step 2 done: the fin-account. Days waiting for it get their pay job again.
create or replace function settlement.record_fin_account(p_account_no text, p_fin_acno text, p_registered_on text) returns text
language plpgsql as $$
declare
  r record;
begin
  update settlement.accounts set fin_acno = p_fin_acno, fin_registered_on = p_registered_on
  where account_no = p_account_no and role = 'loan' and fin_acno is null;
  if not found then
    return 'already_registered';
  end if;
  for r in
    select distinct e.business_date, e.kind from settlement.entries e
    join settlement.stage_runs s on s.business_date = e.business_date and s.kind = e.kind and s.stage = 'pay' and s.state <> 'done'
    where e.account_no = p_account_no
  loop
    perform settlement.add_stage_job('pay', r.business_date, r.kind);
  end loop;
  return 'registered';
end $$;
