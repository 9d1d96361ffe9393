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

-- What the register task needs to know about an account. Asking starts this
-- system's registration of it (fin_rgno_asked_at): only then is an Rgno taken
-- for it, and a FinAcno only as the answer to that Rgno (issue 22).
create or replace function settlement.fin_registration(p_account_no text)
returns table (account_no text, bank_code text, fin_rgno text, fin_acno text)
language plpgsql as $$
begin
  update settlement.accounts a set fin_rgno_asked_at = settlement_meta.now()
  where a.account_no = p_account_no and a.role = 'loan' and a.fin_acno is null and a.fin_rgno is null and a.fin_rgno_asked_at is null;
  return query select a.account_no, a.bank_code, a.fin_rgno, a.fin_acno from settlement.accounts a
  where a.account_no = p_account_no and a.role = 'loan';
  if not found then
    perform settlement.raise_error('ST002', format('%s is not a known loan account', settlement.mask_account(p_account_no)));
  end if;
end $$;

------------------------------------------------------------------------------
-- Fin-account registration (the register task)

-- Step 1 done: the bank gave a registration number. Taken once, and only for
-- a registration this system started; the same number again is a no-op.
create or replace function settlement.record_fin_rgno(p_account_no text, p_rgno text) returns void
language plpgsql as $$
declare
  a settlement.accounts;
begin
  update settlement.accounts set fin_rgno = p_rgno
  where account_no = p_account_no and role = 'loan' and fin_acno is null and fin_rgno is null and fin_rgno_asked_at is not null;
  if found then
    return;
  end if;
  select * into a from settlement.accounts where account_no = p_account_no;
  if a.fin_rgno is not distinct from p_rgno and a.fin_rgno is not null then
    return;
  end if;
  perform settlement.raise_error('ST067', format('record_fin_rgno: loan account %s has no registration of this system waiting for an Rgno (%s): refused',
    settlement.mask_account(p_account_no), case when a.account_no is null then 'unknown account' when a.fin_acno is not null then 'registered already'
                                 when a.fin_rgno is not null then 'it has another Rgno' else 'registration not started' end));
end $$;

-- Step 2 done: the fin-account, accepted only as the answer to the Rgno this
-- system's registration stored, once. Anything else is refused and alerted
-- (answers 'refused': the alert stays; src/db/registration.ts raises ST067).
-- Days waiting for it get their pay job again.
create or replace function settlement.record_fin_account(p_account_no text, p_rgno text, p_fin_acno text, p_registered_on text) returns text
language plpgsql as $$
declare
  r record;
  a settlement.accounts;
  v_id bigint;
begin
  update settlement.accounts set fin_acno = p_fin_acno, fin_registered_on = p_registered_on
  where account_no = p_account_no and role = 'loan' and fin_acno is null
    and fin_rgno_asked_at is not null and fin_rgno is not null and fin_rgno = p_rgno;
  if not found then
    select * into a from settlement.accounts where account_no = p_account_no and role = 'loan';
    if a.fin_acno is not null and a.fin_acno = p_fin_acno and a.fin_rgno is not distinct from p_rgno then
      return 'already_registered';
    end if;
    insert into settlement.alerts (key, problem, message, cleared_at)
    values (format('fin_acno_refused:%s:%s', settlement.mask_account(p_account_no), txid_current()), 'fin_acno_refused',
            format('FinAcno %s (Rgno %s) for loan account %s refused: %s. Someone holding the worker login may be redirecting payouts: check who called (operator_actions, the database log).',
                   coalesce(settlement.mask_account(p_fin_acno), 'null'), left(coalesce(p_rgno, 'null'), 20), coalesce(settlement.mask_account(p_account_no), 'null'),
                   case when a.account_no is null then 'not a known loan account'
                        when a.fin_acno is not null then 'it has its FinAcno already (a FinAcno is taken once)'
                        when a.fin_rgno_asked_at is null or a.fin_rgno is null then 'this system has not registered it (no Rgno of its own)'
                        else 'not the answer to the Rgno this system stored' end),
            settlement_meta.now())
    returning id into v_id;
    perform settlement.add_alert_job(v_id);
    return 'refused';
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
