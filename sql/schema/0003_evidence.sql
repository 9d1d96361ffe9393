-- The bank's evidence always wins (issue 21).
--
-- * transfers.claim_token: the fencing token of the live claim (a new one per
--   claim, from claim_token_seq); only the attempt holding it changes the
--   transfer, except evidence of booking (sql/logic/50_transfers.sql).
-- * transfers.sent_until: until when a request under the transfer's current
--   number may be in flight: the lease end of its last claim, or the moment
--   the attempt holding it recorded its outcome. decide_unresolved counts a
--   statement read only after it (plus the grace).
-- * config.max_attempt: the longest an attempt may hold its claim (claims ask
--   for no longer lease); configure_reconcile refuses a grace shorter.
-- * transfer_evidence: what proved a transfer's number booked or not, when it
--   overrides the everyday path (an answer for a failed or replaced number, a
--   statement line, a person's decision). Append-only.
-- * transfer_attempts.outcome 'sending': a number replaced while an attempt
--   under it may have reached the bank (its outcome unknown): kept so that a
--   booking under it is found as this transfer's orphan.
-- * finish_transfers takes the claim tokens (a new last parameter) and
--   finish_miss loses two: the old signatures go.
alter table settlement.transfers add column claim_token bigint, add column sent_until timestamptz;
create sequence settlement.claim_token_seq;

alter table settlement.config add column max_attempt interval not null default '1 hour'
  check (max_attempt > interval '0');
comment on column settlement.config.max_attempt is
  'The longest one transfer attempt may hold its claim (slot wait, every send and result check). claim_transfers refuses a longer lease and a worker whose lease would be longer refuses to start; configure_reconcile refuses a grace (reconcile_after >= 0) shorter than this.';

alter table settlement.transfer_attempts drop constraint transfer_attempts_outcome_check;
alter table settlement.transfer_attempts add constraint transfer_attempts_outcome_check check (outcome in ('succeeded', 'failed', 'sending'));
comment on column settlement.transfer_attempts.outcome is
  'succeeded, failed (code: the bank''s, not_in_statement, not_sent, withdrawn, decided_by_person), or sending: replaced while an attempt under it may have reached the bank (code superseded).';

create table settlement.transfer_evidence (
  id bigint generated always as identity primary key,
  transfer_id bigint not null references settlement.transfers (id),
  is_tuno text not null,
  booked boolean not null,
  source text not null check (source in ('answer', 'statement', 'person')),
  processed_at text,
  line_id bigint references settlement.statement_lines (id),
  detail text not null,
  by_user text not null default session_user,
  at timestamptz not null default now()
);
create index transfer_evidence_transfer_idx on settlement.transfer_evidence (transfer_id);
comment on table settlement.transfer_evidence is
  'What proved one of a transfer''s numbers booked (or, decided by a person, not booked) outside the everyday answer: kept, never changed.';

drop function if exists settlement.finish_transfers(bigint[], text[], text[], text[], text[], text[], integer[]);
-- finish_miss no longer records orphans (settlement.take_booking_evidence does): two parameters go.
drop function if exists settlement.finish_miss(bigint, text, text, text);

grant select on settlement.transfer_evidence to settlement_operator;

