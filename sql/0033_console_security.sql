-- Issue 23: the worker's HTTP face and the ingest door.
--
-- New functions and settings first; restated functions after, each under a
-- "restates" comment naming where it was and what changed.

------------------------------------------------------------------------------
-- restates settlement.retry_preview (was in sql/0021_operations.sql): the
-- paying account's FinAcno is returned to operators only (null for a viewer);
-- security definer and search_path restated (create or replace resets them).
create or replace function settlement.retry_preview(p_date date, p_kind settlement.kind default null)
returns table (kind settlement.kind, purpose settlement.transfer_purpose, from_account text, fin_acno text, transfers bigint, amount bigint, bank_codes text)
language sql stable security definer set search_path = pg_catalog, settlement, graphile_worker as $$
  select t.kind, t.purpose, t.from_account,
         case when pg_has_role(session_user, 'settlement_operator', 'member') then max(t.fin_acno) end,
         count(*), sum(t.amount)::bigint, string_agg(distinct t.fail_code, ', ')
  from settlement.transfers t
  where t.business_date = p_date and t.state = 'failed' and (p_kind is null or t.kind = p_kind)
  group by t.kind, t.purpose, t.from_account
  order by t.kind, t.purpose, t.from_account
$$;
comment on function settlement.retry_preview is 'What retry_day would send again, per kind and paying account. The FinAcno (what the bank needs to report a balance) only for members of settlement_operator.';
