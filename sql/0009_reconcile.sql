-- Reconcile: every day is closed against the bank's own statement
-- (InquireTransactionHistory), and only the statement (or a failed Pcrs)
-- proves that a transfer was not booked.
--
-- * statement_lines: every line read, once (unique by Bncd, Acno, Trdd, Tuno).
-- * statement_reads: which (account, date) statements were read in full after
--   that date was final (its end in KST + config.reconcile_after).
-- * line_matches: which transfer (and IsTuno) each line of ours belongs to,
--   decided by the rule below; kept once made.
-- * breaks: what does not reconcile, per (business_date, kind); resolved by an
--   operator with a note (resolve_break), never deleted.
--
-- The matching rule (README "Reconciliation"), for the lines of the accounts
-- and dates a day's transfers touched:
--   1. A line's reference is 'DS' followed by 18 digits in BnprCntn (else Smr):
--      our memo, 'DS' || IsTuno, printed by the bank. It names one IsTuno: a
--      transfer's current one, an old one kept in transfer_attempts, or none
--      of ours (an orphan). Per (account, reference) the first line in
--      (Trdd, Txtm, Tuno) order is the match, any further one is an orphan.
--   2. A settlement-account line without a reference (Ccyn 0) is paired with a
--      succeeded transfer of that account that has no line there yet, by
--      (account, Trdd = Tsymd, direction, amount), the n-th line in (Txtm,
--      Tuno) order with the n-th transfer in id order.
--   3. Every other settlement-account line (Ccyn 0) is an orphan. Lines of
--      other accounts without our reference are not ours.
--   4. A Ccyn 1 (cancelled) line is paired with its original: the line with
--      its reference, else the latest earlier Ccyn 0 line of the same account
--      with the same amount and the opposite direction not yet paired.
-- Then, per (D, K): a succeeded transfer needs exactly one matched line with
-- the right direction (in: MnrcDrotDsnc 1/2 on to_account, out: 3/4 on
-- from_account) and amount on each side whose statement was read
-- (missing_line, mismatch); a line naming an old number, a failed or pending
-- transfer, a duplicate or no transfer is an orphan (with a suspense journal
-- entry); a cancellation is a break of the original's day.

------------------------------------------------------------------------------
-- Settings

alter table settlement.config add column reconcile_after interval not null default '2 hours';
comment on column settlement.config.reconcile_after is
  'A date''s statement is final at the end of that date in KST plus this grace (NH books late-night requests after midnight). Negative values only for a simulator, whose statement is final at once.';

create function settlement.configure_reconcile(p_after interval) returns void
language plpgsql as $$
begin
  if p_after is null then
    perform settlement.raise_error('ST022', 'configure_reconcile: reconcile_after is required (an interval, e.g. ''2 hours'')');
  end if;
  update settlement.config set reconcile_after = p_after, updated_at = now() where id;
  if to_regproc('settlement.audit') is not null then
    perform settlement.audit('configure_reconcile', jsonb_build_object('reconcile_after', p_after::text));
  end if;
end $$;
comment on function settlement.configure_reconcile is
  'Operator: sets reconcile_after, the grace after the end of a date (KST) before its statement counts as final. Audited.';

-- When the statement of a Korean date (YYYYMMDD) is final, by the database's clock.
create function settlement.statement_final_at(p_ymd text) returns timestamptz
language sql stable as $$
  select ((to_date(p_ymd, 'YYYYMMDD') + 1)::timestamp at time zone 'Asia/Seoul') + c.reconcile_after
  from settlement.config c where c.id
$$;

create function settlement.ymd_add(p_ymd text, p_days integer) returns text
language sql immutable as $$ select to_char(to_date(p_ymd, 'YYYYMMDD') + p_days, 'YYYYMMDD') $$;

-- Stage rows of the days that exist already (ensure_day creates them for new days).
insert into settlement.stage_runs (business_date, kind, stage)
select d.business_date, d.kind, 'reconcile' from settlement.days d
on conflict do nothing;

------------------------------------------------------------------------------
-- Statements

create table settlement.statement_reads (
  bncd text not null check (bncd ~ '^[0-9]{3}$'),
  acno text not null,
  ymd text not null check (ymd ~ '^[0-9]{8}$'),
  -- the end of the range read (ymd, or the next day so far: a request sent
  -- just before midnight may be booked after it)
  to_ymd text not null check (to_ymd ~ '^[0-9]{8}$'),
  lines integer not null,
  read_at timestamptz not null default now(),
  primary key (bncd, acno, ymd)
);
comment on table settlement.statement_reads is 'Statements read in full after their date was final: (Bncd, Acno, date).';

create table settlement.statement_lines (
  id bigint generated always as identity primary key,
  bncd text not null check (bncd ~ '^[0-9]{3}$'),
  acno text not null,
  trdd text not null check (trdd ~ '^[0-9]{8}$'),
  txtm text not null check (txtm ~ '^[0-9]{6}$'),
  mnrc_drot_dsnc text not null check (mnrc_drot_dsnc in ('1', '2', '3', '4')),
  tram bigint not null check (tram >= 0),
  aftr_blnc bigint,
  balance_sign text,
  smr text,
  hnis_cd text,
  hnbr_cd text,
  ccyn text not null check (ccyn in ('0', '1')),
  tuno text not null,
  bnpr_cntn text,
  -- our reference: the IsTuno in 'DS' || IsTuno, printed as BnprCntn (or in Smr)
  ref_is_tuno text generated always as (coalesce(substring(bnpr_cntn from 'DS([0-9]{18})'), substring(smr from 'DS([0-9]{18})'))) stored,
  read_at timestamptz not null default now(),
  unique (bncd, acno, trdd, tuno)
);
create index statement_lines_account_idx on settlement.statement_lines (bncd, acno, trdd);
create index statement_lines_ref_idx on settlement.statement_lines (ref_is_tuno) where ref_is_tuno is not null;
comment on table settlement.statement_lines is 'Every line of the bank''s statements read by reconcile, once; ref_is_tuno is the IsTuno our memo printed on it.';
create trigger statement_lines_append_only before update or delete on settlement.statement_lines
  for each row execute function settlement.journal_append_only();

create function settlement.is_in(p_dsnc text) returns boolean
language sql immutable as $$ select p_dsnc in ('1', '2') $$;

------------------------------------------------------------------------------
-- Breaks

create table settlement.breaks (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  problem text not null check (problem in ('missing_line', 'orphan', 'mismatch', 'cancelled')),
  transfer_id bigint references settlement.transfers (id),
  is_tuno text,
  line_id bigint references settlement.statement_lines (id),
  account_no text,
  amount bigint not null,
  detail text not null,
  journal_id bigint references settlement.journal_entries (id),
  detected_at timestamptz not null default now(),
  resolved_at timestamptz,
  resolved_by text,
  resolution text,
  foreign key (business_date, kind) references settlement.days,
  check ((resolved_at is null) = (resolution is null))
);
create index breaks_day_idx on settlement.breaks (business_date, kind) where resolved_at is null;
-- One break per fact: a line, a booked number without a line yet, a transfer's side.
create unique index breaks_line_key on settlement.breaks (problem, line_id) where line_id is not null;
create unique index breaks_booked_key on settlement.breaks (is_tuno) where problem = 'orphan' and line_id is null;
create unique index breaks_side_key on settlement.breaks (problem, transfer_id, account_no) where problem in ('missing_line', 'mismatch') and line_id is null;
comment on table settlement.breaks is
  'What does not reconcile, per (business_date, kind): missing_line (a succeeded transfer with no statement line), orphan (money the bank moved that no transfer claims; journaled to suspense:<kind>), mismatch (amount or direction), cancelled (a Ccyn 1 line). Resolved with settlement.resolve_break(id, note); never deleted.';

-- Only the resolution may be written, once (and journal_id right after the insert).
-- The breaks table is history (breaks_guard); journal_id is written once right
-- after the break's insert, in the same function: allow exactly that.
create function settlement.breaks_guard() returns trigger
language plpgsql as $$
begin
  if tg_op = 'UPDATE' and old.resolved_at is null and old.journal_id is null and new.journal_id is not null
     and (to_jsonb(new) - 'journal_id') = (to_jsonb(old) - 'journal_id') then
    return new;
  end if;
  if tg_op = 'DELETE' or old.resolved_at is not null
     or (to_jsonb(new) - 'resolved_at' - 'resolved_by' - 'resolution') is distinct from (to_jsonb(old) - 'resolved_at' - 'resolved_by' - 'resolution') then
    raise exception 'break %: a break is history; only its resolution is recorded, once', old.id using errcode = 'ST007';
  end if;
  return new;
end $$;
create trigger breaks_history before update or delete on settlement.breaks
  for each row execute function settlement.breaks_guard();

create table settlement.line_matches (
  line_id bigint primary key references settlement.statement_lines (id),
  -- reference | fallback | duplicate | unknown | cancellation
  rule text not null check (rule in ('reference', 'fallback', 'duplicate', 'unknown', 'cancellation')),
  transfer_id bigint references settlement.transfers (id),
  is_tuno text,
  -- cancellation: the line it cancels
  cancels_line_id bigint references settlement.statement_lines (id),
  matched_at timestamptz not null default now()
);
create index line_matches_transfer_idx on settlement.line_matches (transfer_id);
comment on table settlement.line_matches is 'Which transfer and IsTuno each line of ours belongs to (see the rule at the top of 0009_reconcile.sql).';

alter table settlement.journal_entries drop constraint journal_entries_event_check;
alter table settlement.journal_entries add constraint journal_entries_event_check
  check (event in ('record', 'payout', 'withdrawal', 'correction', 'orphan'));

-- An orphan's journal entry: each of our bank accounts the movement touched
-- mirrors the bank; the other side is suspense:<kind>.
create function settlement.journal_orphan(p_break bigint, p_date date, p_kind settlement.kind, p_to text, p_from text, p_amount bigint, p_memo text)
returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.journal_entries (business_date, kind, event, ref, memo)
  values (p_date, p_kind, 'orphan', 'break:' || p_break, p_memo) returning id into v_id;
  insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
  select v_id, row_number() over (order by l.n)::int, l.account, l.amount from (values
      (1, 'bank:' || p_to, p_amount, p_to is not null),
      (2, 'suspense:' || p_kind, -p_amount, p_to is not null),
      (3, 'bank:' || p_from, -p_amount, p_from is not null),
      (4, 'suspense:' || p_kind, p_amount, p_from is not null)) l(n, account, amount, wanted)
  where l.wanted;
  update settlement.breaks set journal_id = v_id where id = p_break and journal_id is null;
  return v_id;
end $$;


-- A booking the bank confirmed for an IsTuno no transfer holds as its
-- succeeded number (a replaced number booked late, or a transfer we had
-- recorded failed): an orphan at once, journaled to suspense.
create function settlement.record_booked_orphan(t settlement.transfers, p_is_tuno text, p_processed_at text) returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, account_no, amount, detail)
  values (t.business_date, t.kind, 'orphan', t.id, p_is_tuno, t.to_account, t.amount,
          format('the bank booked %s KRW under IsTuno %s (processed %s), which transfer %s no longer claims (it is %s under %s): money in suspense',
                 t.amount, p_is_tuno, coalesce(p_processed_at, '?'), t.id, t.state, t.is_tuno))
  on conflict do nothing
  returning id into v_id;
  if v_id is not null then
    perform settlement.journal_orphan(v_id, t.business_date, t.kind, t.to_account, t.from_account, t.amount,
                                      format('orphan: %s booked under replaced IsTuno %s', t.purpose, p_is_tuno));
  end if;
end $$;

------------------------------------------------------------------------------
-- finish_transfer of 0007, with orphans recorded. Same signature and
-- behaviour otherwise: a 'succeeded' answer that does not land on the
-- transfer's current, open IsTuno is an orphan (never only a log line).
drop function settlement.finish_miss(bigint, text);
create function settlement.finish_miss(p_id bigint, p_is_tuno text, p_outcome text default null, p_processed_at text default null) returns text
language plpgsql as $$
declare
  t settlement.transfers;
begin
  select * into t from settlement.transfers where id = p_id;
  if not found then
    perform settlement.raise_error('ST008', format('transfer %s does not exist', p_id));
  end if;
  if p_outcome = 'succeeded' and (t.is_tuno <> p_is_tuno or t.state <> 'succeeded') then
    perform settlement.record_booked_orphan(t, p_is_tuno, p_processed_at);
  end if;
  return case when t.is_tuno <> p_is_tuno then 'stale' else 'already_settled' end;
end $$;

create or replace function settlement.finish_transfer(p_id bigint, p_is_tuno text, p_outcome text, p_processed_at text,
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
    return settlement.finish_miss(p_id, p_is_tuno, p_outcome, p_processed_at);
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
comment on function settlement.finish_transfer is
  'Transfer task: records the bank''s answer for a transfer (+ journal, + what follows) once. A booking confirmed for a number the transfer no longer holds (stale) is recorded as an orphan with a suspense journal entry.';

------------------------------------------------------------------------------
-- What reconcile reads: per (business_date, kind), every NH account its
-- transfers touched (the settlement account, the corporate account at NH,
-- the loan accounts at NH) on every date they were sent on (Tsymd, old
-- attempts included). Statements of other banks' accounts are not available
-- through NH.
create view settlement.reconcile_scope as
select distinct t.business_date, t.kind, a.bank_code as bncd, a.account_no as acno, a.role, x.ymd
from settlement.transfers t
cross join lateral (
  select t.tsymd as ymd union select at.tsymd from settlement.transfer_attempts at where at.transfer_id = t.id) x
cross join lateral (values (t.from_account), (t.to_account)) v(account_no)
join settlement.accounts a on a.account_no = v.account_no
where x.ymd is not null and a.bank_code in ('011', '012');
comment on view settlement.reconcile_scope is 'The (account, date) statements each (business_date, kind) is reconciled against.';

-- The statements a reconcile task should read now: those of days waiting for
-- reconcile and of unresolved transfers (the settlement account on their
-- Tsymd), whose date is final and that were not read since.
create function settlement.statements_to_read()
returns table (bncd text, acno text, ymd text, to_ymd text)
language sql stable as $$
  with needed as (
    select s.bncd, s.acno, s.ymd from settlement.reconcile_scope s
    join settlement.stage_runs w on w.business_date = s.business_date and w.kind = s.kind and w.stage = 'withdraw' and w.state = 'done'
    join settlement.stage_runs r on r.business_date = s.business_date and r.kind = s.kind and r.stage = 'reconcile' and r.state <> 'done'
    union
    select a.bank_code, a.account_no, t.tsymd from settlement.transfers t
    join settlement.accounts a on a.account_no = case t.purpose when 'payout' then t.to_account else t.from_account end
    where t.state = 'sending' and t.unresolved_since is not null and t.tsymd is not null and a.bank_code in ('011', '012'))
  select n.bncd, n.acno, n.ymd, least(settlement.ymd_add(n.ymd, 1), settlement.bank_ymd())
  from needed n
  where now() >= settlement.statement_final_at(n.ymd)
    and not exists (select 1 from settlement.statement_reads r where r.bncd = n.bncd and r.acno = n.acno and r.ymd = n.ymd)
  order by n.ymd, n.bncd, n.acno
$$;
comment on function settlement.statements_to_read is 'Reconcile task: the (Bncd, Acno, date) statements to read now (final, not read yet), with the end of the range to ask for.';

-- Stores a statement read in full (lines as NH prints them, amounts as digit
-- strings) and records that (account, date) was read after it was final.
-- Idempotent: a line read twice is one row.
create function settlement.record_statement(p_bncd text, p_acno text, p_ymd text, p_to_ymd text, p_lines jsonb) returns integer
language plpgsql as $$
declare
  v_n integer;
begin
  if p_bncd is null or p_acno is null or p_ymd !~ '^[0-9]{8}$' or p_to_ymd !~ '^[0-9]{8}$' or jsonb_typeof(p_lines) is distinct from 'array' then
    perform settlement.raise_error('ST023', 'record_statement: bncd, acno, ymd, to_ymd (YYYYMMDD) and a JSON array of lines are required');
  end if;
  insert into settlement.statement_lines (bncd, acno, trdd, txtm, mnrc_drot_dsnc, tram, aftr_blnc, balance_sign, smr, hnis_cd, hnbr_cd, ccyn, tuno, bnpr_cntn)
  select p_bncd, p_acno, x.trdd, x.txtm, x.mnrc_drot_dsnc, x.tram::bigint, x.aftr_blnc::bigint, x.balance_sign, x.smr, x.hnis_cd, x.hnbr_cd, x.ccyn, x.tuno, x.bnpr_cntn
  from jsonb_to_recordset(p_lines) as x(trdd text, txtm text, mnrc_drot_dsnc text, tram text, aftr_blnc text, balance_sign text, smr text,
                                        hnis_cd text, hnbr_cd text, ccyn text, tuno text, bnpr_cntn text)
  on conflict (bncd, acno, trdd, tuno) do nothing;
  get diagnostics v_n = row_count;
  if now() >= settlement.statement_final_at(p_ymd) then
    insert into settlement.statement_reads (bncd, acno, ymd, to_ymd, lines)
    values (p_bncd, p_acno, p_ymd, p_to_ymd, jsonb_array_length(p_lines))
    on conflict do nothing;
  end if;
  return v_n;
end $$;
comment on function settlement.record_statement is 'Reconcile task: stores the lines of one statement (idempotent) and marks (account, date) read once the date is final.';

------------------------------------------------------------------------------
-- Matching (the rule at the top of this file). Global over the lines of the
-- given (account, date) scope: a line is matched once, whichever day runs first.
create function settlement.match_lines(p_date date, p_kind settlement.kind) returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  v_k integer;
  c record;
  o bigint;
begin
  create temporary table if not exists pg_temp.rec_lines (id bigint primary key) on commit drop;
  truncate pg_temp.rec_lines;
  insert into pg_temp.rec_lines
  select distinct l.id from settlement.reconcile_scope s
  join settlement.statement_lines l on l.bncd = s.bncd and l.acno = s.acno and l.trdd in (s.ymd, settlement.ymd_add(s.ymd, 1))
  where s.business_date = p_date and s.kind = p_kind
    and not exists (select 1 from settlement.line_matches m where m.line_id = l.id);

  -- 1. By reference (Ccyn 0): the first line per (account, reference) is the match.
  insert into settlement.line_matches (line_id, rule, transfer_id, is_tuno)
  select x.id, case when x.n = 1 and not x.taken then 'reference' else 'duplicate' end, x.transfer_id, x.ref_is_tuno
  from (
    select l.id, l.ref_is_tuno, coalesce(t.id, at.transfer_id) as transfer_id,
           row_number() over (partition by l.bncd, l.acno, l.ref_is_tuno order by l.trdd, l.txtm, l.tuno) as n,
           exists (select 1 from settlement.line_matches m join settlement.statement_lines ml on ml.id = m.line_id
                   where m.rule = 'reference' and m.is_tuno = l.ref_is_tuno and ml.bncd = l.bncd and ml.acno = l.acno) as taken
    from pg_temp.rec_lines r join settlement.statement_lines l on l.id = r.id
    left join settlement.transfers t on t.is_tuno = l.ref_is_tuno
    left join settlement.transfer_attempts at on at.is_tuno = l.ref_is_tuno and t.id is null
    where l.ccyn = '0' and l.ref_is_tuno is not null) x;
  get diagnostics v_k = row_count;
  v_n := v_n + v_k;

  -- 2. Settlement-account lines without a reference: paired by (account,
  --    Trdd = Tsymd, direction, amount) with succeeded transfers that have no
  --    line on that account, n-th with n-th.
  insert into settlement.line_matches (line_id, rule, transfer_id, is_tuno)
  select l.line_id, 'fallback', t.id, t.is_tuno
  from (
    select l.id as line_id, l.acno, l.trdd, settlement.is_in(l.mnrc_drot_dsnc) as inward, l.tram,
           row_number() over (partition by l.acno, l.trdd, settlement.is_in(l.mnrc_drot_dsnc), l.tram order by l.txtm, l.tuno) as n
    from pg_temp.rec_lines r join settlement.statement_lines l on l.id = r.id
    join settlement.accounts a on a.account_no = l.acno and a.bank_code = l.bncd and a.role = 'settlement'
    where l.ccyn = '0' and l.ref_is_tuno is null) l
  join (
    select t.id, t.is_tuno, v.acno, t.tsymd, v.inward, t.amount,
           row_number() over (partition by v.acno, t.tsymd, v.inward, t.amount order by t.id) as n
    from settlement.transfers t
    cross join lateral (values (t.to_account, true), (t.from_account, false)) v(acno, inward)
    where t.state = 'succeeded'
      and not exists (select 1 from settlement.line_matches m join settlement.statement_lines ml on ml.id = m.line_id
                      where m.transfer_id = t.id and m.is_tuno = t.is_tuno and ml.acno = v.acno and m.rule in ('reference', 'fallback'))) t
    on t.acno = l.acno and t.tsymd = l.trdd and t.inward = l.inward and t.amount = l.tram and t.n = l.n;
  get diagnostics v_k = row_count;
  v_n := v_n + v_k;

  -- 3. Every other settlement-account line is ours and unexplained.
  insert into settlement.line_matches (line_id, rule)
  select l.id, 'unknown'
  from pg_temp.rec_lines r join settlement.statement_lines l on l.id = r.id
  join settlement.accounts a on a.account_no = l.acno and a.bank_code = l.bncd and a.role = 'settlement'
  where l.ccyn = '0' and not exists (select 1 from settlement.line_matches m where m.line_id = l.id);
  get diagnostics v_k = row_count;
  v_n := v_n + v_k;

  -- 4. Cancellations, in (Trdd, Txtm, Tuno) order, each with its original.
  for c in
    select l.* from pg_temp.rec_lines r join settlement.statement_lines l on l.id = r.id
    where l.ccyn = '1' order by l.trdd, l.txtm, l.tuno
  loop
    select ol.id into o from settlement.statement_lines ol
    where ol.bncd = c.bncd and ol.acno = c.acno and ol.ccyn = '0' and ol.tram = c.tram
      and ((c.ref_is_tuno is not null and ol.ref_is_tuno = c.ref_is_tuno)
           or (c.ref_is_tuno is null and settlement.is_in(ol.mnrc_drot_dsnc) <> settlement.is_in(c.mnrc_drot_dsnc)
               and (ol.trdd, ol.txtm, ol.tuno) <= (c.trdd, c.txtm, c.tuno)))
      and not exists (select 1 from settlement.line_matches m where m.cancels_line_id = ol.id)
    order by (ol.ref_is_tuno is not distinct from c.ref_is_tuno) desc, ol.trdd desc, ol.txtm desc, ol.tuno desc
    limit 1;
    if o is not null and exists (select 1 from settlement.line_matches m where m.line_id = o) then
      insert into settlement.line_matches (line_id, rule, transfer_id, is_tuno, cancels_line_id)
      select c.id, 'cancellation', m.transfer_id, m.is_tuno, o from settlement.line_matches m where m.line_id = o;
      v_n := v_n + 1;
    elsif exists (select 1 from settlement.accounts a where a.account_no = c.acno and a.bank_code = c.bncd and a.role = 'settlement') then
      insert into settlement.line_matches (line_id, rule, cancels_line_id) values (c.id, 'cancellation', o);
      v_n := v_n + 1;
    end if;
  end loop;
  return v_n;
end $$;

-- The (business_date, kind) a line belongs to: its transfer's, else the
-- first day (by date, then kind) whose scope has that account on that date
-- (or on the day before: the tail read after midnight).
create function settlement.line_owner(p_line_id bigint)
returns table (business_date date, kind settlement.kind)
language sql stable as $$
  select coalesce(t.business_date, s.business_date), coalesce(t.kind, s.kind)
  from settlement.statement_lines l
  left join settlement.line_matches m on m.line_id = l.id
  left join settlement.line_matches cm on cm.line_id = m.cancels_line_id
  left join settlement.transfers t on t.id = coalesce(m.transfer_id, cm.transfer_id)
  left join lateral (
    select s.business_date, s.kind from settlement.reconcile_scope s
    where s.bncd = l.bncd and s.acno = l.acno and s.ymd in (l.trdd, settlement.ymd_add(l.trdd, -1))
    order by s.ymd = l.trdd desc, s.business_date, s.kind limit 1) s on true
  where l.id = p_line_id
$$;

-- Breaks of (D, K), from the matches. Idempotent (one break per fact).
create function settlement.detect_breaks(p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
declare
  r record;
  v_id bigint;
begin
  -- Orphans: lines of ours that name no succeeded transfer's current number.
  for r in
    select l.*, m.rule, m.is_tuno as m_is_tuno, t.id as t_id, t.is_tuno as t_is_tuno, t.state as t_state, o.business_date as d, o.kind as k, a.account_no
    from settlement.line_matches m
    join settlement.statement_lines l on l.id = m.line_id
    left join settlement.transfers t on t.id = m.transfer_id
    join settlement.accounts a on a.account_no = l.acno and a.bank_code = l.bncd
    cross join lateral settlement.line_owner(l.id) o
    where m.rule in ('reference', 'duplicate', 'unknown')
      and (m.rule <> 'reference' or t.id is null or m.is_tuno <> t.is_tuno or t.state in ('pending', 'failed'))
      and o.business_date = p_date and o.kind = p_kind
      and not exists (select 1 from settlement.breaks b where b.line_id = l.id and b.problem = 'orphan')
      -- a booking recorded as an orphan at once (finish_transfer) already has its entry
      and not exists (select 1 from settlement.breaks b where b.problem = 'orphan' and b.line_id is null and b.is_tuno = m.is_tuno and m.rule = 'reference')
  loop
    insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, line_id, account_no, amount, detail)
    values (r.d, r.k, 'orphan', r.t_id, r.m_is_tuno, r.id, r.account_no, r.tram,
            format('%s %s KRW on %s %s %s (Tuno %s, %s) %s: money in suspense',
                   case when settlement.is_in(r.mnrc_drot_dsnc) then 'in' else 'out' end, r.tram, r.account_no, r.trdd, r.txtm, r.tuno,
                   coalesce('BnprCntn ' || r.bnpr_cntn, 'no reference'),
                   case when r.rule = 'duplicate' then format('is a second line for IsTuno %s', r.m_is_tuno)
                        when r.rule = 'unknown' then 'matches no transfer'
                        when r.t_id is null then format('names IsTuno %s, which is none of ours', r.m_is_tuno)
                        when r.m_is_tuno <> r.t_is_tuno then format('names IsTuno %s, replaced by %s on transfer %s', r.m_is_tuno, r.t_is_tuno, r.t_id)
                        else format('names transfer %s, recorded %s', r.t_id, r.t_state) end))
    on conflict do nothing
    returning id into v_id;
    if v_id is not null then
      perform settlement.journal_orphan(v_id, r.d, r.k,
        case when settlement.is_in(r.mnrc_drot_dsnc) then r.account_no end,
        case when settlement.is_in(r.mnrc_drot_dsnc) then null else r.account_no end, r.tram,
        format('orphan statement line %s', r.id));
    end if;
  end loop;

  -- Cancellations: a break of the original's day.
  insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, line_id, account_no, amount, detail)
  select o.business_date, o.kind, 'cancelled', m.transfer_id, m.is_tuno, l.id, l.acno, l.tram,
         format('cancelled (Ccyn 1) %s KRW on %s %s %s (Tuno %s)%s', l.tram, l.acno, l.trdd, l.txtm, l.tuno,
                coalesce(format(' of line %s (Tuno %s)', ol.id, ol.tuno), ' with no original line found'))
  from settlement.line_matches m
  join settlement.statement_lines l on l.id = m.line_id
  left join settlement.statement_lines ol on ol.id = m.cancels_line_id
  cross join lateral settlement.line_owner(coalesce(ol.id, l.id)) o
  where m.rule = 'cancellation' and o.business_date = p_date and o.kind = p_kind
  on conflict do nothing;

  -- Each succeeded transfer of (D, K): one line with the right direction and
  -- amount on each side whose statement was read.
  insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, account_no, amount, detail)
  select t.business_date, t.kind, case when x.lines = 0 then 'missing_line' else 'mismatch' end, t.id, t.is_tuno, v.acno, t.amount,
         case when x.lines = 0 then format('%s %s of %s KRW (IsTuno %s, sent %s) has no line on the statement of %s', t.purpose, t.id, t.amount, t.is_tuno, t.tsymd, v.acno)
              else format('%s %s of %s KRW (IsTuno %s): the statement of %s shows %s', t.purpose, t.id, t.amount, t.is_tuno, v.acno, x.shown) end
  from settlement.transfers t
  cross join lateral (values (t.to_account, true), (t.from_account, false)) v(acno, inward)
  join settlement.accounts a on a.account_no = v.acno
  join settlement.statement_reads sr on sr.bncd = a.bank_code and sr.acno = a.account_no and sr.ymd = t.tsymd
  cross join lateral (
    select count(*) as lines,
           count(*) filter (where l.tram = t.amount and settlement.is_in(l.mnrc_drot_dsnc) = v.inward) as good,
           string_agg(format('%s %s KRW', case when settlement.is_in(l.mnrc_drot_dsnc) then 'in' else 'out' end, l.tram), ', ') as shown
    from settlement.line_matches m join settlement.statement_lines l on l.id = m.line_id
    where m.transfer_id = t.id and m.is_tuno = t.is_tuno and m.rule in ('reference', 'fallback') and l.acno = v.acno and l.bncd = a.bank_code) x
  where t.business_date = p_date and t.kind = p_kind and t.state = 'succeeded' and x.good <> 1
  on conflict do nothing;
end $$;

------------------------------------------------------------------------------
-- The stage

create or replace function settlement.stage_reconcile(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_wait record;
  v_unread bigint;
  v_transfers bigint;
  v_lines bigint;
  v_open bigint;
  v_what text;
  v_resolved bigint;
  v_detail text;
begin
  if settlement.stage_state_of(p_date, p_kind, 'withdraw') is distinct from 'done' then
    return settlement.outcome('not_ready'::text, 'withdraw is not done');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'reconcile') = 'done' then
    return settlement.outcome('already_done'::text, 'reconciled earlier');
  end if;
  select s.ymd, settlement.statement_final_at(s.ymd) as final_at into v_wait
  from settlement.reconcile_scope s
  where s.business_date = p_date and s.kind = p_kind and now() < settlement.statement_final_at(s.ymd)
  order by s.ymd desc limit 1;
  if found then
    perform settlement.add_stage_job('reconcile', p_date, p_kind, v_wait.final_at);
    return settlement.outcome('not_ready'::text, format('the statement of %s is final at %s (config.reconcile_after)', v_wait.ymd, v_wait.final_at));
  end if;
  select count(*) into v_unread from settlement.reconcile_scope s
  where s.business_date = p_date and s.kind = p_kind
    and not exists (select 1 from settlement.statement_reads r where r.bncd = s.bncd and r.acno = s.acno and r.ymd = s.ymd);
  if v_unread > 0 then
    perform settlement.add_reconcile_job();
    return settlement.outcome('not_ready'::text, format('%s statement(s) to read (the reconcile task reads them)', v_unread));
  end if;

  perform settlement.match_lines(p_date, p_kind);
  perform settlement.detect_breaks(p_date, p_kind);

  select count(*) filter (where b.resolved_at is null), count(*) filter (where b.resolved_at is not null),
         string_agg(distinct b.problem, ', ') filter (where b.resolved_at is null)
  into v_open, v_resolved, v_what
  from settlement.breaks b where b.business_date = p_date and b.kind = p_kind;
  select count(distinct t.id), count(distinct m.line_id) into v_transfers, v_lines
  from settlement.transfers t left join settlement.line_matches m on m.transfer_id = t.id and m.is_tuno = t.is_tuno and m.rule in ('reference', 'fallback')
  where t.business_date = p_date and t.kind = p_kind and t.state = 'succeeded';
  if v_open > 0 then
    v_detail := format('%s open break(s) (%s): see settlement.reconciliation_breaks; explain each with settlement.resolve_break(id, note)', v_open, v_what);
    perform settlement.set_stage(p_date, p_kind, 'reconcile', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  v_detail := format('%s transfers matched to %s statement lines%s', v_transfers, v_lines,
                     case when v_resolved > 0 then format(', %s break(s) resolved', v_resolved) else '' end);
  perform settlement.set_stage(p_date, p_kind, 'reconcile', 'done', v_detail);
  return settlement.outcome('done'::text, v_detail);
end $$;

-- The reconcile task's job (one at a time; the key collapses duplicates).
create function settlement.add_reconcile_job(p_run_at timestamptz default null) returns void
language sql as $$
  select null from graphile_worker.add_job('reconcile', '{}'::json, run_at => p_run_at, max_attempts => 25,
                                           job_key => 'reconcile', job_key_mode => 'preserve_run_at')
$$;

create or replace function settlement.run_stage(stage settlement.stage, business_date date, kind settlement.kind)
returns table (outcome text, detail text)
language plpgsql as $$
declare
  r settlement.stage_result;
begin
  if run_stage.stage is null or run_stage.business_date is null or run_stage.kind is null then
    perform settlement.raise_error('ST001', 'run_stage: stage, business_date and kind are required');
  end if;
  if not pg_try_advisory_xact_lock(settlement.stage_lock_key(run_stage.stage, run_stage.business_date, run_stage.kind)) then
    return query select 'busy'::text, format('%s %s %s is running elsewhere', run_stage.stage, run_stage.business_date, run_stage.kind);
    return;
  end if;
  r := case run_stage.stage
         when 'record' then settlement.stage_record(run_stage.business_date, run_stage.kind)
         when 'pay' then settlement.stage_pay(run_stage.business_date, run_stage.kind)
         when 'confirm' then settlement.stage_confirm(run_stage.business_date, run_stage.kind)
         when 'withdraw' then settlement.stage_withdraw(run_stage.business_date, run_stage.kind)
         when 'reconcile' then settlement.stage_reconcile(run_stage.business_date, run_stage.kind)
       end;
  return query select r.outcome, r.detail;
end $$;
comment on function settlement.run_stage is
  'Runs one stage for (business_date, kind) now, in the caller''s transaction. Outcomes: done, already_done, not_ready, busy, blocked; withdraw also started, in_progress.';

-- Withdraw done chains reconcile: at once when the day moved no money (no
-- statement to wait for), else a stage job when its last statement is final.
create or replace function settlement.after_stage(p_stage settlement.stage, p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
declare
  v_at timestamptz;
begin
  if p_stage <> 'withdraw' then
    return;
  end if;
  select max(settlement.statement_final_at(s.ymd)) into v_at from settlement.reconcile_scope s where s.business_date = p_date and s.kind = p_kind;
  if v_at is null and pg_try_advisory_xact_lock(settlement.stage_lock_key('reconcile', p_date, p_kind)) then
    perform settlement.stage_reconcile(p_date, p_kind);
    return;
  end if;
  perform settlement.add_stage_job('reconcile', p_date, p_kind, case when v_at > now() then v_at end);
end $$;

-- Days stay open until they are reconciled.
create or replace function settlement.open_days()
returns table (business_date date, kind settlement.kind)
language sql stable as $$
  select r.business_date, r.kind from settlement.stage_runs r
  where r.stage = 'reconcile' and r.state <> 'done' and r.business_date < settlement.today()
  order by r.business_date, r.kind
$$;
comment on function settlement.open_days is 'Days that are over and not reconciled yet, oldest first.';

------------------------------------------------------------------------------
-- Only the statement proves non-booking. An unresolved transfer whose
-- Tsymd's statement of its settlement-account side was read final is decided
-- by it: a line with its reference -> succeeded (with the line's Trdd+Txtm);
-- no such line and no unreferenced line that could be it -> not booked: a
-- failed attempt 'not_in_statement' for the old number, a new IsTuno and its
-- job, in this transaction.
create function settlement.decide_unresolved()
returns table (transfer_id bigint, is_tuno text, decision text)
language plpgsql as $$
#variable_conflict use_column
declare
  t settlement.transfers;
  l settlement.statement_lines;
  v_side text;
  v_bncd text;
begin
  for t in
    select x.* from settlement.transfers x
    where x.state = 'sending' and x.unresolved_since is not null and x.tsymd is not null
      and (x.claimed_until is null or x.claimed_until < now())
    order by x.id
    for update skip locked
  loop
    v_side := case t.purpose when 'payout' then t.to_account else t.from_account end;
    select a.bank_code into v_bncd from settlement.accounts a where a.account_no = v_side;
    if not exists (select 1 from settlement.statement_reads r where r.bncd = v_bncd and r.acno = v_side and r.ymd = t.tsymd) then
      continue;
    end if;
    select * into l from settlement.statement_lines sl
    where sl.ref_is_tuno = t.is_tuno and sl.ccyn = '0' and sl.acno = v_side
    order by sl.trdd, sl.txtm, sl.tuno limit 1;
    if found then
      perform settlement.finish_transfer(t.id, t.is_tuno, 'succeeded', l.trdd || l.txtm, null, null);
      transfer_id := t.id; is_tuno := t.is_tuno; decision := 'succeeded';
      return next;
      continue;
    end if;
    -- An unreferenced line that could be this transfer: leave it to a person.
    if exists (select 1 from settlement.statement_lines sl
               where sl.bncd = v_bncd and sl.acno = v_side and sl.ref_is_tuno is null and sl.ccyn = '0' and sl.tram = t.amount
                 and sl.trdd in (t.tsymd, settlement.ymd_add(t.tsymd, 1))
                 and settlement.is_in(sl.mnrc_drot_dsnc) = (t.purpose = 'payout')
                 and not exists (select 1 from settlement.line_matches m where m.line_id = sl.id and m.rule = 'fallback')) then
      continue;
    end if;
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message)
    values (t.id, t.is_tuno, t.tsymd, t.amount, 'failed', 'not_in_statement',
            format('no line with DS%s on the final statement of %s %s', t.is_tuno, v_side, t.tsymd));
    update settlement.transfers x
    set state = 'pending', attempt = x.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null,
        claimed_by = null, claimed_until = null, unresolved_since = null, unresolved_reason = null, updated_at = now()
    where x.id = t.id;
    perform settlement.add_transfer_jobs(array[t.id]);
    transfer_id := t.id; is_tuno := t.is_tuno; decision := 'not_booked';
    return next;
  end loop;
end $$;
comment on function settlement.decide_unresolved is
  'Reconcile task: decides unresolved transfers by the final statement of their date (line with the reference: succeeded; none: re-planned under a new IsTuno with its job).';

------------------------------------------------------------------------------
-- Operators

create function settlement.resolve_break(id bigint, note text) returns void
language plpgsql as $$
declare
  b settlement.breaks;
begin
  if resolve_break.note is null or btrim(resolve_break.note) = '' then
    perform settlement.raise_error('ST020', 'resolve_break: a note is required (say what explains the break)');
  end if;
  update settlement.breaks x set resolved_at = now(), resolved_by = session_user, resolution = left(btrim(resolve_break.note), 2000)
  where x.id = resolve_break.id and x.resolved_at is null
  returning * into b;
  if not found then
    perform settlement.raise_error('ST021', format('resolve_break: break %s does not exist or is already resolved', resolve_break.id));
  end if;
  if to_regproc('settlement.audit') is not null then
    perform settlement.audit('resolve_break', jsonb_build_object('id', b.id, 'business_date', b.business_date, 'kind', b.kind, 'problem', b.problem),
                             jsonb_build_object('note', b.resolution), b.resolution);
  end if;
  perform settlement.add_stage_job('reconcile', b.business_date, b.kind);
end $$;
comment on function settlement.resolve_break is
  'Operator: records the explanation of a reconciliation break (who, when, note; kept, never deleted) and runs the day''s reconcile stage again. ST020 no note, ST021 unknown or already resolved.';

create view settlement.reconciliation_breaks as
select b.id, b.business_date, b.kind, b.problem, b.transfer_id, b.is_tuno, b.account_no, b.amount,
       l.trdd, l.txtm, l.mnrc_drot_dsnc, l.ccyn, l.tuno as bank_tuno, l.bnpr_cntn, b.detail, b.journal_id, b.detected_at
from settlement.breaks b
left join settlement.statement_lines l on l.id = b.line_id
where b.resolved_at is null;
comment on view settlement.reconciliation_breaks is
  'Open reconciliation breaks per (business_date, kind): missing_line, orphan (in suspense), mismatch, cancelled. settlement.resolve_break(id, note) explains one; resolved breaks stay in settlement.breaks.';

------------------------------------------------------------------------------
-- daily_status with the reconcile column.
drop view settlement.daily_status;
create view settlement.daily_status as
select
  d.business_date,
  d.kind,
  max(r.state::text) filter (where r.stage = 'record') as record,
  max(r.state::text) filter (where r.stage = 'pay') as pay,
  max(r.state::text) filter (where r.stage = 'confirm') as confirm,
  max(r.state::text) filter (where r.stage = 'withdraw') as withdraw,
  max(r.state::text) filter (where r.stage = 'reconcile') as reconcile,
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
  string_agg(r.stage || ': ' || r.detail, '; ' order by r.stage) filter (where r.state <> 'done' and r.detail <> '') as attention,
  coalesce(b.open_breaks, 0) as open_breaks
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
left join lateral (
  select count(*) as open_breaks from settlement.breaks x
  where x.business_date = d.business_date and x.kind = d.kind and x.resolved_at is null) b on true
group by d.business_date, d.kind, e.entries, e.amount, c.total, c.succeeded, c.failed, c.in_flight, c.unresolved, c.paid, c.withdrawn, a.pending_accruals, b.open_breaks;
comment on view settlement.daily_status is 'One row per (business_date, kind): each stage''s state and the day''s counts and amounts (KRW); attention says what a person should look at.';

-- Per NH account: what our journal says moved (bank:<account>) against what
-- the statements show for lines of ours (matched to a succeeded transfer's
-- current number, or journaled as an orphan).
create view settlement.bank_vs_statement as
with ledger as (
  select substr(l.ledger_account, 6) as account_no, sum(l.amount)::bigint as journal
  from settlement.journal_lines l where l.ledger_account like 'bank:%' group by 1),
statement as (
  select l.acno as account_no,
         sum(case when settlement.is_in(l.mnrc_drot_dsnc) then l.tram else -l.tram end)::bigint as statement
  from settlement.statement_lines l
  join settlement.line_matches m on m.line_id = l.id
  left join settlement.transfers t on t.id = m.transfer_id
  where l.ccyn = '0' and ((m.rule in ('reference', 'fallback') and t.is_tuno = m.is_tuno and t.state = 'succeeded')
         or exists (select 1 from settlement.breaks b where b.problem = 'orphan' and (b.line_id = l.id or (b.line_id is null and b.is_tuno = m.is_tuno))))
  group by 1)
select coalesce(s.account_no, g.account_no) as account_no, coalesce(g.journal, 0) as journal, coalesce(s.statement, 0) as statement
from statement s full join ledger g on g.account_no = s.account_no;
comment on view settlement.bank_vs_statement is 'Per account: the bank:<account> journal total against the statement lines of ours read so far.';

------------------------------------------------------------------------------
-- Grants (the pattern of 0020_roles.sql; the roles are created there, or
-- here first on a new database: they are cluster-wide).
do $$
declare
  r text;
  f text;
begin
  foreach r in array array['settlement_ingest', 'settlement_viewer', 'settlement_operator', 'settlement_worker'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin', r);
    end if;
  end loop;
  foreach f in array array[
    'run_stage(settlement.stage, date, settlement.kind)', 'open_days()',
    'finish_transfer(bigint, text, text, text, text, text, integer, text)',
    'statements_to_read()', 'record_statement(text, text, text, text, jsonb)', 'decide_unresolved()'] loop
    execute format('alter function settlement.%s security definer set search_path = pg_catalog, settlement, graphile_worker', f);
    execute format('grant execute on function settlement.%s to settlement_worker', f);
  end loop;
  foreach f in array array['run_stage(settlement.stage, date, settlement.kind)', 'resolve_break(bigint, text)', 'configure_reconcile(interval)'] loop
    execute format('alter function settlement.%s security definer set search_path = pg_catalog, settlement, graphile_worker', f);
    execute format('grant execute on function settlement.%s to settlement_operator', f);
  end loop;
  execute 'grant execute on function settlement.open_days() to settlement_viewer';
  execute 'grant execute on function settlement.is_in(text) to settlement_viewer, settlement_operator';
end $$;
grant select on settlement.daily_status, settlement.reconciliation_breaks, settlement.breaks, settlement.statement_lines,
  settlement.line_matches, settlement.bank_vs_statement, settlement.reconcile_scope to settlement_viewer;
grant select on settlement.statement_lines, settlement.statement_reads, settlement.breaks, settlement.line_matches to settlement_operator;
grant select on settlement.reconciliation_breaks to settlement_worker;
revoke all on all functions in schema settlement from public;
