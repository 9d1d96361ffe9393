-- No one login moves money on its own (issue 22). People no longer write the
-- reference data: accounts (fin_acno included), contracts, kind_accounts,
-- limits, bank_codes and ops_settings change only through
-- settlement.propose_change / approve_change / reject_change
-- (sql/logic/83_changes.sql), and what moves money needs a second login.
-- Loan accounts arrive from the lending core through the ingest role
-- (settlement.add_loan_account). No application role writes these tables.
revoke insert, update, delete, truncate on settlement.accounts, settlement.contracts, settlement.kind_accounts,
  settlement.limits, settlement.bank_codes, settlement.ops_settings
  from settlement_ingest, settlement_viewer, settlement_operator, settlement_worker;

-- How long a proposal waits for its second person (changed, itself, by two).
alter table settlement.ops_settings
  add column change_expires_after interval not null default '24 hours'
    check (change_expires_after between '1 minute' and '30 days');
comment on column settlement.ops_settings.change_expires_after is 'A proposed change not approved within this (the database''s clock) can no longer be approved.';

-- Proposed changes to the reference data: who, when, why, the row before and
-- after; applied by a second login (approve_change) or, when one person is
-- enough (see README "Security"), at once. Never deleted; only the decision
-- columns of a pending row are ever written.
create table settlement.changes (
  id bigint generated always as identity primary key,
  target text not null check (target in ('accounts', 'contracts', 'kind_accounts', 'fin_acno', 'limits', 'bank_codes', 'ops_settings')),
  change jsonb not null check (jsonb_typeof(change) = 'object'),
  reason text not null check (length(btrim(reason)) between 1 and 1000),
  before jsonb,
  after jsonb not null,
  needs_two boolean not null,
  state text not null default 'pending' check (state in ('pending', 'applied', 'rejected')),
  proposed_by text not null default session_user,
  proposed_at timestamptz not null default now(),
  expires_at timestamptz not null,
  decided_by text,
  decided_at timestamptz,
  decision_reason text check (length(decision_reason) <= 1000),
  check ((state = 'pending') = (decided_at is null)),
  check (state <> 'applied' or not needs_two or decided_by <> proposed_by)
);
create index changes_pending_idx on settlement.changes (proposed_at) where state = 'pending';
comment on table settlement.changes is
  'Changes to the reference data (accounts, contracts, kind_accounts, a loan account''s FinAcno, limits, bank_codes, ops_settings): proposed, then approved by another login or rejected; expired when expires_at (the database''s clock) passes while pending.';

-- A kind's payee as of when: what status and the console show.
alter table settlement.kind_accounts add column changed_at timestamptz;
comment on column settlement.kind_accounts.changed_at is 'When the kind''s accounts or app last changed (by an approved change); transfers planned before keep the accounts they were planned with.';

revoke all on settlement.changes from public;
grant select on settlement.changes, settlement.operator_actions to settlement_operator;

-- A FinAcno is accepted only as the answer to this system's own registration
-- of the account (sql/logic/60_registration.sql): the database marks when it
-- started one (fin_registration), takes one Rgno for it, and record_fin_account
-- names that Rgno. Registrations already under way keep their Rgno.
alter table settlement.accounts add column fin_rgno_asked_at timestamptz;
comment on column settlement.accounts.fin_rgno_asked_at is 'When this system started the account''s registration (its Rgno and FinAcno are accepted only for it).';
update settlement.accounts set fin_rgno_asked_at = now() where fin_rgno is not null and fin_acno is null;
drop function if exists settlement.record_fin_account(text, text, text);
