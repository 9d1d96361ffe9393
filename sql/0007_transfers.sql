-- NH's money model and one transfer model.
--
-- * A kind's settlement account is the contracted account of one NH app
--   (FintechApsno): settlement.contracts. A payout is a DrawingTransfer from the
--   loan account's fin-account under that app (no destination field); the
--   withdrawal is a ReceivedTransfer from the app's contracted account to the
--   corporate account (Bncd + Acno).
-- * Loan accounts get their fin-account (FinAcno) by registration (the
--   `register` task); pay waits for them.
-- * Payouts and withdrawals are one thing: settlement.transfers, with a
--   purpose, one claim and one finish function and one task.
-- * settlement.bank_codes is the only place a non-00000 code means more than
--   "ask the bank"; it ships empty.

-- 0.1's payout and withdrawal tables were written against a bank dialect NH
-- does not speak (invented fields, letter IsTunos): no real bank ever booked
-- them, so they cannot be carried into a real ledger. Refuse to convert a
-- database that holds any; settle such a database's days with 0.1 or start a
-- new one.
do $$
begin
  if exists (select 1 from settlement.chunks) or exists (select 1 from settlement.withdrawals) then
    raise exception 'this database holds payouts made by 0.1 against a simulated bank dialect; they cannot be converted to NH transfers (use a new database)'
      using errcode = 'ST011';
  end if;
end $$;

drop view settlement.payout_failures;
drop view settlement.daily_status;
drop function settlement.claim_chunk(bigint, text, integer, text, integer);
drop function settlement.finish_chunk(bigint, text, text, text, text, text, integer, text);
drop function settlement.claim_withdrawal(date, settlement.kind, text, integer);
drop function settlement.finish_withdrawal(date, settlement.kind, text, text, text, text, text);
drop function settlement.payout_job_specs(date, settlement.kind, settlement.transfer_state[]);
drop function settlement.add_withdraw_job(date, settlement.kind);
drop function settlement.next_istuno();
drop type settlement.transfer_claim;
drop table settlement.transfer_attempts;
drop table settlement.chunks;
drop table settlement.withdrawals;
drop sequence settlement.istuno_seq;

------------------------------------------------------------------------------
-- Accounts at NH

-- A loan account's fin-account, issued by registration (OpenFinAccountDirect ->
-- Rgno -> CheckOpenFinAccountDirect -> FinAcno). Only loan accounts are paid
-- from by fin-account.
alter table settlement.accounts
  add column fin_rgno text check (fin_rgno ~ '^[0-9]{1,20}$'),
  add column fin_acno text unique check (fin_acno ~ '^[0-9]{1,30}$'),
  add column fin_registered_on text check (fin_registered_on ~ '^[0-9]{8}$'),
  add constraint accounts_fin_acno_loan check (fin_acno is null or role = 'loan');
comment on column settlement.accounts.bank_code is 'NH Bncd of the account (011 NH Bank, 012 NH cooperatives, other codes: other banks).';
comment on column settlement.accounts.fin_acno is 'FinAcno issued by NH for this loan account (null until registered).';

-- One contracted account per NH app (Iscd + FintechApsno). Several kinds may
-- share one app and so one settlement account; the ledger still keeps kinds apart.
create table settlement.contracts (
  fintech_apsno text primary key check (fintech_apsno ~ '^[0-9]{3}$'),
  settlement_account text not null,
  settlement_role settlement.account_role not null default 'settlement' check (settlement_role = 'settlement'),
  foreign key (settlement_account, settlement_role) references settlement.accounts (account_no, role),
  unique (fintech_apsno, settlement_account)
);
comment on table settlement.contracts is 'NH apps (FintechApsno) and the contracted account each one fixes: the destination of its DrawingTransfers and the source of its ReceivedTransfers.';

alter table settlement.kind_accounts add column fintech_apsno text;
update settlement.kind_accounts k set fintech_apsno = '001';
insert into settlement.contracts (fintech_apsno, settlement_account)
select distinct on (k.fintech_apsno) k.fintech_apsno, k.settlement_account from settlement.kind_accounts k order by k.fintech_apsno, k.kind;
alter table settlement.kind_accounts
  alter column fintech_apsno set not null,
  add constraint kind_accounts_contract_fk foreign key (fintech_apsno, settlement_account)
    references settlement.contracts (fintech_apsno, settlement_account);
comment on column settlement.kind_accounts.fintech_apsno is 'The NH app (FintechApsno) whose contracted account is this kind''s settlement account.';

------------------------------------------------------------------------------
-- Operator knowledge of NH response codes

create table settlement.bank_codes (
  rpcd text not null check (rpcd ~ '^[0-9A-Za-z]{1,5}$'),
  -- an ApiNm, or '*' for every API
  api text not null default '*' check (api ~ '^(\*|[A-Za-z]{1,100})$'),
  class text not null check (class in ('retry', 'final', 'not_found')),
  note text not null default '',
  updated_at timestamptz not null default now(),
  primary key (rpcd, api)
);
comment on table settlement.bank_codes is
  'What a non-00000 Rpcd means, from the institution''s NH contract documents (NH publishes only 00000). Empty = every other answer is resolved by result check. '
  'retry: not processed, send again under the same IsTuno; final: refused, nothing booked, the transfer fails for good; not_found: (result checks) the bank has no such transaction.';

------------------------------------------------------------------------------
-- Transfers

create type settlement.transfer_purpose as enum ('payout', 'withdrawal');

-- IsTuno: 18 digits starting with 1 (calls that move no money use 20 digits
-- starting with 9, so the two never meet). Unique for all time; NH needs
-- unique per day.
create sequence settlement.is_tuno_seq;
create function settlement.next_is_tuno() returns text
language sql volatile as $$ select '1' || lpad(nextval('settlement.is_tuno_seq')::text, 17, '0') $$;

create table settlement.transfers (
  id bigint generated always as identity primary key,
  purpose settlement.transfer_purpose not null,
  business_date date not null,
  kind settlement.kind not null,
  -- payout: the entry and the chunk's place in it
  entry_id bigint references settlement.entries (id),
  seq integer check (seq > 0),
  -- payout: loan account -> settlement account; withdrawal: settlement -> corporate
  from_account text not null references settlement.accounts (account_no),
  to_account text not null references settlement.accounts (account_no),
  -- the NH app (contract) the transfer goes through
  fintech_apsno text not null references settlement.contracts (fintech_apsno),
  -- payout: the paying fin-account; withdrawal: the receiving Bncd
  fin_acno text check (fin_acno ~ '^[0-9]{1,30}$'),
  to_bncd text check (to_bncd ~ '^[0-9]{3}$'),
  amount bigint not null check (amount > 0),
  state settlement.transfer_state not null default 'pending',
  attempt integer not null default 1 check (attempt > 0),
  is_tuno text not null unique check (is_tuno ~ '^[0-9]{1,20}$'),
  -- printed on the passbooks (DractOtlt/MractOtlt; fits BnprCntn's 20): ties a statement line to this IsTuno
  memo text generated always as ('DS' || is_tuno) stored,
  -- Korean date of the first call under is_tuno (result checks name it as OrtrYmd)
  tsymd text check (tsymd ~ '^[0-9]{8}$'),
  claimed_by text,
  claimed_until timestamptz,
  -- the bank's processing time, YYYYMMDDHHMMSS KST
  processed_at text check (processed_at ~ '^[0-9]{14}$'),
  fail_code text,
  fail_message text,
  -- set while the bank has not told the outcome (a result check that failed)
  unresolved_since timestamptz,
  unresolved_reason text,
  settled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (entry_id, seq),
  foreign key (business_date, kind) references settlement.days,
  constraint transfers_purpose_facts check (
    case purpose
      when 'payout' then entry_id is not null and seq is not null and fin_acno is not null and to_bncd is null
      when 'withdrawal' then entry_id is null and seq is null and fin_acno is null and to_bncd is not null
    end),
  constraint transfers_settled_facts check ((state in ('succeeded', 'failed')) = (settled_at is not null)),
  constraint transfers_succeeded_facts check (state <> 'succeeded' or processed_at is not null),
  constraint transfers_failed_facts check (state <> 'failed' or fail_code is not null),
  constraint transfers_sending_facts check (state not in ('sending', 'succeeded', 'failed') or tsymd is not null),
  constraint transfers_claim_facts check (state = 'sending' or (claimed_by is null and claimed_until is null)),
  constraint transfers_unresolved_facts check (unresolved_since is null or state = 'sending')
);
-- No index names a column that a claim or an outcome changes (state, claims,
-- dates, results), and pages keep room (fillfactor): those updates stay HOT —
-- no index is touched on the payout path.
alter table settlement.transfers set (fillfactor = 70);
create index transfers_day_idx on settlement.transfers (business_date, kind, purpose);
create unique index transfers_one_withdrawal on settlement.transfers (business_date, kind) where purpose = 'withdrawal';
comment on table settlement.transfers is 'Every money movement at the bank: payout chunks (DrawingTransfer) and withdrawals (ReceivedTransfer), each under its own IsTuno.';

-- Every settled attempt (a transfer retried under a new IsTuno keeps its old ones here).
create table settlement.transfer_attempts (
  id bigint generated always as identity primary key,
  transfer_id bigint not null references settlement.transfers (id),
  is_tuno text not null,
  tsymd text,
  amount bigint not null check (amount > 0),
  outcome settlement.transfer_state not null check (outcome in ('succeeded', 'failed')),
  code text,
  message text,
  processed_at text,
  at timestamptz not null default now(),
  unique (is_tuno)
);
create index transfer_attempts_transfer_idx on settlement.transfer_attempts (transfer_id);

------------------------------------------------------------------------------
-- Jobs

create function settlement.transfer_job_specs(p_ids bigint[]) returns graphile_worker.job_spec[]
language sql stable as $$
  select coalesce(array_agg(row(
      'transfer', json_build_object('transfer_id', t.id), null, null, 25, 'transfer:' || t.id, null, null
    )::graphile_worker.job_spec order by t.id), '{}')
  from settlement.transfers t where t.id = any (p_ids)
$$;

create function settlement.add_transfer_jobs(p_ids bigint[]) returns void
language sql as $$
  select null from graphile_worker.add_jobs(settlement.transfer_job_specs(p_ids)) limit 1
$$;

create function settlement.add_register_jobs(p_accounts text[]) returns void
language sql as $$
  select null from graphile_worker.add_jobs(coalesce((
    select array_agg(row('register', json_build_object('account_no', a.account_no), null, null, 25, 'register:' || a.account_no, null, null)::graphile_worker.job_spec)
    from settlement.accounts a where a.account_no = any (p_accounts) and a.role = 'loan' and a.fin_acno is null), '{}')) limit 1
$$;

-- A loan account that appears without a fin-account gets its registration job
-- in the same transaction.
create function settlement.accounts_enqueue_registration() returns trigger
language plpgsql as $$
begin
  perform settlement.add_register_jobs(array(select n.account_no from new_accounts n where n.role = 'loan' and n.fin_acno is null));
  return null;
end $$;
create trigger accounts_registration after insert on settlement.accounts
  referencing new table as new_accounts
  for each statement execute function settlement.accounts_enqueue_registration();

------------------------------------------------------------------------------
-- Fin-account registration (the register task)

-- Step 1 done: the bank gave a registration number.
create function settlement.record_fin_rgno(p_account_no text, p_rgno text) returns void
language plpgsql as $$
begin
  update settlement.accounts set fin_rgno = p_rgno where account_no = p_account_no and role = 'loan' and fin_acno is null;
end $$;

-- Step 2 done: the fin-account. Days waiting for it get their pay job again.
create function settlement.record_fin_account(p_account_no text, p_fin_acno text, p_registered_on text) returns text
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

-- What the register task needs to know about an account.
create function settlement.fin_registration(p_account_no text)
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
-- Claim and finish: one round trip each

-- What a transfer task should do, decided in one statement under the row lock:
--   settled : it already has its result;  busy : another live attempt holds it;
--   send    : call the bank under is_tuno. resume = an earlier attempt may have
--             reached the bank (ask first); sendable = the database's KST date is
--             still the transfer's Tsymd (otherwise only ask, never send).
create type settlement.transfer_claim as (
  action text, resume boolean, sendable boolean, transfer_id bigint, purpose settlement.transfer_purpose,
  is_tuno text, tsymd text, memo text, fintech_apsno text, fin_acno text, to_bncd text, to_account text,
  amount bigint, business_date date, kind settlement.kind, attempt integer, slot integer
);

create function settlement.claim_transfer(p_id bigint, p_holder text, p_lease_ms integer,
  p_slot_holder text default null, p_slot_lease_ms integer default null)
returns settlement.transfer_claim
language plpgsql as $$
declare
  c settlement.transfer_claim;
  t settlement.transfers;
begin
  update settlement.transfers x
  set state = 'sending', tsymd = coalesce(x.tsymd, settlement.bank_ymd()), claimed_by = p_holder,
      claimed_until = now() + make_interval(secs => p_lease_ms / 1000.0), updated_at = now()
  from (select id, tsymd is not null as was_sent from settlement.transfers where id = p_id for update) o
  where x.id = o.id and x.state in ('pending', 'sending')
    and (x.claimed_until is null or x.claimed_until < now() or x.claimed_by = p_holder)
  returning 'send', o.was_sent, x.tsymd = settlement.bank_ymd(), x.id, x.purpose, x.is_tuno, x.tsymd, x.memo, x.fintech_apsno,
            x.fin_acno, x.to_bncd, x.to_account, x.amount, x.business_date, x.kind, x.attempt, null::integer
  into c;
  if c.action is not null then
    if p_slot_holder is not null then
      c.slot := settlement.acquire_bank_slot(p_slot_holder, p_slot_lease_ms);
    end if;
    return c;
  end if;
  select * into t from settlement.transfers where id = p_id;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  return row(case when t.state in ('succeeded', 'failed') then 'settled' else 'busy' end, false, false, t.id, t.purpose, t.is_tuno, t.tsymd,
             t.memo, t.fintech_apsno, t.fin_acno, t.to_bncd, t.to_account, t.amount, t.business_date, t.kind, t.attempt, null)::settlement.transfer_claim;
end $$;
comment on function settlement.claim_transfer is 'Transfer task: claims a transfer for one bank attempt (a lease), fixing its Tsymd by the database''s clock on the first call.';

-- Records what the bank said, once. Returns the outcome recorded, or
-- 'already_settled' / 'stale' (the transfer has moved on to another IsTuno).
create function settlement.finish_transfer(p_id bigint, p_is_tuno text, p_outcome text, p_processed_at text,
  p_code text, p_message text, p_slot integer default null, p_slot_holder text default null)
returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  if p_outcome is null or p_outcome not in ('succeeded', 'failed', 'unresolved') then
    perform settlement.raise_error('ST009', format('finish_transfer: outcome must be succeeded, failed or unresolved, got %s', p_outcome));
  end if;
  if p_slot is not null then
    perform settlement.release_bank_slot(p_slot, p_slot_holder);
  end if;
  if p_outcome = 'unresolved' then
    update settlement.transfers
    set claimed_by = null, claimed_until = null, unresolved_since = coalesce(unresolved_since, now()),
        unresolved_reason = left(p_message, 500), updated_at = now()
    where id = p_id and is_tuno = p_is_tuno and state = 'sending';
    return case when found then 'unresolved' else settlement.finish_miss(p_id, p_is_tuno) end;
  end if;

  update settlement.transfers
  set state = p_outcome::settlement.transfer_state, processed_at = p_processed_at, fail_code = p_code,
      fail_message = left(p_message, 500), settled_at = now(), claimed_by = null, claimed_until = null,
      unresolved_since = null, unresolved_reason = null, updated_at = now()
  where id = p_id and is_tuno = p_is_tuno and state in ('pending', 'sending')
  returning * into t;
  if not found then
    return settlement.finish_miss(p_id, p_is_tuno);
  end if;
  insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message, processed_at)
  values (t.id, t.is_tuno, t.tsymd, t.amount, t.state, t.fail_code, t.fail_message, t.processed_at);
  if t.purpose = 'payout' then
    perform settlement.after_payout(t);
  else
    perform settlement.after_withdrawal(t);
  end if;
  return p_outcome;
end $$;
comment on function settlement.finish_transfer is 'Transfer task: records the bank''s answer for a transfer (+ journal, + what follows) once.';

create function settlement.finish_miss(p_id bigint, p_is_tuno text) returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  select * into t from settlement.transfers where id = p_id;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  return case when t.is_tuno <> p_is_tuno then 'stale' else 'already_settled' end;
end $$;

-- The journal entry of a succeeded transfer: the bank movement (bank:<to> is
-- debited, bank:<from> credited, mirroring the bank) and, for a payout, the
-- loan account's recorded debt to the kind paid down by the same amount.
create function settlement.journal_transfer(t settlement.transfers) returns void
language sql as $$
  with j as (
    insert into settlement.journal_entries (business_date, kind, event, ref, memo)
    values (t.business_date, t.kind, t.purpose::text, t.is_tuno,
            case t.purpose when 'payout' then format('transfer %s (entry %s #%s)', t.id, t.entry_id, t.seq)
                           else format('withdrawal %s %s', t.business_date, t.kind) end)
    returning id)
  insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
  select j.id, l.n, l.account, l.amount from j, (values
      (1, 'bank:' || t.to_account, t.amount, true),
      (2, 'bank:' || t.from_account, -t.amount, true),
      (3, 'due_to:' || t.kind, t.amount, t.purpose = 'payout'),
      (4, 'due_from:' || t.from_account, -t.amount, t.purpose = 'payout')) l(n, account, amount, wanted)
  where l.wanted
$$;

-- A payout chunk settled: its journal entry, and confirm once nothing of the day is open.
create function settlement.after_payout(t settlement.transfers) returns void
language plpgsql as $$
begin
  if t.state = 'succeeded' then
    perform settlement.journal_transfer(t);
  end if;
  -- While chunks wait to be claimed, a later finisher will look again: no
  -- lock. Near the end the lock serialises the day's finishers, each counting
  -- with a fresh snapshot after taking it, so the last of two racing
  -- finishers sees the other's result (the job key collapses doubles). The
  -- crontab's confirm tick catches anything missed.
  if exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
             and x.purpose = 'payout' and x.state = 'pending') then
    return;
  end if;
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', t.business_date, t.kind) # 1);
  if not exists (select 1 from settlement.transfers x where x.business_date = t.business_date and x.kind = t.kind
                 and x.purpose = 'payout' and x.state in ('pending', 'sending')) then
    perform settlement.add_stage_job('confirm', t.business_date, t.kind);
  end if;
end $$;

-- The withdrawal settled: its journal entry and the withdraw stage's end.
create function settlement.after_withdrawal(t settlement.transfers) returns void
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', t.business_date, t.kind));
  if t.state = 'succeeded' then
    perform settlement.journal_transfer(t);
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'done', format('%s KRW withdrawn (%s)', t.amount, t.is_tuno));
    perform settlement.after_stage('withdraw', t.business_date, t.kind);
  else
    perform settlement.set_stage(t.business_date, t.kind, 'withdraw', 'blocked',
      format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', t.fail_code, t.fail_message, t.business_date, t.kind));
  end if;
end $$;

-- What follows a stage that finished (the reconcile migration extends it).
create function settlement.after_stage(p_stage settlement.stage, p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
begin
  null;
end $$;

------------------------------------------------------------------------------
-- Limits (one row; operators change it with SQL, it is read at every call)
create table settlement.limits (
  id boolean primary key default true check (id),
  -- one accrual may not exceed this (10 billion KRW by default)
  max_accrual_amount bigint not null default 10000000000 check (max_accrual_amount > 0),
  -- an accrual's business date must lie within [today - days_back, today + days_ahead] (the database's today)
  accrual_days_back integer not null default 31 check (accrual_days_back between 0 and 3660),
  accrual_days_ahead integer not null default 1 check (accrual_days_ahead between 0 and 366),
  -- pay refuses to create more payout chunks than this for one (day, kind)
  max_chunks_per_day integer not null default 200000 check (max_chunks_per_day > 0),
  updated_at timestamptz not null default now()
);
insert into settlement.limits default values;
comment on table settlement.limits is
  'Operator limits: the largest accrual, how far back/ahead an accrual''s date may be from the database''s today, and the most payout chunks one (day, kind) may have.';

------------------------------------------------------------------------------
-- pay refuses a day that would need more chunks than the limit.
create function settlement.pay_chunk_count(p_date date, p_kind settlement.kind) returns bigint
language sql stable as $$
  select coalesce(sum((e.amount + c.per_call_limit - 1) / c.per_call_limit), 0)::bigint
  from settlement.entries e cross join settlement.config c
  where c.id and e.business_date = p_date and e.kind = p_kind
$$;

create function settlement.pay_within_limits(p_date date, p_kind settlement.kind) returns text
language plpgsql stable as $$
declare
  v_need bigint := settlement.pay_chunk_count(p_date, p_kind);
  v_max integer;
begin
  select max_chunks_per_day into v_max from settlement.limits where id;
  if v_need > v_max then
    return format('too many chunks: %s KRW at %s per call needs %s chunks, over settlement.limits.max_chunks_per_day %s',
                  (select sum(amount) from settlement.entries where business_date = p_date and kind = p_kind),
                  (select per_call_limit from settlement.config where id), v_need, v_max);
  end if;
  return null;
end $$;

------------------------------------------------------------------------------
-- Stages over transfers

create or replace function settlement.stage_pay(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_limit bigint;
  v_contract settlement.kind_accounts;
  v_missing text[];
  v_missing_n bigint;
  v_chunks bigint;
  v_total bigint;
  v_ids bigint[];
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'record') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'record is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'pay') = 'done' then
    return settlement.outcome('already_done'::text, 'paid out earlier');
  end if;
  select * into v_contract from settlement.kind_accounts where kind = p_kind;
  if not found then
    v_detail := format('no settlement account is configured for %s (settlement.kind_accounts)', p_kind);
    perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  -- A chunk is sent from the loan account's fin-account: wait for registration.
  select count(*), (array_agg(e.account_no order by e.account_no))[1:5] into v_missing_n, v_missing
  from settlement.entries e join settlement.accounts a on a.account_no = e.account_no
  where e.business_date = p_date and e.kind = p_kind and a.fin_acno is null;
  if v_missing_n > 0 then
    perform settlement.add_register_jobs(array(select e.account_no from settlement.entries e join settlement.accounts a using (account_no)
                                                where e.business_date = p_date and e.kind = p_kind and a.fin_acno is null));
    v_detail := format('waiting for the fin-accounts of %s loan account(s) (%s%s): registration is enqueued',
                       v_missing_n, array_to_string(v_missing, ', '), case when v_missing_n > 5 then ', …' else '' end);
    update settlement.stage_runs set detail = v_detail, updated_at = now()
    where business_date = p_date and kind = p_kind and stage = 'pay';
    return settlement.outcome('not_ready'::text, v_detail);
  end if;
  v_detail := settlement.pay_within_limits(p_date, p_kind);
  if v_detail is not null then
    perform settlement.set_stage(p_date, p_kind, 'pay', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  select per_call_limit into v_limit from settlement.config where id;

  -- 250,000 with a 100,000 limit -> 100,000 + 100,000 + 50,000.
  with planned as (
    insert into settlement.transfers (purpose, business_date, kind, entry_id, seq, from_account, to_account, fintech_apsno, fin_acno, amount, is_tuno)
    select 'payout', p_date, p_kind, e.id, s.seq, e.account_no, v_contract.settlement_account, v_contract.fintech_apsno, a.fin_acno,
           least(v_limit, e.amount - (s.seq - 1) * v_limit), settlement.next_is_tuno()
    from settlement.entries e
    join settlement.accounts a on a.account_no = e.account_no
    cross join lateral generate_series(1, ((e.amount + v_limit - 1) / v_limit)::int) as s(seq)
    where e.business_date = p_date and e.kind = p_kind
    order by e.id, s.seq
    returning id, amount)
  select count(*), coalesce(sum(amount), 0), array_agg(id) into v_chunks, v_total, v_ids from planned;
  perform settlement.add_transfer_jobs(v_ids);

  v_detail := format('%s chunks, %s KRW enqueued (limit %s per call)', v_chunks, v_total, v_limit);
  perform settlement.set_stage(p_date, p_kind, 'pay', 'done', v_detail);
  if v_chunks = 0 then
    perform settlement.add_stage_job('confirm', p_date, p_kind);
  end if;
  return settlement.outcome('done'::text, v_detail);
end $$;

create or replace function settlement.stage_confirm(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_total bigint; v_ok bigint; v_failed bigint; v_open bigint; v_unresolved bigint; v_amount bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'pay') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'pay is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'confirm') = 'done' then
    return settlement.outcome('already_done'::text, 'confirmed earlier');
  end if;
  select count(*), count(*) filter (where state = 'succeeded'), count(*) filter (where state = 'failed'),
         count(*) filter (where state in ('pending', 'sending')), count(*) filter (where unresolved_since is not null),
         coalesce(sum(amount) filter (where state = 'succeeded'), 0)
  into v_total, v_ok, v_failed, v_open, v_unresolved, v_amount
  from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'payout';

  if v_failed > 0 then
    v_detail := format('%s of %s chunks failed for good (see settlement.payout_failures; fix, then settlement.retry_failed(%L, %L)); %s in flight',
                       v_failed, v_total, p_date, p_kind, v_open);
    perform settlement.set_stage(p_date, p_kind, 'confirm', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  if v_open > 0 then
    return settlement.outcome('not_ready'::text, format('%s of %s chunks still in flight (%s unresolved)', v_open, v_total, v_unresolved));
  end if;
  v_detail := format('%s chunks succeeded, %s KRW', v_ok, v_amount);
  perform settlement.set_stage(p_date, p_kind, 'confirm', 'done', v_detail);
  perform settlement.add_stage_job('withdraw', p_date, p_kind);
  return settlement.outcome('done'::text, v_detail);
end $$;

create or replace function settlement.stage_withdraw(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  w settlement.transfers;
  v_total bigint;
  v_ka settlement.kind_accounts;
  v_bncd text;
  v_id bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'confirm') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'confirm is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'withdraw') = 'done' then
    return settlement.outcome('already_done'::text, 'withdrawn earlier');
  end if;
  select * into w from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'withdrawal';
  if found then
    if w.state = 'failed' then
      return settlement.outcome('blocked'::text, format('withdrawal failed: %s %s (fix, then settlement.retry_failed(%L, %L))', w.fail_code, w.fail_message, p_date, p_kind));
    end if;
    -- Already started: make sure its job exists (collapses with a waiting one).
    perform settlement.add_transfer_jobs(array[w.id]);
    return settlement.outcome('in_progress'::text, format('withdrawal %s of %s KRW is %s', w.is_tuno, w.amount, w.state));
  end if;

  select coalesce(sum(amount), 0) into v_total
  from settlement.transfers where business_date = p_date and kind = p_kind and purpose = 'payout' and state = 'succeeded';
  if v_total = 0 then
    v_detail := 'nothing to withdraw (0 KRW confirmed)';
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'done', v_detail);
    perform settlement.after_stage('withdraw', p_date, p_kind);
    return settlement.outcome('done'::text, v_detail);
  end if;
  select * into v_ka from settlement.kind_accounts where kind = p_kind;
  select bank_code into v_bncd from settlement.accounts where account_no = v_ka.corporate_account;
  insert into settlement.transfers (purpose, business_date, kind, from_account, to_account, fintech_apsno, to_bncd, amount, is_tuno)
  values ('withdrawal', p_date, p_kind, v_ka.settlement_account, v_ka.corporate_account, v_ka.fintech_apsno, v_bncd, v_total, settlement.next_is_tuno())
  returning id into v_id;
  perform settlement.add_transfer_jobs(array[v_id]);
  v_detail := format('withdrawal of %s KRW enqueued', v_total);
  perform settlement.set_stage(p_date, p_kind, 'withdraw', 'running', v_detail);
  return settlement.outcome('started'::text, v_detail);
end $$;

------------------------------------------------------------------------------
-- Operator: retry what failed for good

create or replace function settlement.retry_failed(business_date date, kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_d date := retry_failed.business_date;
  v_k settlement.kind := retry_failed.kind;
  v_ids bigint[];
  v_payouts integer;
  v_withdrawals integer;
begin
  if v_d is null or v_k is null then
    perform settlement.raise_error('ST001', 'retry_failed: business_date and kind are required');
  end if;
  if not exists (select 1 from settlement.days d where d.business_date = v_d and d.kind = v_k) then
    perform settlement.raise_error('ST010', format('retry_failed: no settlement day %s %s', v_d, v_k));
  end if;
  -- Serialise with the confirm and withdraw stages of the day.
  perform pg_advisory_xact_lock(settlement.stage_lock_key('confirm', v_d, v_k));
  perform pg_advisory_xact_lock(settlement.stage_lock_key('withdraw', v_d, v_k));
  if settlement.stage_state_of(v_d, v_k, 'withdraw') = 'done' then
    perform settlement.raise_error('ST012', format('retry_failed: %s %s is already withdrawn; nothing of it can be paid again', v_d, v_k));
  end if;
  if exists (select 1 from settlement.transfers t join settlement.transfer_attempts a on a.transfer_id = t.id and a.outcome = 'succeeded'
             where t.business_date = v_d and t.kind = v_k and t.state = 'failed') then
    perform settlement.raise_error('ST013', format('retry_failed: a failed transfer of %s %s has a succeeded attempt; it must not be sent again (investigate)', v_d, v_k));
  end if;

  -- A failed transfer gets a new IsTuno: the bank said the old one was not booked.
  with retried as (
    update settlement.transfers t
    set state = 'pending', attempt = t.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null, processed_at = null,
        fail_code = null, fail_message = null, settled_at = null, updated_at = now()
    where t.business_date = v_d and t.kind = v_k and t.state = 'failed'
    returning t.id, t.purpose)
  select array_agg(id), count(*) filter (where purpose = 'payout'), count(*) filter (where purpose = 'withdrawal')
  into v_ids, v_payouts, v_withdrawals from retried;
  if v_payouts > 0 then
    update settlement.stage_runs r set state = 'pending', detail = format('%s chunks retried by operator', v_payouts), updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'confirm' and r.state = 'blocked';
  end if;
  if v_withdrawals > 0 then
    update settlement.stage_runs r set state = 'running', detail = 'withdrawal retried by operator', updated_at = now()
    where r.business_date = v_d and r.kind = v_k and r.stage = 'withdraw';
  end if;
  if v_ids is not null then
    perform settlement.add_transfer_jobs(v_ids);
  end if;
  return coalesce(v_payouts + v_withdrawals, 0);
end $$;
comment on function settlement.retry_failed is 'Operator: re-enqueues the transfers of a day that failed for good, under new IsTunos. Refuses a day already withdrawn (ST012) and a transfer with a succeeded attempt (ST013). Returns how many.';

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
  where t.state in ('pending', 'sending') and (t.claimed_until is null or t.claimed_until < now())
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

-- Frees everything a worker pool held: its graphile-worker jobs, bank slots
-- and transfer claims, and its heartbeat row. For a pool that died, or a pool
-- a live process replaced after losing the database.
create function settlement.release_pool(p_pool_id text) returns void
language plpgsql as $$
begin
  perform graphile_worker.force_unlock_workers(array[p_pool_id]);
  update settlement.bank_slots set holder = null, lease_until = null where split_part(holder, '/', 1) = p_pool_id;
  update settlement.transfers set claimed_until = null where claimed_by = p_pool_id and state = 'sending';
  delete from settlement.workers where pool_id = p_pool_id;
end $$;
comment on function settlement.release_pool is 'Worker: frees the jobs, bank slots and transfer claims of one worker pool.';

create or replace function settlement.recover_dead_workers(p_dead_after_ms integer) returns text[]
language plpgsql as $$
declare
  v_dead text[];
begin
  select coalesce(array_agg(pool_id), '{}') into v_dead
  from settlement.workers where last_beat < now() - make_interval(secs => p_dead_after_ms / 1000.0);
  -- Also pools that hold jobs but never registered or were already removed.
  select coalesce(array_agg(distinct x), '{}') into v_dead from (
    select unnest(v_dead) as x
    union
    select j.locked_by from graphile_worker.jobs j
    where j.locked_by is not null and j.locked_at < now() - make_interval(secs => p_dead_after_ms / 1000.0)
      and not exists (select 1 from settlement.workers w where w.pool_id = j.locked_by)
  ) t;
  perform settlement.release_pool(d) from unnest(v_dead) d;
  return v_dead;
end $$;

------------------------------------------------------------------------------
-- Views

create view settlement.daily_status as
select
  d.business_date,
  d.kind,
  max(r.state::text) filter (where r.stage = 'record') as record,
  max(r.state::text) filter (where r.stage = 'pay') as pay,
  max(r.state::text) filter (where r.stage = 'confirm') as confirm,
  max(r.state::text) filter (where r.stage = 'withdraw') as withdraw,
  coalesce(e.entries, 0) as entries,
  coalesce(e.amount, 0)::bigint as amount_recorded,
  coalesce(c.total, 0) as chunks_total,
  coalesce(c.succeeded, 0) as chunks_succeeded,
  coalesce(c.failed, 0) as chunks_failed,
  coalesce(c.in_flight, 0) as chunks_in_flight,
  coalesce(c.unresolved, 0) as chunks_unresolved,
  coalesce(c.paid, 0)::bigint as amount_paid,
  coalesce(c.withdrawn, 0)::bigint as amount_withdrawn,
  coalesce(a.pending_accruals, 0) as accruals_unrecorded,
  string_agg(r.stage || ': ' || r.detail, '; ' order by r.stage) filter (where r.state <> 'done' and r.detail <> '') as attention
from settlement.days d
join settlement.stage_runs r on r.business_date = d.business_date and r.kind = d.kind
left join lateral (
  select count(*) as entries, sum(amount) as amount from settlement.entries x
  where x.business_date = d.business_date and x.kind = d.kind) e on true
left join lateral (
  select count(*) filter (where purpose = 'payout') as total,
         count(*) filter (where purpose = 'payout' and state = 'succeeded') as succeeded,
         count(*) filter (where purpose = 'payout' and state = 'failed') as failed,
         count(*) filter (where purpose = 'payout' and state in ('pending', 'sending')) as in_flight,
         count(*) filter (where unresolved_since is not null) as unresolved,
         sum(amount) filter (where purpose = 'payout' and state = 'succeeded') as paid,
         sum(amount) filter (where purpose = 'withdrawal' and state = 'succeeded') as withdrawn
  from settlement.transfers x where x.business_date = d.business_date and x.kind = d.kind) c on true
left join lateral (
  select count(*) as pending_accruals from settlement.accruals x
  where x.settle_date = d.business_date and x.kind = d.kind
    and not exists (select 1 from settlement.stage_runs s where s.business_date = d.business_date and s.kind = d.kind and s.stage = 'record' and s.state = 'done')) a on true
group by d.business_date, d.kind, e.entries, e.amount, c.total, c.succeeded, c.failed, c.in_flight, c.unresolved, c.paid, c.withdrawn, a.pending_accruals;
comment on view settlement.daily_status is 'One row per (business_date, kind): each stage''s state and the day''s counts and amounts (KRW); attention says what a person should look at.';

create view settlement.payout_failures as
select case when t.state = 'failed' then 'failed' else 'unresolved' end as problem,
       t.purpose::text as what, t.business_date, t.kind, t.id as transfer_id, t.entry_id, t.seq, t.from_account, t.to_account,
       t.amount, t.is_tuno, t.tsymd, t.attempt,
       t.fail_code as bank_code, coalesce(t.fail_message, t.unresolved_reason) as bank_message,
       t.settled_at as failed_at, t.unresolved_since,
       case when t.unresolved_since is not null then now() - t.unresolved_since end as unresolved_for
from settlement.transfers t
where t.state = 'failed' or t.unresolved_since is not null;
comment on view settlement.payout_failures is
  'Transfers that failed for good (with the bank''s code and message: fix the cause, then settlement.retry_failed(date, kind)) and transfers whose outcome the bank has not told yet (unresolved, with their age).';

------------------------------------------------------------------------------
-- Jobs that can never succeed (a payload that does not parse, a transfer that
-- does not exist) are taken off the queue at once and kept here, visible.
create table settlement.rejected_jobs (
  id bigint generated always as identity primary key,
  job_id bigint,
  task text not null,
  payload jsonb,
  code text not null,
  error text not null,
  at timestamptz not null default now()
);
comment on table settlement.rejected_jobs is 'Jobs that failed for good at once: a payload that does not parse, or naming something that does not exist.';

create function settlement.reject_job(p_job_id bigint, p_task text, p_payload jsonb, p_code text, p_error text) returns void
language sql as $$
  insert into settlement.rejected_jobs (job_id, task, payload, code, error) values (p_job_id, p_task, p_payload, p_code, left(p_error, 1000))
$$;
