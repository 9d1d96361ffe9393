-- The double-entry journal. Every journal entry balances (checked per
-- statement from the inserted rows), and posted rows are never updated or
-- deleted: corrections are new entries.

create table settlement.journal_entries (
  id bigint generated always as identity primary key,
  business_date date not null,
  kind settlement.kind not null,
  event text not null check (event in ('record', 'payout', 'withdrawal', 'correction')),
  ref text not null,
  memo text not null default '',
  posted_at timestamptz not null default now()
);
create index journal_entries_day_idx on settlement.journal_entries (business_date, kind, event);
create unique index journal_entries_ref_idx on settlement.journal_entries (event, ref) where event <> 'correction';

-- amount > 0 is a debit, < 0 a credit. Ledger accounts are text codes:
--   bank:<account_no>       money at the bank (mirrors the bank's statement)
--   due_from:<loan acct>    recorded, not yet paid by that loan account
--   due_to:<kind>           recorded, owed to the kind's settlement account
create table settlement.journal_lines (
  journal_id bigint not null references settlement.journal_entries (id),
  line_no integer not null,
  ledger_account text not null,
  amount bigint not null check (amount <> 0),
  primary key (journal_id, line_no)
);
create index journal_lines_account_idx on settlement.journal_lines (ledger_account);

create function settlement.journal_check_balance() returns trigger
language plpgsql as $$
declare
  bad record;
begin
  select n.journal_id, sum(l.amount) as diff into bad
  from (select distinct journal_id from new_lines) n
  join settlement.journal_lines l using (journal_id)
  group by n.journal_id
  having sum(l.amount) <> 0
  limit 1;
  if found then
    raise exception 'journal entry % does not balance (debits - credits = %)', bad.journal_id, bad.diff
      using errcode = 'ST006';
  end if;
  return null;
end $$;

create trigger journal_lines_balance
  after insert on settlement.journal_lines
  referencing new table as new_lines
  for each statement execute function settlement.journal_check_balance();

create function settlement.journal_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'the journal is append-only: % on % is not allowed (post a correction entry instead)', tg_op, tg_table_name
    using errcode = 'ST007';
end $$;

create trigger journal_entries_append_only before update or delete on settlement.journal_entries
  for each row execute function settlement.journal_append_only();
create trigger journal_entries_no_truncate before truncate on settlement.journal_entries
  for each statement execute function settlement.journal_append_only();
create trigger journal_lines_append_only before update or delete on settlement.journal_lines
  for each row execute function settlement.journal_append_only();
create trigger journal_lines_no_truncate before truncate on settlement.journal_lines
  for each statement execute function settlement.journal_append_only();

-- Posts one balanced entry; lines is a jsonb array of {"account": text, "amount": bigint}.
create function settlement.post_journal(
  p_business_date date, p_kind settlement.kind, p_event text, p_ref text, p_lines jsonb, p_memo text default ''
) returns bigint
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.journal_entries (business_date, kind, event, ref, memo)
  values (p_business_date, p_kind, p_event, p_ref, coalesce(p_memo, ''))
  returning id into v_id;
  insert into settlement.journal_lines (journal_id, line_no, ledger_account, amount)
  select v_id, ord::int, l->>'account', (l->>'amount')::bigint
  from jsonb_array_elements(p_lines) with ordinality as t(l, ord);
  return v_id;
end $$;
comment on function settlement.post_journal is 'Posts one balanced journal entry (lines: [{account, amount}], debit > 0, credit < 0).';

-- Balance of every ledger account.
create view settlement.ledger_balances as
select ledger_account, sum(amount)::bigint as balance, count(*) as lines
from settlement.journal_lines
group by ledger_account;
comment on view settlement.ledger_balances is 'Balance per ledger account (debits positive).';
