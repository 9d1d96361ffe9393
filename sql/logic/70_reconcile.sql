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
--   4. A Ccyn 1 (cancelled) line is paired with its original only by our
--      reference printed on it (the first Ccyn 0 line of that reference on the
--      same account); NH's statement names no original line, and an amount
--      alone is not proof: one without is paired with nothing, a break for a
--      person.
-- Then, per (D, K): a succeeded transfer needs exactly one matched line with
-- the right direction (in: MnrcDrotDsnc 1/2 on to_account, out: 3/4 on
-- from_account) and amount on each side whose statement was read
-- (missing_line, mismatch); a line naming an old number, a failed or pending
-- transfer, a duplicate or no transfer is an orphan (with a suspense journal
-- entry); a cancellation is a break of the original's day. A line that
-- belongs to a day already reconciled (a cancellation, a late or duplicate
-- booking of one of its numbers, a line of its accounts and dates that
-- matches nothing), found when another day reads the same statement, is a
-- break of that day: its reconcile stage is blocked again (breaks_reopen_day).

------------------------------------------------------------------------------
-- When the statement of a Korean date (YYYYMMDD) is final, by the database's clock.
create or replace function settlement.statement_final_at(p_ymd text) returns timestamptz
language sql stable as $$
  select ((to_date(p_ymd, 'YYYYMMDD') + 1)::timestamp at time zone 'Asia/Seoul') + c.reconcile_after
  from settlement.config c where c.id
$$;

------------------------------------------------------------------------------
-- What reconcile reads: per (business_date, kind), every NH account its
-- transfers touched (the settlement account, the corporate account at NH,
-- the loan accounts at NH) on every date they were sent on (Tsymd, old
-- attempts included). Statements of other banks' accounts are not available
-- through NH.
create or replace view settlement.reconcile_scope as
select distinct t.business_date, t.kind, a.bank_code as bncd, a.account_no as acno, a.role, x.ymd
from settlement.transfers t
cross join lateral (
  select t.tsymd as ymd union select at.tsymd from settlement.transfer_attempts at where at.transfer_id = t.id) x
cross join lateral (values (t.from_account), (t.to_account)) v(account_no)
join settlement.accounts a on a.account_no = v.account_no
where x.ymd is not null and a.bank_code in ('011', '012');
comment on view settlement.reconcile_scope is 'The (account, date) statements each (business_date, kind) is reconciled against.';

-- The watch: evidence of a reconciled day can come later, on a date no
-- other day reads (the bank cancels one of its payouts, books one of its
-- numbers late or twice, money with no reference lands on its settlement
-- account), or on one of its own dates after a read that was made before
-- the date was over (a negative grace). For config.statement_watch after the
-- last date its transfers were sent on, a reconciled (done or blocked) day's
-- settlement account is watched on every date from its first: each date's
-- statement is read once the date is over (statements_to_read), and the
-- lines no day has matched are matched by the same rules (match_watch); a
-- line that belongs to the watched day is a break of that day, which reopens
-- it (breaks_reopen_day). Every payout and withdrawal moves money on the
-- settlement account, so its cancellation or second booking shows there:
-- loan and corporate accounts are not watched (their statements carry other
-- business). Only days of the last statement_watch + 1 day, or reconciled
-- in that time, are looked at, counted from the watch's horizon
-- (watch_state.read_through, when it is earlier than now): a day leaves the
-- watch only after every date of its watch was read and matched, however
-- long the reconcile task did not run.
create or replace view settlement.watch_scope as
with horizon as (
  -- (the grace too: a day's last date is read once it is over, which is
  -- the grace after its end)
  select least(settlement_meta.now(), coalesce((select h.read_through from settlement.watch_state h), '-infinity'))
         - c.statement_watch - interval '1 day' - greatest(c.reconcile_after, interval '0') as since
  from settlement.config c where c.id and c.statement_watch > interval '0'),
watched as (
  -- The reconciled days whose watch can reach past the horizon: the recent
  -- ones, and older ones reconciled lately (their transfers sent days after
  -- their date: a pause, a retry): a day is reconciled after its last send.
  select r.business_date, r.kind
  from horizon h
  join settlement.stage_runs r
    on r.stage = 'reconcile' and r.state in ('done', 'blocked')
   and (r.business_date >= (h.since at time zone 'Asia/Seoul')::date or r.updated_at >= h.since)),
days as (
  select s.business_date, s.kind, s.bncd, s.acno, min(s.ymd) as first_ymd, max(s.ymd) as last_ymd
  from watched w
  cross join lateral (select * from settlement.reconcile_scope s
                      where s.business_date = w.business_date and s.kind = w.kind and s.role = 'settlement') s
  group by 1, 2, 3, 4)
select d.business_date, d.kind, d.bncd, d.acno, to_char(g, 'YYYYMMDD') as ymd
from days d
cross join settlement.config c
cross join lateral generate_series(to_date(d.first_ymd, 'YYYYMMDD')::timestamp,
                                   least(to_date(d.last_ymd, 'YYYYMMDD') + c.statement_watch,
                                         to_date(settlement.bank_ymd(), 'YYYYMMDD')::timestamp),
                                   interval '1 day') g
where c.id;
comment on view settlement.watch_scope is 'The statement watch: per reconciled day, its settlement account on every date from its first to config.statement_watch after its last (up to today, KST).';

-- Two rules of when and how reads count:
--
-- 1. A statement read proves something about a transfer only if it was made
--    after the transfer settled. statement_reads.read_at is the moment
--    the reader was told to read (statements_to_read's settlement_meta.now(), before the bank
--    was asked), and a read of (account, date) counts for a transfer only if
--    read_at is later than the moment the transfer settled (for an
--    unresolved one: its last claim or answer) — or later than the end of
--    that date plus a non-negative grace, after which the bank books nothing
--    more for it (settlement.bookings_end). A read made earlier (another kind
--    sharing a loan account read it first; a simulator's statement that is
--    "final" at once while the date still books) is read again: the stage
--    waits (not_ready) and statements_to_read asks for it, instead of
--    matching against it and calling a booked transfer a missing_line.
--
-- 2. One matcher at a time: two reconcile runs matching at once both insert
--    the same line_match. See run_stage below for the lock and why it cannot
--    deadlock.

------------------------------------------------------------------------------
-- When reads count

-- The end of a Korean date (YYYYMMDD) plus the grace, never less than the end
-- of the date: after it the bank books nothing more under that date, so a
-- read made after it shows every booking of the date whatever we knew then.
-- With a non-negative reconcile_after this is statement_final_at.
create or replace function settlement.bookings_end(p_ymd text) returns timestamptz
language sql stable as $$
  select ((to_date(p_ymd, 'YYYYMMDD') + 1)::timestamp at time zone 'Asia/Seoul') + greatest(c.reconcile_after, interval '0')
  from settlement.config c where c.id
$$;

-- The read of (Bncd, Acno, date) that is later than p_after, if any (null
-- p_after: any read).
create or replace function settlement.read_after(p_bncd text, p_acno text, p_ymd text, p_after timestamptz) returns boolean
language sql stable as $$
  select exists (select 1 from settlement.statement_reads r
                 where r.bncd = p_bncd and r.acno = p_acno and r.ymd = p_ymd
                   and (p_after is null or r.read_at > p_after))
$$;

-- Per (account, date) of a day's scope (settlement.reconcile_scope): the time
-- a read must be later than to count for every transfer (and old attempt) of
-- the day sent on that date: when the last of them settled, or the date's
-- bookings_end if that is earlier. Null: none of them has settled (nothing
-- to prove yet; any read).
create or replace function settlement.reconcile_reads_needed(p_date date, p_kind settlement.kind)
returns table (bncd text, acno text, ymd text, read_after timestamptz)
language sql stable as $$
  select a.bank_code, a.account_no, x.ymd, max(least(x.at, settlement.bookings_end(x.ymd)))
  from settlement.transfers t
  cross join lateral (
    select t.tsymd as ymd, t.settled_at as at
    union all
    select at.tsymd, at.at from settlement.transfer_attempts at where at.transfer_id = t.id) x
  cross join lateral (values (t.from_account), (t.to_account)) v(account_no)
  join settlement.accounts a on a.account_no = v.account_no
  where t.business_date = p_date and t.kind = p_kind and x.ymd is not null and a.bank_code in ('011', '012')
  group by 1, 2, 3
$$;
comment on function settlement.reconcile_reads_needed is 'The (account, date) statements a day is reconciled against, each with the time a read must be later than to count (its transfers settled by then).';

-- An unresolved transfer: the settlement-account side whose statement decides
-- it, and the time a read must be later than to prove it unbooked: the last
-- moment a request under its number may have been in flight (sent_until: its
-- last claim's lease, or when the attempt holding it answered; its last
-- claim, lease or answer for rows without one) plus the grace; or, if
-- earlier, the end of its date plus the grace but never less than
-- config.max_attempt (no send starts after the end of its date: the bank
-- client checks the database's date before every send, and a request sent
-- just before midnight is booked within the longest attempt).
create or replace function settlement.unresolved_read_need(t settlement.transfers)
returns table (bncd text, acno text, ymd text, read_after timestamptz)
language sql stable as $$
  select a.bank_code, a.account_no, t.tsymd,
         least(greatest(t.sent_until, t.unresolved_since, t.updated_at, t.claimed_until) + greatest(c.reconcile_after, interval '0'),
               ((to_date(t.tsymd, 'YYYYMMDD') + 1)::timestamp at time zone 'Asia/Seoul') + greatest(c.reconcile_after, c.max_attempt))
  from settlement.accounts a cross join settlement.config c
  where c.id and a.account_no = case t.purpose when 'payout' then t.to_account else t.from_account end
$$;

-- Why the statement has not decided an unresolved transfer (null: it can
-- decide now, or the transfer is not unresolved). decide_unresolved acts on
-- exactly these conditions; settle failures and payout_failures show them.
create or replace function settlement.undecided_why(t settlement.transfers) returns text
language plpgsql stable as $$
declare
  n record;
  v_line bigint;
begin
  if t.state <> 'sending' or t.unresolved_since is null or t.tsymd is null then
    return null;
  end if;
  if t.claimed_until >= settlement_meta.now() then
    return format('an attempt holds it until %s (its result check may still answer)', settlement.local_time(t.claimed_until));
  end if;
  select * into n from settlement.unresolved_read_need(t);
  if n.bncd is null or n.bncd not in ('011', '012') then
    return format('its account is not at NH: no statement can decide it; a person decides with settlement.decide_transfer(%s, booked, evidence)', t.id);
  end if;
  if settlement_meta.now() < settlement.statement_final_at(t.tsymd) then
    return format('the statement of %s is final at %s', t.tsymd, settlement.local_time(settlement.statement_final_at(t.tsymd)));
  end if;
  if n.read_after > settlement_meta.now() then
    return format('a request may have been in flight until %s: only a read after it proves anything', settlement.local_time(n.read_after));
  end if;
  if not settlement.read_after(n.bncd, n.acno, n.ymd, n.read_after) then
    return format('waiting for a read of the statement of %s on %s made after %s (the reconcile task reads it)', settlement.mask_account(n.acno), n.ymd, settlement.local_time(n.read_after));
  end if;
  if exists (select 1 from settlement.statement_lines sl
             where sl.ref_is_tuno = t.is_tuno and sl.ccyn = '0' and sl.bncd = n.bncd and sl.acno = n.acno) then
    return null;
  end if;
  select sl.id into v_line from settlement.statement_lines sl
  where sl.bncd = n.bncd and sl.acno = n.acno and sl.ref_is_tuno is null and sl.ccyn = '0' and sl.tram = t.amount
    and sl.trdd in (t.tsymd, settlement.ymd_add(t.tsymd, 1))
    and settlement.is_in(sl.mnrc_drot_dsnc) = (t.purpose = 'payout')
    and not exists (select 1 from settlement.line_matches m where m.line_id = sl.id and m.rule = 'fallback')
  order by sl.id limit 1;
  if found then
    return format('an unreferenced line of the same amount (%s KRW, statement line %s on %s) could be it: a person decides with settlement.decide_transfer(%s, booked, evidence)',
                  t.amount, v_line, settlement.mask_account(n.acno), t.id);
  end if;
  return null;
end $$;
comment on function settlement.undecided_why is 'Why the final statement has not decided an unresolved transfer yet (null: it can decide now).';

------------------------------------------------------------------------------
-- One matcher at a time.
--
-- line_matches are global (a line is matched once, whichever day runs first),
-- so two days matching at once can insert the same line. The matcher lock M
-- (a transaction-level advisory lock) serialises every run of stage_reconcile.
--
-- Why it cannot deadlock. A deadlock needs a cycle of waits, so some
-- transaction would have to wait for M while holding a lock another
-- transaction, itself holding or waiting behind M, needs. M is waited for in
-- exactly one place: run_stage('reconcile', ...), which in the service is
-- always the whole transaction (each runStage is one autocommit statement),
-- right after its non-waiting try of the stage's own advisory lock R(D, K)
-- and before any other lock: no stage row, no transfer row, no job-key row,
-- no journal row. R(reconcile, D, K) is only ever taken with
-- pg_try_advisory_xact_lock (run_stage, after_stage), so nobody waits for
-- it. Every other path that reaches stage_reconcile already holds locks
-- (withdraw done in finish_transfers holds the transfer row, the withdraw
-- lock and its stage row, and job-key rows; decide_unresolved holds transfer
-- rows): after_stage takes M there only with a try, and on failure leaves
-- the day to a stage job; stage_reconcile itself only re-takes M with a try.
-- So a waiter for M holds nothing anyone waits for, and M's holder can wait
-- for others (stage rows, transfer rows locked by claim_transfers, job-key
-- rows) without closing a cycle. Taken inside match_lines instead (after
-- lock_stage and add_job upserts), a withdraw finishing in finish_transfers
-- (holding job-key and stage rows) could wait for M while M's holder waited
-- for those rows. (The deadlock test/sql/order.test.ts showed while this was
-- written was another one, in add_register_jobs: see 60_registration.sql.)
create or replace function settlement.matcher_lock_key() returns bigint
language sql immutable as $$
  select ('x' || substr(md5('daily-settlement:reconcile-matcher'), 1, 16))::bit(64)::bigint
$$;

------------------------------------------------------------------------------
-- Statement reads the database asks for, and the credibility of an answer
-- (issue 22, item 4). The worker holds the bank token and reads the bank's
-- statements, but the database cannot see the bank: a stolen worker login
-- could write any statement. So record_statement takes a statement only as
-- the one answer to a read the database asked for itself (statement_requests,
-- made by statements_to_read / restore_statements, answered within
-- config.statement_answer_within), and an answer proves nothing unbooked
-- (no statement_reads row, so decide_unresolved and reconcile do not count
-- it) unless it shows every booking the ledger already knows on that account
-- in those dates: each succeeded transfer that touched it and settled at
-- least config.statement_lag before the read was asked (by our reference
-- DS<IsTuno>, or, for lines without one, as many lines of that direction and
-- amount as such transfers), and every line an earlier read stored there
-- that the bank booked (Trdd/Txtm, KST) that long before the read. An
-- answer that is not credible is refused: its lines are kept (evidence of a
-- booking is never thrown away), the request records what it lacked, and an
-- alert opens (statement_refused); record_statement answers null and the
-- worker's code raises ST121 (ST120 for an answer to no open request, which
-- stores nothing).

-- A read the database asks for: (account, dates), asked now. Internal.
create or replace function settlement.ask_statement(p_bncd text, p_acno text, p_ymd text, p_to_ymd text) returns timestamptz
language sql as $$
  insert into settlement.statement_requests as r (bncd, acno, ymd, to_ymd, asked_at, answer_by)
  select p_bncd, p_acno, p_ymd, p_to_ymd, settlement_meta.now(), settlement_meta.now() + c.statement_answer_within
  from settlement.config c where c.id
  on conflict (bncd, acno, ymd, asked_at) do update set to_ymd = excluded.to_ymd
  returning r.asked_at
$$;

-- What an answer to a read of (Bncd, Acno) from p_ymd to p_to_ymd asked at
-- p_asked_at lacks of what the ledger knows: the succeeded transfers not
-- shown, and how many stored lines of those dates are not in it.
create or replace function settlement.statement_lacks(p_bncd text, p_acno text, p_ymd text, p_to_ymd text, p_asked_at timestamptz, p_lines jsonb)
returns table (transfers bigint[], lines integer)
language sql stable as $$
  with shown as (
    select x.tuno, x.ccyn, x.mnrc_drot_dsnc, x.tram::bigint as tram,
           coalesce(substring(x.bnpr_cntn from 'DS([0-9]{18})'), substring(x.smr from 'DS([0-9]{18})')) as ref
    from jsonb_to_recordset(p_lines) as x(tuno text, ccyn text, mnrc_drot_dsnc text, tram text, bnpr_cntn text, smr text)),
  known as (
    select t.id, t.is_tuno, t.amount, t.to_account = p_acno as inward
    from settlement.transfers t
    cross join settlement.config c
    join settlement.accounts a on a.account_no = p_acno and a.bank_code = p_bncd
    where c.id and t.state = 'succeeded' and (t.to_account = p_acno or t.from_account = p_acno)
      and t.tsymd between p_ymd and p_to_ymd
      and to_char(t.settled_at at time zone 'Asia/Seoul', 'YYYYMMDD') <= p_to_ymd
      and t.settled_at <= p_asked_at - c.statement_lag
      and not exists (select 1 from settlement.breaks b where b.transfer_id = t.id and b.account_no = p_acno and b.problem = 'missing_line' and b.resolved_at is not null)),
  unreferenced as (
    select k.*, row_number() over (partition by k.inward, k.amount order by k.id) as n
    from known k
    where not exists (select 1 from shown s where s.ref = k.is_tuno and s.ccyn = '0' and s.tram = k.amount and settlement.is_in(s.mnrc_drot_dsnc) = k.inward))
  select coalesce(array_agg(u.id order by u.id), '{}'),
         (select count(*)::int from settlement.statement_lines l
          cross join settlement.config c
          where c.id and l.bncd = p_bncd and l.acno = p_acno and l.trdd between p_ymd and p_to_ymd
            -- booked (by the bank's own time) at least statement_lag before the read was asked
            and (to_timestamp(l.trdd || l.txtm, 'YYYYMMDDHH24MISS')::timestamp at time zone 'Asia/Seoul') <= p_asked_at - c.statement_lag
            and not exists (select 1 from shown s where s.tuno = l.tuno))
  from unreferenced u
  where u.n > (select count(*) from shown s where s.ref is null and s.ccyn = '0' and s.tram = u.amount and settlement.is_in(s.mnrc_drot_dsnc) = u.inward)
$$;

-- Opens a statement_refused alert (kept: the caller is told by a null answer).
create or replace function settlement.alert_statement_refused(p_bncd text, p_acno text, p_ymd text, p_why text) returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.alerts (key, problem, message, cleared_at)
  values (format('statement_refused:%s:%s:%s', settlement.mask_account(p_acno), p_ymd, txid_current()), 'statement_refused',
          format('a statement of %s-%s from %s was refused: %s. A statement proves nothing unbooked unless it answers a read the database asked for and shows what the ledger knows; someone holding the worker login may be forging one (check who called: statement_requests.asked_by, the database log), or the bank''s statement lacks a booking (see settlement.reconciliation_breaks).',
                 coalesce(p_bncd, '?'), coalesce(settlement.mask_account(p_acno), '?'), coalesce(p_ymd, '?'), p_why),
          settlement_meta.now())
  returning id into v_id;
  perform settlement.add_alert_job(v_id);
end $$;

create or replace function settlement.statements_to_read()
returns table (bncd text, acno text, ymd text, to_ymd text, asked_at timestamptz)
language plpgsql as $$
#variable_conflict use_column
begin
  return query
  with needed as (
    select s.bncd, s.acno, s.ymd, s.read_after
    from settlement.stage_runs w
    join settlement.stage_runs r on r.business_date = w.business_date and r.kind = w.kind and r.stage = 'reconcile' and r.state <> 'done'
    cross join lateral settlement.reconcile_reads_needed(w.business_date, w.kind) s
    where w.stage = 'withdraw' and w.state = 'done'
    union all
    select n.bncd, n.acno, n.ymd, n.read_after
    from settlement.transfers t
    cross join lateral settlement.unresolved_read_need(t) n
    where t.state = 'sending' and t.unresolved_since is not null and t.tsymd is not null and n.bncd in ('011', '012')
      and n.read_after <= settlement_meta.now()
    union all
    -- the watch: each date once it is over (whatever the grace), read after that
    select w.bncd, w.acno, w.ymd, settlement.bookings_end(w.ymd)
    from settlement.watch_scope w
    where settlement.bookings_end(w.ymd) <= settlement_meta.now()),
  final as (
    select n.bncd, n.acno, n.ymd
    from needed n
    where settlement_meta.now() >= settlement.statement_final_at(n.ymd)
      and not settlement.read_after(n.bncd, n.acno, n.ymd, n.read_after)
    union
    -- before a withdrawal: the settlement account's statement shows the day's payouts (not final yet)
    select c.bncd, c.acno, c.ymd from settlement.confirm_reads_needed() c where c.due_at <= settlement_meta.now()),
  asked as (
    select f.bncd, f.acno, f.ymd, least(settlement.ymd_add(f.ymd, 1), settlement.bank_ymd()) as to_ymd
    from final f group by 1, 2, 3)
  select a.bncd, a.acno, a.ymd, a.to_ymd, settlement.ask_statement(a.bncd, a.acno, a.ymd, a.to_ymd)
  from asked a
  order by a.ymd, a.bncd, a.acno;
end $$;
comment on function settlement.statements_to_read is 'Reconcile task: the (Bncd, Acno, date) statements to read now (final, and not read since the transfers they prove settled; the watch''s dates once over; a settlement account whose payouts a withdrawal waits for), the end of the range to ask for, and asked_at. Each is a read request (statement_requests): pass it to record_statement unchanged, within config.statement_answer_within.';

create or replace function settlement.record_statement(p_bncd text, p_acno text, p_ymd text, p_to_ymd text, p_lines jsonb, p_asked_at timestamptz default null)
returns integer
language plpgsql as $$
declare
  r settlement.statement_requests;
  v_n integer;
  k record;
  v_why text;
begin
  if p_bncd is null or p_acno is null or p_ymd !~ '^[0-9]{8}$' or p_to_ymd !~ '^[0-9]{8}$' or jsonb_typeof(p_lines) is distinct from 'array' then
    perform settlement.raise_error('ST023', 'record_statement: bncd, acno, ymd, to_ymd (YYYYMMDD) and a JSON array of lines are required');
  end if;
  -- The one answer to a read the database asked for, in its time.
  select * into r from settlement.statement_requests q
  where q.bncd = p_bncd and q.acno = p_acno and q.ymd = p_ymd and q.to_ymd = p_to_ymd and q.asked_at = p_asked_at
  for update;
  if not found or r.answered_at is not null or settlement_meta.now() > r.answer_by then
    perform settlement.alert_statement_refused(p_bncd, p_acno, p_ymd,
      case when not found then 'it answers no read the database asked for (statements_to_read)'
           when r.answered_at is not null then format('read request %s was answered already', r.id)
           else format('read request %s could be answered until %s', r.id, settlement.local_time(r.answer_by)) end);
    return null;
  end if;
  select * into k from settlement.statement_lacks(p_bncd, p_acno, p_ymd, p_to_ymd, r.asked_at, p_lines);
  insert into settlement.statement_lines (bncd, acno, trdd, txtm, mnrc_drot_dsnc, tram, aftr_blnc, balance_sign, smr, hnis_cd, hnbr_cd, ccyn, tuno, bnpr_cntn)
  select p_bncd, p_acno, x.trdd, x.txtm, x.mnrc_drot_dsnc, x.tram::bigint, x.aftr_blnc::bigint, x.balance_sign, x.smr, x.hnis_cd, x.hnbr_cd, x.ccyn, x.tuno, x.bnpr_cntn
  from jsonb_to_recordset(p_lines) as x(trdd text, txtm text, mnrc_drot_dsnc text, tram text, aftr_blnc text, balance_sign text, smr text,
                                        hnis_cd text, hnbr_cd text, ccyn text, tuno text, bnpr_cntn text)
  on conflict (bncd, acno, trdd, tuno) do nothing;
  get diagnostics v_n = row_count;
  if cardinality(k.transfers) > 0 or k.lines > 0 then
    v_why := concat_ws('; ',
      case when cardinality(k.transfers) > 0 then format('it lacks %s transfer(s) the ledger knows were booked there (%s)', cardinality(k.transfers), array_to_string(k.transfers[1:5], ', ')) end,
      case when k.lines > 0 then format('it lacks %s line(s) an earlier read showed', k.lines) end);
    update settlement.statement_requests set answered_at = settlement_meta.now(), lines = jsonb_array_length(p_lines), refused = v_why, missing = k.transfers
    where id = r.id;
    perform settlement.alert_statement_refused(p_bncd, p_acno, p_ymd, v_why);
  else
    update settlement.statement_requests set answered_at = settlement_meta.now(), lines = jsonb_array_length(p_lines) where id = r.id;
    -- A read counts once its date was final when it was asked; a later read
    -- replaces an earlier one (it shows everything the earlier one did).
    if r.asked_at >= settlement.statement_final_at(p_ymd) then
      insert into settlement.statement_reads as s (bncd, acno, ymd, to_ymd, lines, read_at)
      values (p_bncd, p_acno, p_ymd, p_to_ymd, jsonb_array_length(p_lines), r.asked_at)
      on conflict (bncd, acno, ymd) do update set to_ymd = excluded.to_ymd, lines = excluded.lines, read_at = excluded.read_at
        where excluded.read_at > s.read_at;
    end if;
  end if;
  -- A withdrawal waiting for this statement looks again.
  perform settlement.add_stage_job('withdraw', d.business_date, d.kind)
  from (select distinct c.business_date, c.kind
        from settlement.withdraw_waiting_days() c
        where exists (select 1 from settlement.transfers t
                      where t.business_date = c.business_date and t.kind = c.kind and t.purpose = 'payout'
                        and t.to_account = p_acno and t.tsymd between p_ymd and p_to_ymd)) d;
  return case when v_why is null then v_n end;
end $$;
comment on function settlement.record_statement is 'Reconcile task: the one answer to a read the database asked for (statements_to_read''s request: the same account, dates and asked_at, within config.statement_answer_within): stores its lines (idempotent) and, if it shows every booking the ledger knows there (succeeded transfers settled config.statement_lag before the read, the lines earlier reads stored) and its date was final when asked, records (account, date) as read at asked_at. Returns the new lines, or null when refused (no such request: nothing stored; not credible: lines kept, the request records what it lacked); each refusal opens a statement_refused alert.';

------------------------------------------------------------------------------
-- Confirm proven by the bank (issue 22, item 4): before a kind's withdrawal
-- its payouts of the day must be on the settlement account's statement.

-- Days whose withdrawal waits for that proof: confirmed, not withdrawn, no withdrawal planned.
create or replace function settlement.withdraw_waiting_days()
returns table (business_date date, kind settlement.kind)
language sql stable as $$
  select c.business_date, c.kind from settlement.stage_runs c
  join settlement.stage_runs w on w.business_date = c.business_date and w.kind = c.kind and w.stage = 'withdraw' and w.state <> 'done'
  where c.stage = 'confirm' and c.state = 'done'
    and not exists (select 1 from settlement.transfers t where t.business_date = c.business_date and t.kind = c.kind and t.purpose = 'withdrawal')
$$;

-- Per succeeded payout of (D, K): is it on the settlement account's
-- statement? proven: a line with our reference DS<IsTuno> (Ccyn 0, in, its
-- amount, on its Tsymd or the day after; NH prints DractOtlt on the
-- contracted account too in our reading, not published), or, for lines
-- without a reference, as many such lines of that amount as payouts to that
-- account on that date that have no referenced line (n-th with n-th, in id
-- order). vouched: its missing_line break on that account was explained by a
-- person (resolve_break).
create or replace function settlement.payout_proof(p_date date, p_kind settlement.kind)
returns table (transfer_id bigint, bncd text, acno text, ymd text, amount bigint, settled_at timestamptz, proven boolean, vouched boolean)
language sql stable as $$
  with p as (
    select t.id, t.is_tuno, a.bank_code, t.to_account, t.tsymd, t.amount, t.settled_at,
           exists (select 1 from settlement.statement_lines l
                   where l.ref_is_tuno = t.is_tuno and l.bncd = a.bank_code and l.acno = t.to_account and l.ccyn = '0'
                     and l.tram = t.amount and settlement.is_in(l.mnrc_drot_dsnc) and l.trdd in (t.tsymd, settlement.ymd_add(t.tsymd, 1))) as referenced
    from settlement.transfers t
    join settlement.accounts a on a.account_no = t.to_account
    where t.business_date = p_date and t.kind = p_kind and t.purpose = 'payout' and t.state = 'succeeded'),
  -- every payout to those accounts on those dates without a referenced line, ranked
  u as (
    select t.id, row_number() over (partition by t.to_account, t.tsymd, t.amount order by t.id) as n
    from settlement.transfers t
    join settlement.accounts a on a.account_no = t.to_account
    where t.purpose = 'payout' and t.state = 'succeeded'
      and (t.to_account, t.tsymd) in (select p.to_account, p.tsymd from p where not p.referenced)
      and not exists (select 1 from settlement.statement_lines l
                      where l.ref_is_tuno = t.is_tuno and l.bncd = a.bank_code and l.acno = t.to_account and l.ccyn = '0'
                        and l.tram = t.amount and settlement.is_in(l.mnrc_drot_dsnc) and l.trdd in (t.tsymd, settlement.ymd_add(t.tsymd, 1))))
  select p.id, p.bank_code, p.to_account, p.tsymd, p.amount, p.settled_at,
         p.referenced or coalesce(u.n <= (select count(*) from settlement.statement_lines l
                                          where l.bncd = p.bank_code and l.acno = p.to_account and l.ref_is_tuno is null and l.ccyn = '0'
                                            and l.tram = p.amount and settlement.is_in(l.mnrc_drot_dsnc) and l.trdd in (p.tsymd, settlement.ymd_add(p.tsymd, 1))), false),
         exists (select 1 from settlement.breaks b where b.transfer_id = p.id and b.account_no = p.to_account and b.problem = 'missing_line' and b.resolved_at is not null)
  from p left join u on u.id = p.id
$$;
comment on function settlement.payout_proof is 'Per succeeded payout of (business_date, kind): whether the settlement account''s statement shows it (proven), or a person explained its missing_line break (vouched).';

-- The settlement-account statements the waiting withdrawals need read, and
-- when: at once after the last unproven payout settled, then every
-- statement_lag / 8 (at least a second, at most 30 s: a withdrawal never
-- waits minutes for a read that would show its payouts) until a read asked
-- statement_lag after it (which decides: a payout still not shown is a break).
create or replace function settlement.confirm_reads_needed()
returns table (bncd text, acno text, ymd text, due_at timestamptz)
language sql stable as $$
  with m as (
    select pp.bncd, pp.acno, pp.ymd, max(pp.settled_at) as last_settled
    from settlement.withdraw_waiting_days() d
    cross join lateral settlement.payout_proof(d.business_date, d.kind) pp
    where not pp.proven and not pp.vouched and pp.bncd in ('011', '012')
    group by 1, 2, 3),
  g as (
    select m.*, m.last_settled + c.statement_lag as deadline, greatest(least(c.statement_lag / 8, interval '30 seconds'), interval '1 second') as poll,
           (select max(q.asked_at) from settlement.statement_requests q where q.bncd = m.bncd and q.acno = m.acno and q.ymd = m.ymd and q.answered_at is not null) as answered,
           (select max(q.asked_at) from settlement.statement_requests q where q.bncd = m.bncd and q.acno = m.acno and q.ymd = m.ymd) as asked
    from m cross join settlement.config c where c.id)
  select g.bncd, g.acno, g.ymd,
         case when g.answered is null or g.answered < g.last_settled
              -- no answer since they settled: read now (a request made since, unanswered, is retried after a poll)
              then case when g.asked >= g.last_settled then g.asked + g.poll else g.last_settled end
              else least(g.deadline, greatest(g.asked, g.answered) + g.poll) end
  from g
  where g.answered is null or g.answered < g.deadline
$$;
comment on function settlement.confirm_reads_needed is 'Withdraw: the settlement-account statements to read before a withdrawal (its payouts not shown yet), each with when the read is due.';

-- Reads for a withdrawal run in the reconcile queue, at the time they are due.
create or replace function settlement.add_confirm_read_job(p_run_at timestamptz) returns void
language sql as $$
  select settlement.add_keyed_job('reconcile', '{}'::json, 'reconcile:confirm', 'replace', p_run_at, 25, 'settlement:reconcile')
$$;

-- The withdraw stage's check (stage_withdraw, before it plans the
-- withdrawal): null when every succeeded payout of (D, K) is on the
-- settlement account's statement (or vouched); else not_ready while a read
-- made statement_lag after a payout settled has not shown it yet (the read
-- is asked for), or blocked with a missing_line break for each payout such a
-- read did not show: no other money leaves the account for it.
create or replace function settlement.withdraw_unproven(p_date date, p_kind settlement.kind) returns settlement.stage_result
language plpgsql as $$
declare
  v_lag interval;
  v_missing bigint;
  v_broken bigint;
  v_detail text;
  v_due timestamptz;
  v_until timestamptz;
  x record;
begin
  select c.statement_lag into v_lag from settlement.config c where c.id;
  create temporary table if not exists pg_temp.unproven (transfer_id bigint, bncd text, acno text, ymd text, amount bigint, settled_at timestamptz, decided_by timestamptz) on commit drop;
  truncate pg_temp.unproven;
  insert into pg_temp.unproven
  select pp.transfer_id, pp.bncd, pp.acno, pp.ymd, pp.amount, pp.settled_at,
         case when pp.bncd not in ('011', '012') then settlement_meta.now()
              else (select min(q.asked_at) from settlement.statement_requests q
                    where q.bncd = pp.bncd and q.acno = pp.acno and q.ymd = pp.ymd and q.answered_at is not null
                      and q.asked_at >= pp.settled_at + v_lag) end
  from settlement.payout_proof(p_date, p_kind) pp
  where not pp.proven and not pp.vouched;
  select count(*), count(*) filter (where decided_by is not null), max(settled_at) + v_lag into v_missing, v_broken, v_until from pg_temp.unproven;
  if v_missing = 0 then
    return null;
  end if;
  if v_broken > 0 then
    for x in select * from pg_temp.unproven u where u.decided_by is not null order by u.transfer_id loop
      insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, account_no, amount, detail)
      select p_date, p_kind, 'missing_line', t.id, t.is_tuno, x.acno, t.amount,
             case when x.bncd not in ('011', '012')
                  then format('payout %s of %s KRW (IsTuno %s) is recorded succeeded, but its settlement account %s is not at NH: no statement can show it before the withdrawal; a person checks and explains it (settlement.resolve_break)', t.id, t.amount, t.is_tuno, settlement.mask_account(x.acno))
                  else format('payout %s of %s KRW (IsTuno %s, sent %s) is recorded succeeded, but has no line on the statement of %s read at %s (config.statement_lag %s after it settled): the withdrawal waits; the bank may never have booked it', t.id, t.amount, t.is_tuno, t.tsymd, settlement.mask_account(x.acno), settlement.local_time(x.decided_by), v_lag) end
      from settlement.transfers t where t.id = x.transfer_id
      on conflict do nothing;
    end loop;
    v_detail := format('%s payout(s) recorded succeeded have no line on the statement of the settlement account (%s KRW): missing_line breaks in settlement.reconciliation_breaks; nothing is withdrawn until each shows on the statement or a person explains it (settlement.resolve_break)',
                       v_broken, (select sum(amount) from pg_temp.unproven where decided_by is not null));
    perform settlement.set_stage(p_date, p_kind, 'withdraw', 'blocked', v_detail);
    return settlement.outcome('blocked'::text, v_detail);
  end if;
  select min(c.due_at) into v_due from settlement.confirm_reads_needed() c where (c.bncd, c.acno, c.ymd) in (select u.bncd, u.acno, u.ymd from pg_temp.unproven u);
  perform settlement.add_confirm_read_job(case when v_due > settlement_meta.now() then v_due end);
  v_detail := format('waiting for the settlement account''s statement to show %s payout(s) of %s KRW (read again until %s, config.statement_lag %s; then a break)',
                     v_missing, (select sum(amount) from pg_temp.unproven), settlement.local_time(v_until), v_lag);
  update settlement.stage_runs set detail = v_detail, updated_at = settlement_meta.now()
  where business_date = p_date and kind = p_kind and stage = 'withdraw';
  return settlement.outcome('not_ready'::text, v_detail);
end $$;
comment on function settlement.withdraw_unproven is 'Withdraw: null when every succeeded payout of the day shows on the settlement account''s statement (or a person explained its break); else not_ready (waiting up to config.statement_lag, the read asked for) or blocked with a missing_line break per payout a read made after the lag did not show.';

create or replace trigger statement_lines_append_only before update or delete on settlement.statement_lines
  for each row execute function settlement.journal_append_only();

-- The (business_date, kind) a line belongs to: its transfer's, else the
-- first day (by date, then kind) whose scope has that account on that date
-- (or on the day before: the tail read after midnight).
create or replace function settlement.line_owner(p_line_id bigint)
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

-- An orphan's journal entry: each of our bank accounts the movement touched
-- mirrors the bank; the other side is suspense:<kind>.
create or replace function settlement.journal_orphan(p_break bigint, p_date date, p_kind settlement.kind, p_to text, p_from text, p_amount bigint, p_memo text)
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
create or replace function settlement.record_booked_orphan(t settlement.transfers, p_is_tuno text, p_processed_at text) returns void
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
-- Matching (the rule at the top of this file). Global over the lines of the
-- given (account, date) scope: a line is matched once, whichever day runs first.
create or replace function settlement.match_lines(p_date date, p_kind settlement.kind) returns integer
language plpgsql as $$
begin
  create temporary table if not exists pg_temp.rec_lines (id bigint primary key) on commit drop;
  truncate pg_temp.rec_lines;
  insert into pg_temp.rec_lines
  select distinct l.id from settlement.reconcile_scope s
  join settlement.statement_lines l on l.bncd = s.bncd and l.acno = s.acno and l.trdd in (s.ymd, settlement.ymd_add(s.ymd, 1))
  where s.business_date = p_date and s.kind = p_kind
    and not exists (select 1 from settlement.line_matches m where m.line_id = l.id);
  return settlement.match_line_set();
end $$;

-- The matching rule (the header of this file) for the lines in
-- pg_temp.rec_lines (none of them matched yet): a day's (match_lines) or the
-- watch's (match_watch). Returns how many lines it matched.
create or replace function settlement.match_line_set() returns integer
language plpgsql as $$
declare
  v_n integer := 0;
  v_k integer;
  c record;
  o bigint;
begin
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

  -- 4. Cancellations, in (Trdd, Txtm, Tuno) order: one that carries our
  --    reference is paired with the first line of that reference on the same
  --    account; one without is paired with nothing (NH's statement names no
  --    original line, and an amount is not proof): a break for a person.
  for c in
    select l.* from pg_temp.rec_lines r join settlement.statement_lines l on l.id = r.id
    where l.ccyn = '1' order by l.trdd, l.txtm, l.tuno
  loop
    o := null;
    if c.ref_is_tuno is not null then
      select ol.id into o from settlement.statement_lines ol
      where ol.bncd = c.bncd and ol.acno = c.acno and ol.ccyn = '0' and ol.ref_is_tuno = c.ref_is_tuno
        and not exists (select 1 from settlement.line_matches m where m.cancels_line_id = ol.id)
      order by ol.trdd, ol.txtm, ol.tuno
      limit 1;
    end if;
    if o is not null and exists (select 1 from settlement.line_matches m where m.line_id = o) then
      insert into settlement.line_matches (line_id, rule, transfer_id, is_tuno, cancels_line_id)
      select c.id, 'cancellation', m.transfer_id, m.is_tuno, o from settlement.line_matches m where m.line_id = o;
    else
      insert into settlement.line_matches (line_id, rule, cancels_line_id) values (c.id, 'cancellation', o);
    end if;
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;

------------------------------------------------------------------------------
-- Only the statement proves non-booking, counting only a read made after the
-- last moment a request of the transfer may have been in flight plus the
-- grace (unresolved_read_need); anything else is said by undecided_why.
create or replace function settlement.decide_unresolved()
returns table (transfer_id bigint, is_tuno text, decision text)
language plpgsql as $$
#variable_conflict use_column
declare
  t settlement.transfers;
  l settlement.statement_lines;
  n record;
  v_again boolean := false;
  v_next timestamptz;
begin
  for t in
    select x.* from settlement.transfers x
    where x.state = 'sending' and x.unresolved_since is not null and x.tsymd is not null
      and (x.claimed_until is null or x.claimed_until < settlement_meta.now())
    order by x.id
    for update skip locked
  loop
    select * into n from settlement.unresolved_read_need(t);
    if n.bncd is null or n.bncd not in ('011', '012') or settlement_meta.now() < settlement.statement_final_at(t.tsymd) then
      continue;
    end if;
    -- A request may still be in flight: look again once it cannot be.
    if n.read_after > settlement_meta.now() then
      v_next := least(v_next, n.read_after);
      continue;
    end if;
    -- The last read predates it: the next run (shortly, below) reads again and decides.
    if not settlement.read_after(n.bncd, n.acno, n.ymd, n.read_after) then
      v_again := true;
      continue;
    end if;
    select * into l from settlement.statement_lines sl
    where sl.ref_is_tuno = t.is_tuno and sl.ccyn = '0' and sl.bncd = n.bncd and sl.acno = n.acno
    order by sl.trdd, sl.txtm, sl.tuno limit 1;
    if found then
      perform settlement.take_booking_evidence(t.id, t.is_tuno, l.trdd || l.txtm, 'statement', l.id,
        format('line %s (Tuno %s) on the statement of %s %s names DS%s', l.id, l.tuno, settlement.mask_account(l.acno), l.trdd, t.is_tuno));
      transfer_id := t.id; is_tuno := t.is_tuno; decision := 'succeeded';
      return next;
      continue;
    end if;
    -- An unreferenced line that could be this transfer: a person decides (undecided_why says so).
    if settlement.undecided_why(t) is not null then
      continue;
    end if;
    insert into settlement.transfer_attempts (transfer_id, is_tuno, tsymd, amount, outcome, code, message)
    values (t.id, t.is_tuno, t.tsymd, t.amount, 'failed', 'not_in_statement',
            format('no line with DS%s on the final statement of %s %s', t.is_tuno, settlement.mask_account(n.acno), t.tsymd));
    update settlement.transfers x
    set state = 'pending', attempt = x.attempt + 1, is_tuno = settlement.next_is_tuno(), tsymd = null,
        claimed_by = null, claimed_until = null, claim_token = null, sent_until = null,
        unresolved_since = null, unresolved_reason = null, updated_at = settlement_meta.now()
    where x.id = t.id;
    perform settlement.add_transfer_jobs(array[t.id]);
    transfer_id := t.id; is_tuno := t.is_tuno; decision := 'not_booked';
    return next;
  end loop;
  -- Also when one is claimed right now (a result check in progress): once
  -- it is answered, it is decided here, not at the next crontab tick.
  if v_again or exists (select 1 from settlement.transfers x
                        where x.state = 'sending' and x.unresolved_since is not null and x.tsymd is not null
                          and x.claimed_until >= settlement_meta.now() and settlement_meta.now() >= settlement.statement_final_at(x.tsymd)) then
    perform settlement.add_reconcile_job(settlement_meta.now() + interval '3 seconds');
  elsif v_next is not null then
    perform settlement.add_reconcile_job(v_next + interval '1 second');
  end if;
end $$;
comment on function settlement.decide_unresolved is 'Reconcile task: decides unresolved transfers by the final statement of their date, read after the last moment a request of theirs may have been in flight plus the grace (line with the reference: succeeded, the line kept as evidence; none: re-planned under a new IsTuno with its job). settlement.undecided_why says why one is not decided.';

------------------------------------------------------------------------------
-- Breaks: a transfer's side checked only against a read made after it
-- settled (the stage waits for one; this is the same rule, kept here too).
-- Orphans and cancellations among the lines of pg_temp.break_lines (each
-- with the day and kind that owns it when line_owner knows none: the
-- watch's), for the day (p_date, p_kind) and for days already reconciled
-- (late evidence: a break of that day, which breaks_reopen_day reopens).
-- A line no transfer owns (it matches nothing, names none of ours, cancels a
-- line nobody can name) is a break at once, whichever day's reconcile finds
-- it, owned by line_owner's day even if that day has not reconciled yet:
-- nothing that day does later can explain it, and a day that shares the
-- statement must not look DONE while the line is in no break.
create or replace function settlement.detect_line_breaks(p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
declare
  r record;
  v_id bigint;
begin
  -- Orphans: lines of ours that name no succeeded transfer's current number.
  for r in
    select l.*, m.rule, m.is_tuno as m_is_tuno, t.id as t_id, t.is_tuno as t_is_tuno, t.state as t_state, o.business_date as d, o.kind as k, a.account_no
    from pg_temp.break_lines c
    join settlement.line_matches m on m.line_id = c.id
    join settlement.statement_lines l on l.id = m.line_id
    left join settlement.transfers t on t.id = m.transfer_id
    join settlement.accounts a on a.account_no = l.acno and a.bank_code = l.bncd
    cross join lateral (select coalesce(lo.business_date, c.owner_date) as business_date, coalesce(lo.kind, c.owner_kind) as kind
                        from settlement.line_owner(l.id) lo) o
    where m.rule in ('reference', 'duplicate', 'unknown')
      and (m.rule <> 'reference' or t.id is null or m.is_tuno <> t.is_tuno or t.state in ('pending', 'failed'))
      and ((o.business_date = p_date and o.kind = p_kind) or t.id is null
           or settlement.stage_state_of(o.business_date, o.kind, 'reconcile') in ('done', 'blocked'))
      and not exists (select 1 from settlement.breaks b where b.line_id = l.id and b.problem = 'orphan')
      -- a booking recorded as an orphan at once (finish_transfers) already has its entry
      and not exists (select 1 from settlement.breaks b where b.problem = 'orphan' and b.line_id is null and b.is_tuno = m.is_tuno and m.rule = 'reference')
  loop
    insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, line_id, account_no, amount, detail)
    values (r.d, r.k, 'orphan', r.t_id, r.m_is_tuno, r.id, r.account_no, r.tram,
            format('%s %s KRW on %s %s %s (Tuno %s, %s) %s: money in suspense',
                   case when settlement.is_in(r.mnrc_drot_dsnc) then 'in' else 'out' end, r.tram, settlement.mask_account(r.account_no), r.trdd, r.txtm, r.tuno,
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
         format('cancelled (Ccyn 1) %s KRW on %s %s %s (Tuno %s)%s', l.tram, settlement.mask_account(l.acno), l.trdd, l.txtm, l.tuno,
                case when ol.id is not null then format(' of line %s (Tuno %s)', ol.id, ol.tuno)
                     when l.ref_is_tuno is not null then format(' naming DS%s, with no original line found', l.ref_is_tuno)
                     else ': the line has no reference to its original (an amount is not proof); a person pairs it' end)
  from pg_temp.break_lines c
  join settlement.line_matches m on m.line_id = c.id
  join settlement.statement_lines l on l.id = m.line_id
  left join settlement.statement_lines ol on ol.id = m.cancels_line_id
  cross join lateral (select coalesce(lo.business_date, c.owner_date) as business_date, coalesce(lo.kind, c.owner_kind) as kind
                      from settlement.line_owner(coalesce(ol.id, l.id)) lo) o
  where m.rule = 'cancellation' and o.business_date is not null
    and ((o.business_date = p_date and o.kind = p_kind) or m.transfer_id is null
         or settlement.stage_state_of(o.business_date, o.kind, 'reconcile') in ('done', 'blocked'))
  on conflict do nothing;

end $$;

create or replace function settlement.detect_breaks(p_date date, p_kind settlement.kind) returns void
language plpgsql as $$
begin
  -- Orphans and cancellations: only the lines of (D, K)'s statements (its
  -- scope's accounts on its dates and the day after, as match_lines) can
  -- belong to (D, K): the candidates are taken from those first, and
  -- line_owner (which says which day and kind a line belongs to) runs for
  -- them alone, not for every line ever matched.
  create temporary table if not exists pg_temp.break_lines (id bigint primary key, owner_date date, owner_kind settlement.kind) on commit drop;
  truncate pg_temp.break_lines;
  insert into pg_temp.break_lines (id)
  select distinct l.id
  from settlement.reconcile_scope s
  join settlement.statement_lines l on l.bncd = s.bncd and l.acno = s.acno and l.trdd in (s.ymd, settlement.ymd_add(s.ymd, 1))
  where s.business_date = p_date and s.kind = p_kind;
  perform settlement.detect_line_breaks(p_date, p_kind);

  -- Each succeeded transfer of (D, K): one line with the right direction and
  -- amount on each side whose statement was read after the transfer settled.
  insert into settlement.breaks (business_date, kind, problem, transfer_id, is_tuno, account_no, amount, detail)
  select t.business_date, t.kind, case when x.lines = 0 then 'missing_line' else 'mismatch' end, t.id, t.is_tuno, v.acno, t.amount,
         case when x.lines = 0 then format('%s %s of %s KRW (IsTuno %s, sent %s) has no line on the statement of %s', t.purpose, t.id, t.amount, t.is_tuno, t.tsymd, settlement.mask_account(v.acno))
              else format('%s %s of %s KRW (IsTuno %s): the statement of %s shows %s', t.purpose, t.id, t.amount, t.is_tuno, settlement.mask_account(v.acno), x.shown) end
  from settlement.transfers t
  cross join lateral (values (t.to_account, true), (t.from_account, false)) v(acno, inward)
  join settlement.accounts a on a.account_no = v.acno
  cross join lateral (
    select count(*) as lines,
           count(*) filter (where l.tram = t.amount and settlement.is_in(l.mnrc_drot_dsnc) = v.inward) as good,
           string_agg(format('%s %s KRW', case when settlement.is_in(l.mnrc_drot_dsnc) then 'in' else 'out' end, l.tram), ', ') as shown
    from settlement.line_matches m join settlement.statement_lines l on l.id = m.line_id
    where m.transfer_id = t.id and m.is_tuno = t.is_tuno and m.rule in ('reference', 'fallback') and l.acno = v.acno and l.bncd = a.bank_code) x
  where t.business_date = p_date and t.kind = p_kind and t.state = 'succeeded' and x.good <> 1
    and settlement.read_after(a.bank_code, a.account_no, t.tsymd, least(t.settled_at, settlement.bookings_end(t.tsymd)))
  on conflict do nothing;
end $$;

-- The watch's matcher (see watch_scope): the lines of watched (account,
-- date)s read after the date was over that no day has matched, except those
-- an open day's reconcile will match (its scope's accounts on its dates and
-- the day after), by the same rules; then the breaks of the days they belong
-- to. One matcher at a time (the matcher lock; busy: nothing now, the next
-- reconcile run does it). Returns the lines it matched.
create or replace function settlement.match_watch() returns integer
language plpgsql as $$
declare
  v_n integer := 0;
begin
  if not pg_try_advisory_xact_lock(settlement.matcher_lock_key()) then
    return 0;
  end if;
  create temporary table if not exists pg_temp.break_lines (id bigint primary key, owner_date date, owner_kind settlement.kind) on commit drop;
  truncate pg_temp.break_lines;
  insert into pg_temp.break_lines (id, owner_date, owner_kind)
  select distinct on (l.id) l.id, w.business_date, w.kind
  from settlement.watch_scope w
  join settlement.statement_lines l on l.bncd = w.bncd and l.acno = w.acno and l.trdd = w.ymd
  where settlement.read_after(w.bncd, w.acno, w.ymd, settlement.bookings_end(w.ymd))
    and not exists (select 1 from settlement.line_matches m where m.line_id = l.id)
    and not exists (select 1 from settlement.reconcile_scope s
                    join settlement.stage_runs r on r.business_date = s.business_date and r.kind = s.kind and r.stage = 'reconcile' and r.state not in ('done', 'blocked')
                    where s.bncd = l.bncd and s.acno = l.acno and l.trdd in (s.ymd, settlement.ymd_add(s.ymd, 1)))
  -- the latest watched day before the line owns it
  order by l.id, w.business_date desc, w.kind;
  if found then
    create temporary table if not exists pg_temp.rec_lines (id bigint primary key) on commit drop;
    truncate pg_temp.rec_lines;
    insert into pg_temp.rec_lines select id from pg_temp.break_lines;
    v_n := settlement.match_line_set();
    perform settlement.detect_line_breaks(null, null);
  end if;
  -- The horizon (watch_state): every watched date that is over was read
  -- after it was over, and its lines are matched (above): the watch may
  -- count its days from now.
  if not exists (select 1 from settlement.watch_scope w
                 where settlement.bookings_end(w.ymd) <= settlement_meta.now()
                   and not settlement.read_after(w.bncd, w.acno, w.ymd, settlement.bookings_end(w.ymd))) then
    insert into settlement.watch_state (id, read_through) values (true, settlement_meta.now())
    on conflict (id) do update set read_through = greatest(excluded.read_through, settlement.watch_state.read_through);
  end if;
  return v_n;
end $$;
comment on function settlement.match_watch is 'Reconcile task: matches the new lines of the watched statements (settlement.watch_scope) no day matches, and opens the breaks of the reconciled days they belong to (late evidence reopens a day); moves the watch''s horizon (settlement.watch_state) to now once every watched date that is over was read. Returns the lines matched.';

create or replace function settlement.configure_statement_checks(p_lag interval, p_answer_within interval default null) returns void
language plpgsql as $$
begin
  if (p_lag is null and p_answer_within is null) or p_lag < interval '0' or p_lag > interval '1 day'
     or p_answer_within <= interval '0' or p_answer_within > interval '1 day' then
    perform settlement.raise_error('ST121', format('configure_statement_checks: statement_lag must be from 0 to 1 day and statement_answer_within more than 0 and at most 1 day (got %s, %s)',
                                                   coalesce(p_lag::text, 'null'), coalesce(p_answer_within::text, 'null')));
  end if;
  update settlement.config set statement_lag = coalesce(p_lag, statement_lag), statement_answer_within = coalesce(p_answer_within, statement_answer_within),
                               updated_at = settlement_meta.now() where id;
  perform settlement.audit('configure_statement_checks', (select jsonb_build_object('statement_lag', c.statement_lag::text, 'statement_answer_within', c.statement_answer_within::text)
                                                          from settlement.config c where c.id));
end $$;
comment on function settlement.configure_statement_checks is 'Operator: config.statement_lag (how long the bank may take to show a booking on a statement: 0 to 1 day) and config.statement_answer_within (how long a statement read request may be answered); null keeps one. ST121 otherwise. Audited.';

create or replace function settlement.configure_statement_watch(p_watch interval) returns void
language plpgsql as $$
begin
  if p_watch is null or p_watch < interval '0' or p_watch > interval '366 days' then
    perform settlement.raise_error('ST024', format('configure_statement_watch: the watch must be an interval from 0 to 366 days (got %s)', coalesce(p_watch::text, 'null')));
  end if;
  update settlement.config set statement_watch = p_watch, updated_at = settlement_meta.now() where id;
  perform settlement.audit('configure_statement_watch', jsonb_build_object('statement_watch', p_watch::text));
end $$;
comment on function settlement.configure_statement_watch is 'Operator: how long after its last date a reconciled day''s settlement account is watched for late evidence (0: not at all; at most 366 days). ST024 otherwise. Audited.';

------------------------------------------------------------------------------
-- The stage: matches only when every statement of the day's scope was
-- read after the transfers it proves settled; else asks for the reads.
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
  -- The matcher lock (see run_stage): held already on every path that gets
  -- here (re-entrant); never waited for here.
  if not pg_try_advisory_xact_lock(settlement.matcher_lock_key()) then
    perform settlement.add_stage_job('reconcile', p_date, p_kind);
    return settlement.outcome('busy'::text, 'another reconcile is matching; this one runs again after it');
  end if;
  if settlement.lock_stage(p_date, p_kind, 'reconcile') = 'done' then
    return settlement.outcome('already_done'::text, 'reconciled earlier');
  end if;
  select s.ymd, settlement.statement_final_at(s.ymd) as final_at into v_wait
  from settlement.reconcile_scope s
  where s.business_date = p_date and s.kind = p_kind and settlement_meta.now() < settlement.statement_final_at(s.ymd)
  order by s.ymd desc limit 1;
  if found then
    perform settlement.add_stage_job('reconcile', p_date, p_kind, v_wait.final_at);
    return settlement.outcome('not_ready'::text, format('the statement of %s is final at %s (config.reconcile_after)', v_wait.ymd, v_wait.final_at));
  end if;
  select count(*) into v_unread from settlement.reconcile_reads_needed(p_date, p_kind) s
  where not settlement.read_after(s.bncd, s.acno, s.ymd, s.read_after);
  if v_unread > 0 then
    perform settlement.add_reconcile_job();
    return settlement.outcome('not_ready'::text, format('%s statement(s) to read (again if read before the transfers settled; the reconcile task reads them)', v_unread));
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

-- Only the resolution may be written, once (and journal_id right after the insert).
-- The breaks table is history (breaks_guard); journal_id is written once right
-- after the break's insert, in the same function: allow exactly that.
create or replace function settlement.breaks_guard() returns trigger
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

create or replace trigger breaks_history before update or delete on settlement.breaks
  for each row execute function settlement.breaks_guard();

-- A break of a day already reconciled (late evidence: found while another day
-- read the same statement, or an answer recorded after the day closed)
-- reopens it: its reconcile stage is blocked again, so its verdict is
-- BLOCKED, problems() lists it and the watch raises an alert. The stage runs
-- again (done) once each of its breaks is resolved.
create or replace function settlement.breaks_reopen_day() returns trigger
language plpgsql as $$
begin
  update settlement.stage_runs r
  set state = 'blocked', updated_at = settlement_meta.now(),
      detail = format('reopened: a %s break found after the day reconciled (%s); see settlement.reconciliation_breaks; explain each with settlement.resolve_break(id, note)',
                      new.problem, left(new.detail, 300))
  where r.business_date = new.business_date and r.kind = new.kind and r.stage = 'reconcile' and r.state = 'done';
  return null;
end $$;

create or replace trigger breaks_reopen_day after insert on settlement.breaks
  for each row execute function settlement.breaks_reopen_day();

------------------------------------------------------------------------------
-- Operators
create or replace function settlement.resolve_break(id bigint, note text) returns void
language plpgsql as $$
declare
  b settlement.breaks;
begin
  if resolve_break.note is null or btrim(resolve_break.note) = '' then
    perform settlement.raise_error('ST020', 'resolve_break: a note is required (say what explains the break)');
  end if;
  update settlement.breaks x set resolved_at = settlement_meta.now(), resolved_by = session_user, resolution = left(btrim(resolve_break.note), 2000)
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
  -- A withdrawal blocked by a payout the statement did not show looks again.
  if settlement.stage_state_of(b.business_date, b.kind, 'withdraw') = 'blocked' then
    perform settlement.add_stage_job('withdraw', b.business_date, b.kind);
  end if;
end $$;
comment on function settlement.resolve_break is 'Operator: records the explanation of a reconciliation break (who, when, note; kept, never deleted) and runs the day''s reconcile stage again. ST020 no note, ST021 unknown or already resolved.';

create or replace function settlement.configure_reconcile(p_after interval) returns void
language plpgsql as $$
begin
  if p_after is null then
    perform settlement.raise_error('ST022', 'configure_reconcile: reconcile_after is required (an interval, e.g. ''2 hours'')');
  end if;
  -- A grace shorter than the longest attempt could call a statement final
  -- while a request sent just before midnight is still being booked. A
  -- negative grace is the simulator's (it books at once; its statement is
  -- final at once); even then decide_unresolved waits for the longest attempt
  -- after midnight (unresolved_read_need).
  if p_after >= interval '0' and p_after < (select c.max_attempt from settlement.config c where c.id) then
    perform settlement.raise_error('ST022', format('configure_reconcile: a grace of %s is shorter than the longest attempt (config.max_attempt %s)',
                                                   p_after, (select c.max_attempt from settlement.config c where c.id)));
  end if;
  update settlement.config set reconcile_after = p_after, updated_at = settlement_meta.now() where id;
  if to_regproc('settlement.audit') is not null then
    perform settlement.audit('configure_reconcile', jsonb_build_object('reconcile_after', p_after::text));
  end if;
end $$;
comment on function settlement.configure_reconcile is 'Operator: sets reconcile_after, the grace after the end of a date (KST) before its statement counts as final: at least config.max_attempt, or negative for a simulator (final at once). ST022 otherwise. Audited.';

create or replace function settlement.add_reconcile_job(p_run_at timestamptz default null) returns void
language sql as $$
  select settlement.add_keyed_job('reconcile', '{}'::json, 'reconcile', 'preserve_run_at', p_run_at, 25, 'settlement:reconcile')
$$;

create or replace view settlement.reconciliation_breaks as
select b.id, b.business_date, b.kind, b.problem, b.transfer_id, b.is_tuno, b.account_no, b.amount,
       l.trdd, l.txtm, l.mnrc_drot_dsnc, l.ccyn, l.tuno as bank_tuno, l.bnpr_cntn, b.detail, b.journal_id, b.detected_at
from settlement.breaks b
left join settlement.statement_lines l on l.id = b.line_id
where b.resolved_at is null;
comment on view settlement.reconciliation_breaks is 'Open reconciliation breaks per (business_date, kind): missing_line, orphan (in suspense), mismatch, cancelled. settlement.resolve_break(id, note) explains one; resolved breaks stay in settlement.breaks.';

-- Per NH account: what our journal says moved (bank:<account>) against what
-- the statements show for lines of ours (matched to a succeeded transfer's
-- current number, or journaled as an orphan).
create or replace view settlement.bank_vs_statement as
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
-- When the last bank statement a (business_date, kind) is reconciled against
-- becomes final, by the database's clock: the latest statement_final_at of
-- the dates its transfers were sent on (reconcile_scope). Null when the day
-- moved no money at NH (nothing to wait for). The reconcile stage waits for
-- exactly this (stage_reconcile: not_ready until settlement_meta.now() >= it).
create or replace function settlement.statement_final_by(p_date date, p_kind settlement.kind) returns timestamptz
language sql stable as $$
  select max(settlement.statement_final_at(s.ymd)) from settlement.reconcile_scope s
  where s.business_date = p_date and s.kind = p_kind
$$;
comment on function settlement.statement_final_by is
  'When the last bank statement of (business_date, kind) is final (its date''s end in KST + config.reconcile_after), by the database''s clock; null if the day moved no money at NH.';
