-- The double-entry journal: every entry balances, posted rows are never
-- updated or deleted (corrections are new entries). The append-only guard is
-- shared by every history table (accruals, entries, transfer attempts,
-- statement lines, operator actions).

------------------------------------------------------------------------------
-- The balance check: after every statement that adds
-- lines, each entry they belong to balances and was posted by this
-- transaction (a missing entry included). Since every earlier statement left
-- its entries balanced, and lines are only ever added in the posting
-- transaction, an entry balances exactly when the lines this statement adds
-- to it sum to zero: the check reads the statement's own lines and one
-- entry row per entry, never the entry's earlier lines.
create or replace function settlement.journal_check_balance() returns trigger
language plpgsql as $$
declare
  r record;
  v_txid bigint;
  v_bad_id bigint;
  v_bad_diff bigint;
begin
  -- One lookup by primary key per entry (a plan that cannot turn into a scan
  -- of the journal when the statistics are stale). An entry that is closed
  -- (or missing) is reported before one that does not balance.
  for r in select journal_id, sum(amount) as diff from new_lines group by journal_id loop
    select e.txid into v_txid from settlement.journal_entries e where e.id = r.journal_id;
    if v_txid is null or v_txid <> txid_current() then
      raise exception 'journal entry % is closed: lines can only be added in the transaction that posts it', r.journal_id
        using errcode = 'ST007';
    end if;
    if r.diff <> 0 and v_bad_id is null then
      v_bad_id := r.journal_id;
      v_bad_diff := r.diff;
    end if;
  end loop;
  if v_bad_id is not null then
    raise exception 'journal entry % does not balance (debits - credits = %)', v_bad_id, v_bad_diff
      using errcode = 'ST006';
  end if;
  return null;
end $$;

create or replace trigger journal_lines_balance
  after insert on settlement.journal_lines
  referencing new table as new_lines
  for each statement execute function settlement.journal_check_balance();

create or replace function settlement.journal_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'the journal is append-only: % on % is not allowed (post a correction entry instead)', tg_op, tg_table_name
    using errcode = 'ST007';
end $$;

create or replace trigger journal_entries_append_only before update or delete on settlement.journal_entries
  for each row execute function settlement.journal_append_only();

create or replace trigger journal_entries_no_truncate before truncate on settlement.journal_entries
  for each statement execute function settlement.journal_append_only();

create or replace trigger journal_lines_append_only before update or delete on settlement.journal_lines
  for each row execute function settlement.journal_append_only();

create or replace trigger journal_lines_no_truncate before truncate on settlement.journal_lines
  for each statement execute function settlement.journal_append_only();

-- Posts one balanced entry; lines is a jsonb array of {"account": text, "amount": bigint}.
create or replace function settlement.post_journal_unaudited(
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
comment on function settlement.post_journal_unaudited is 'Posts one balanced journal entry (lines: [{account, amount}], debit > 0, credit < 0).';

-- Balance of every ledger account.
create or replace view settlement.ledger_balances as
select ledger_account, sum(amount)::bigint as balance, count(*) as lines
from settlement.journal_lines
group by ledger_account;
comment on view settlement.ledger_balances is 'Balance per ledger account (debits positive).';
