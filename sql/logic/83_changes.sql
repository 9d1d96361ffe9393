-- Dual control of the reference data (issue 22): no one login moves money on
-- its own. People change accounts, contracts, kind_accounts, a loan account's
-- FinAcno, limits, bank_codes and ops_settings only here (no application role
-- writes those tables):
--
--   propose_change(target, change jsonb, reason) -> id
--       records who, when, why and the row before and after (the change is
--       tried and rolled back, so a change that cannot apply is refused now,
--       ST060); what one person may do is applied at once, the rest waits
--   approve_change(id, reason)   by ANOTHER login (session_user): applies it,
--       in one transaction with its audit row, if it is still pending, not
--       expired (the database's clock) and its row is still what was proposed
--   reject_change(id, reason)
--
-- What needs two people (README "Security"): a kind's accounts or app
-- (kind_accounts), an app's contracted account (contracts), a settlement or
-- corporate account (new or changed), a loan account's FinAcno set by hand
-- (fin_acno), raising any limit (lowering is one person), any bank_codes row,
-- ops_settings' withdraw_deadline, unresolved_alert_after and
-- change_expires_after. One person: a new or changed loan account, lowering
-- limits, worker_silent_after.
--
-- Errors: ST040 no reason, ST060 a change that is not valid or cannot apply,
-- ST061 no such change, ST062 not pending (applied or rejected), ST063
-- expired, ST064 the proposer approving, ST065 the row changed since the
-- proposal, ST066 add_loan_account with an invalid or conflicting account,
-- ST090 approving as a shared login (a member of settlement_shared: the
-- console's database login; README "Security").

-- What each target is: its table, its key columns, the columns a change may set.
create or replace function settlement.change_target(p_target text, out tbl text, out keys text[], out cols text[])
language sql immutable as $$
  select x.tbl, x.keys, x.cols from (values
    ('accounts', 'accounts', array['account_no'], array['account_no', 'role', 'bank_code', 'holder']),
    ('fin_acno', 'accounts', array['account_no'], array['account_no', 'fin_acno', 'fin_registered_on']),
    ('contracts', 'contracts', array['fintech_apsno'], array['fintech_apsno', 'settlement_account']),
    ('kind_accounts', 'kind_accounts', array['kind'], array['kind', 'settlement_account', 'corporate_account', 'fintech_apsno']),
    ('bank_codes', 'bank_codes', array['rpcd', 'api'], array['rpcd', 'api', 'class', 'note', 'delete']),
    ('limits', 'limits', array['id'], array['max_accrual_amount', 'accrual_days_back', 'accrual_days_ahead', 'max_chunks_per_day', 'ingest_idle_timeout', 'ingest_lock_timeout']),
    ('ops_settings', 'ops_settings', array['id'], array['unresolved_alert_after', 'withdraw_deadline', 'worker_silent_after', 'change_expires_after'])
  ) x(target, tbl, keys, cols) where x.target = p_target
$$;

-- The change as applied: the key of a one-row table, bank_codes' api '*'.
-- Refuses (ST060) an unknown target, a change that is not an object, a column
-- it may not set, a missing key.
create or replace function settlement.change_normalized(p_target text, p_change jsonb) returns jsonb
language plpgsql stable as $$
declare
  d record;
  v_bad text[];
  v_missing text[];
  v jsonb := p_change;
begin
  select * into d from settlement.change_target(p_target);
  if d.tbl is null then
    perform settlement.raise_error('ST060', format('change: unknown target %L (accounts, fin_acno, contracts, kind_accounts, bank_codes, limits, ops_settings)', p_target));
  end if;
  if v is null or jsonb_typeof(v) <> 'object' or v = '{}' then
    perform settlement.raise_error('ST060', format('change: %s needs a JSON object of the columns to set', p_target));
  end if;
  select array_agg(k order by k) into v_bad from jsonb_object_keys(v) k where not k = any (d.cols);
  if v_bad is not null then
    perform settlement.raise_error('ST060', format('change: %s has no settable column %s (settable: %s)', p_target, array_to_string(v_bad, ', '), array_to_string(d.cols, ', ')));
  end if;
  if d.keys = array['id'] then
    v := v || '{"id": true}';
  elsif p_target = 'bank_codes' and not v ? 'api' then
    v := v || '{"api": "*"}';
  end if;
  select array_agg(k) into v_missing from unnest(d.keys) k where not v ? k or jsonb_typeof(v -> k) = 'null';
  if v_missing is not null then
    perform settlement.raise_error('ST060', format('change: %s needs its key %s', p_target, array_to_string(v_missing, ', ')));
  end if;
  return v;
end $$;

-- The row a (normalized) change is about, as it is now (null: none).
create or replace function settlement.change_row(p_target text, p_change jsonb) returns jsonb
language plpgsql stable as $$
declare
  d record;
  v jsonb;
begin
  select * into d from settlement.change_target(p_target);
  execute format('select to_jsonb(x) from settlement.%I x, jsonb_populate_record(null::settlement.%I, $1) r where %s',
                 d.tbl, d.tbl, (select string_agg(format('x.%1$I = r.%1$I', k), ' and ') from unnest(d.keys) k))
  into v using p_change;
  return v;
end $$;

-- Applies a (normalized) change and returns the row after it ('null' for a
-- deletion). Raises whatever the table's types and constraints say.
create or replace function settlement.change_apply(p_target text, p_change jsonb) returns jsonb
language plpgsql as $$
declare
  d record;
  v_before jsonb;
  v_cols text[];
  v_where text;
  v_after jsonb;
  v jsonb := p_change - 'delete';
begin
  select * into d from settlement.change_target(p_target);
  v_before := settlement.change_row(p_target, p_change);
  v_where := (select string_agg(format('x.%1$I = r.%1$I', k), ' and ') from unnest(d.keys) k);
  if p_target = 'accounts' then
    if v_before is not null and v ? 'role' and v ->> 'role' is distinct from v_before ->> 'role' then
      perform settlement.raise_error('ST060', format('change: account %s is a %s account; an account''s role does not change', settlement.mask_account(v ->> 'account_no'), v_before ->> 'role'));
    end if;
    if v_before is null and not v ? 'role' then
      perform settlement.raise_error('ST060', format('change: a new account %s needs its role (loan, settlement or corporate)', settlement.mask_account(v ->> 'account_no')));
    end if;
  end if;
  if p_target = 'fin_acno' then
    if v_before is null or v_before ->> 'role' <> 'loan' then
      perform settlement.raise_error('ST060', format('change: %s is not a known loan account (only a loan account has a FinAcno)', settlement.mask_account(v ->> 'account_no')));
    end if;
    if not v ? 'fin_acno' or jsonb_typeof(v -> 'fin_acno') <> 'string' then
      perform settlement.raise_error('ST060', 'change: fin_acno needs the FinAcno');
    end if;
  end if;
  if coalesce((p_change ->> 'delete')::boolean, false) then
    if v_before is null then
      perform settlement.raise_error('ST060', format('change: no %s row %s to delete', p_target, v));
    end if;
    execute format('delete from settlement.%I x using jsonb_populate_record(null::settlement.%I, $1) r where %s', d.tbl, d.tbl, v_where) using v;
    return 'null'::jsonb;
  end if;
  if p_target in ('limits', 'bank_codes') then
    v := v || jsonb_build_object('updated_at', settlement_meta.now());
  elsif p_target = 'kind_accounts' then
    v := v || jsonb_build_object('changed_at', settlement_meta.now());
  end if;
  select array_agg(k order by k) into v_cols from jsonb_object_keys(v) k;
  if v_before is null then
    execute format('insert into settlement.%I (%s) select %s from jsonb_populate_record(null::settlement.%I, $1) r',
                   d.tbl, (select string_agg(quote_ident(c), ', ') from unnest(v_cols) c),
                   (select string_agg('r.' || quote_ident(c), ', ') from unnest(v_cols) c), d.tbl) using v;
  else
    execute format('update settlement.%I x set %s from jsonb_populate_record(null::settlement.%I, $1) r where %s',
                   d.tbl, (select string_agg(format('%1$I = r.%1$I', c), ', ') from unnest(v_cols) c where not c = any (d.keys)), d.tbl, v_where) using v;
  end if;
  v_after := settlement.change_row(p_target, p_change);
  if p_target = 'fin_acno' then
    -- Days waiting for this fin-account get their pay job again.
    perform settlement.add_stage_job('pay', e.business_date, e.kind)
    from (select distinct e.business_date, e.kind from settlement.entries e
          join settlement.stage_runs s on s.business_date = e.business_date and s.kind = e.kind and s.stage = 'pay' and s.state <> 'done'
          where e.account_no = v ->> 'account_no') e;
  end if;
  return v_after;
end $$;

-- Does this change need a second person?
create or replace function settlement.change_needs_two(p_target text, p_before jsonb, p_after jsonb) returns boolean
language plpgsql stable as $$
declare
  o settlement.limits;
  n settlement.limits;
  so settlement.ops_settings;
  sn settlement.ops_settings;
begin
  case p_target
    when 'accounts' then
      return coalesce(p_after ->> 'role', p_before ->> 'role') <> 'loan';
    when 'limits' then
      o := jsonb_populate_record(null::settlement.limits, p_before);
      n := jsonb_populate_record(null::settlement.limits, p_after);
      return n.max_accrual_amount > o.max_accrual_amount or n.accrual_days_back > o.accrual_days_back
          or n.accrual_days_ahead > o.accrual_days_ahead or n.max_chunks_per_day > o.max_chunks_per_day
          or n.ingest_idle_timeout > o.ingest_idle_timeout or n.ingest_lock_timeout > o.ingest_lock_timeout;
    when 'ops_settings' then
      so := jsonb_populate_record(null::settlement.ops_settings, p_before);
      sn := jsonb_populate_record(null::settlement.ops_settings, p_after);
      return (sn.withdraw_deadline, sn.unresolved_alert_after, sn.change_expires_after)
             is distinct from (so.withdraw_deadline, so.unresolved_alert_after, so.change_expires_after);
    else
      -- contracts, kind_accounts, fin_acno, bank_codes
      return true;
  end case;
end $$;

-- A change is an event, not a lasting condition: its alert is opened cleared
-- (detect_alerts leaves it alone) and its job posts it once.
create or replace function settlement.change_alert(p_id bigint, p_what text, p_kind settlement.kind, p_message text) returns void
language plpgsql as $$
declare
  v_id bigint;
begin
  insert into settlement.alerts (key, problem, kind, message, cleared_at)
  values (format('change:%s:%s', p_id, p_what), 'change_' || p_what, p_kind, p_message, settlement_meta.now())
  returning id into v_id;
  perform settlement.add_alert_job(v_id);
end $$;

create or replace function settlement.change_summary(c settlement.changes) returns text
language sql stable as $$
  select format('change #%s (%s) %s: %s, reason: %s', c.id, c.target,
                case when c.needs_two then 'needs a second person' else 'one person' end, settlement.mask_json(c.change)::text, c.reason)
$$;

create or replace function settlement.propose_change(target text, change jsonb, reason text default null) returns bigint
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(propose_change.reason);
  v_change jsonb;
  v_before jsonb;
  v_after jsonb;
  v_two boolean;
  v_state text;
  c settlement.changes;
begin
  if v_reason is null then
    perform settlement.raise_error('ST040', 'propose_change: a reason is required (say why)');
  end if;
  v_change := settlement.change_normalized(propose_change.target, propose_change.change);
  -- Same row, one proposal at a time through here (the before it records stays true until decided or stale).
  perform pg_advisory_xact_lock(727022, hashtext(propose_change.target));
  -- Try it, and roll it back: a change that cannot apply is refused now.
  begin
    v_before := settlement.change_row(propose_change.target, v_change);
    v_after := settlement.change_apply(propose_change.target, v_change);
    v_two := settlement.change_needs_two(propose_change.target, v_before, v_after);
    raise exception 'tried' using errcode = 'ST0ZZ';
  exception
    when sqlstate 'ST0ZZ' then null;
    when others then
      perform settlement.raise_error('ST060', format('propose_change: %s %s cannot apply: %s', propose_change.target, settlement.mask_json(propose_change.change)::text, sqlerrm));
  end;
  if v_two then
    v_state := 'pending';
  else
    v_after := settlement.change_apply(propose_change.target, v_change);
    v_state := 'applied';
  end if;
  insert into settlement.changes (target, change, reason, before, after, needs_two, state, expires_at, decided_by, decided_at, decision_reason)
  values (propose_change.target, v_change, v_reason, v_before, v_after, v_two, v_state,
          settlement_meta.now() + (select change_expires_after from settlement.ops_settings where id),
          case when not v_two then session_user end, case when not v_two then settlement_meta.now() end, case when not v_two then v_reason end)
  returning * into c;
  perform settlement.audit('propose_change', jsonb_build_object('id', c.id, 'target', c.target, 'change', c.change, 'before', c.before, 'after', c.after, 'needs_two', c.needs_two),
                           jsonb_build_object('state', c.state), v_reason);
  perform settlement.change_alert(c.id, 'proposed', (v_change ->> 'kind')::settlement.kind,
                                  format('%s proposed by %s', settlement.change_summary(c), c.proposed_by)
                                  || case when v_two then format(' (expires %s)', settlement.local_time(c.expires_at)) else '' end);
  if not v_two then
    perform settlement.change_alert(c.id, 'applied', (v_change ->> 'kind')::settlement.kind, format('%s applied by %s', settlement.change_summary(c), c.proposed_by));
  end if;
  return c.id;
end $$;
comment on function settlement.propose_change is 'Operator: proposes a change of the reference data (target: accounts, fin_acno, contracts, kind_accounts, bank_codes, limits, ops_settings; change: the columns to set, with the row''s key). Applied at once when one person is enough, else pending for another login (approve_change). Audited; raises an alert. ST040, ST060.';

create or replace function settlement.approve_change(id bigint, reason text default null) returns jsonb
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(approve_change.reason);
  c settlement.changes;
  v_now jsonb;
  v_after jsonb;
begin
  select * into c from settlement.changes x where x.id = approve_change.id for update;
  if not found then
    perform settlement.raise_error('ST061', format('approve_change: no change #%s', approve_change.id));
  end if;
  if v_reason is null then
    perform settlement.raise_error('ST040', 'approve_change: a reason is required (say what you checked)');
  end if;
  if c.state <> 'pending' then
    perform settlement.raise_error('ST062', format('approve_change: change #%s is %s already (by %s at %s)', c.id, c.state, c.decided_by, settlement.local_time(c.decided_at)));
  end if;
  if c.expires_at <= settlement_meta.now() then
    perform settlement.raise_error('ST063', format('approve_change: change #%s expired at %s; propose it again', c.id, settlement.local_time(c.expires_at)));
  end if;
  if c.proposed_by = session_user then
    perform settlement.raise_error('ST064', format('approve_change: change #%s was proposed by %s; another login must approve it', c.id, c.proposed_by));
  end if;
  -- A login many people share (the console's) is no second person.
  if pg_has_role(session_user, 'settlement_shared', 'member') then
    perform settlement.raise_error('ST090', format('approve_change: %s is a shared login (settlement_shared, e.g. the console''s); approve with your own database login', session_user));
  end if;
  perform pg_advisory_xact_lock(727022, hashtext(c.target));
  v_now := settlement.change_row(c.target, c.change);
  if v_now is distinct from c.before then
    perform settlement.raise_error('ST065', format('approve_change: the %s row of change #%s changed since it was proposed (now %s); propose it again', c.target, c.id, coalesce(settlement.mask_json(v_now)::text, 'none')));
  end if;
  v_after := settlement.change_apply(c.target, c.change);
  update settlement.changes x set state = 'applied', after = v_after, decided_by = session_user, decided_at = settlement_meta.now(), decision_reason = v_reason
  where x.id = c.id
  returning * into c;
  perform settlement.audit('approve_change', jsonb_build_object('id', c.id, 'target', c.target, 'change', c.change, 'before', c.before, 'after', c.after,
                                                                'proposed_by', c.proposed_by, 'proposed_at', c.proposed_at, 'proposal_reason', c.reason, 'approved_by', c.decided_by),
                           jsonb_build_object('state', c.state), v_reason);
  perform settlement.change_alert(c.id, 'applied', (c.change ->> 'kind')::settlement.kind,
                                  format('%s proposed by %s, approved and applied by %s: %s', settlement.change_summary(c), c.proposed_by, c.decided_by, v_reason));
  return v_after;
end $$;
comment on function settlement.approve_change is 'Operator: applies a pending change proposed by another login, if not expired and its row is still what was proposed; never by a shared login (settlement_shared, ST090); in one transaction with its audit row (before, after, both people). ST040, ST061-ST065, ST090.';

create or replace function settlement.reject_change(id bigint, reason text default null) returns void
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(reject_change.reason);
  c settlement.changes;
begin
  select * into c from settlement.changes x where x.id = reject_change.id for update;
  if not found then
    perform settlement.raise_error('ST061', format('reject_change: no change #%s', reject_change.id));
  end if;
  if v_reason is null then
    perform settlement.raise_error('ST040', 'reject_change: a reason is required');
  end if;
  if c.state <> 'pending' then
    perform settlement.raise_error('ST062', format('reject_change: change #%s is %s already', c.id, c.state));
  end if;
  update settlement.changes x set state = 'rejected', decided_by = session_user, decided_at = settlement_meta.now(), decision_reason = v_reason where x.id = c.id;
  perform settlement.audit('reject_change', jsonb_build_object('id', c.id, 'target', c.target, 'change', c.change, 'proposed_by', c.proposed_by), null, v_reason);
end $$;
comment on function settlement.reject_change is 'Operator: rejects a pending change (the proposer may withdraw their own). Audited. ST040, ST061, ST062.';

-- Changes, newest first; state 'expired' for a pending one past expires_at.
create or replace function settlement.change_list(p_all boolean default true, p_limit integer default 50)
returns table (id bigint, target text, state text, needs_two boolean, change jsonb, reason text, before jsonb, after jsonb,
               proposed_by text, proposed_at timestamptz, expires_at timestamptz, decided_by text, decided_at timestamptz, decision_reason text)
language sql stable as $$
  select c.id, c.target, case when c.state = 'pending' and c.expires_at <= settlement_meta.now() then 'expired' else c.state end, c.needs_two, c.change, c.reason,
         c.before, c.after, c.proposed_by, c.proposed_at, c.expires_at, c.decided_by, c.decided_at, c.decision_reason
  from settlement.changes c
  where p_all or (c.state = 'pending' and c.expires_at > settlement_meta.now())
  order by c.id desc
  limit greatest(coalesce(p_limit, 50), 1)
$$;

-- When each kind's payee last changed (status and the console show it).
create or replace function settlement.payee_changes()
returns table (kind settlement.kind, changed_at timestamptz, change_id bigint, proposed_by text, approved_by text, settlement_account text, corporate_account text, fintech_apsno text)
language sql stable as $$
  select k.kind, k.changed_at, c.id, c.proposed_by, c.decided_by, k.settlement_account, k.corporate_account, k.fintech_apsno
  from settlement.kind_accounts k
  left join lateral (select * from settlement.changes c where c.target = 'kind_accounts' and c.state = 'applied' and c.change ->> 'kind' = k.kind::text
                     order by c.decided_at desc limit 1) c on true
  where k.changed_at is not null
  order by k.kind
$$;

-- Loan accounts arrive from the lending core through the ingest role: a new
-- loan account (no FinAcno: the system registers it), idempotent; an account
-- number known with other details is refused (ST066), never changed.
create or replace function settlement.add_loan_account(account_no text, bank_code text default '011', holder text default '') returns text
language plpgsql as $$
declare
  a settlement.accounts;
begin
  if add_loan_account.account_no is null or add_loan_account.account_no !~ '^[0-9]{6,20}$'
     or add_loan_account.bank_code is null or add_loan_account.bank_code !~ '^[0-9]{3}$'
     or length(coalesce(add_loan_account.holder, '')) > 200 then
    perform settlement.raise_error('ST066', format('add_loan_account: an account number of 6-20 digits, a 3-digit bank code and a holder of at most 200 characters are required; got %s, %s',
                                                  coalesce(quote_literal(settlement.mask_account(left(add_loan_account.account_no, 30))), 'null'), coalesce(quote_literal(left(add_loan_account.bank_code, 10)), 'null')));
  end if;
  insert into settlement.accounts (account_no, role, bank_code, holder)
  values (add_loan_account.account_no, 'loan', add_loan_account.bank_code, coalesce(add_loan_account.holder, ''))
  on conflict do nothing;
  if found then
    return 'added';
  end if;
  select * into a from settlement.accounts x where x.account_no = add_loan_account.account_no;
  if a.role <> 'loan' or a.bank_code <> add_loan_account.bank_code or a.holder <> coalesce(add_loan_account.holder, '') then
    perform settlement.raise_error('ST066', format('add_loan_account: account %s is known already with other details (%s, bank %s); it is not changed here',
                                                  settlement.mask_account(a.account_no), a.role, a.bank_code));
  end if;
  return 'exists';
end $$;
comment on function settlement.add_loan_account is 'Ingest: adds a loan account (its registration is enqueued); idempotent; ST066 for a malformed account or one known with other details.';
