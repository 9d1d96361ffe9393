-- Claim fencing that a stolen worker login cannot get around (issue 22,
-- item 4; sql/logic/50_transfers.sql):
--
-- * claim_key: sha256 of the holder string of the attempt that holds the
--   claim. The desk's holder is "<pool id>#<secret of its process>"; only the
--   pool id is kept in claimed_by (readable, like graphile_worker.jobs'
--   locked_by), the secret never. A live claim is taken again only by the
--   same holder string (the same process); knowing the pool id is not enough.
--   A holder without '#' has no key: its live claims are never taken again.
-- * claim tokens are random (settlement.new_claim_token), no longer a
--   sequence's next value: a login that claims one transfer could guess the
--   live token of another from its own.
-- * open_until: the bound (sent_until) of the attempts before the current
--   claim, kept when the claim is made. An attempt that answers sets
--   sent_until to when it answered, but never below open_until: a claim
--   taken from a live attempt (freed as a dead pool's, or by its own
--   process) cannot pretend that attempt's requests are over.
-- * unknown_outcomes: an attempt that could not learn its outcome (it
--   answered 'unresolved') after another attempt had taken the transfer over.
--   Its number may be booked whatever the other attempt recorded, so the
--   transfer is not retried while one stands (retry_failed: ST016) until a
--   person records that the bank did not book it (decide_transfer).
alter table settlement.transfers
  add column claim_key bytea,
  add column open_until timestamptz;
comment on column settlement.transfers.claim_key is
  'sha256 of the holder string of the attempt holding the claim ("<pool>#<process secret>"); a live claim is taken again only with the same string. Null: nobody may take it again while it is live.';
comment on column settlement.transfers.open_until is
  'sent_until as the current claim found it: the attempts before it may have a request in flight until then; an answer never lowers sent_until below it.';

create table settlement.unknown_outcomes (
  id bigint generated always as identity primary key,
  transfer_id bigint not null references settlement.transfers (id),
  is_tuno text not null,
  message text,
  at timestamptz not null default settlement_meta.now()
);
create index unknown_outcomes_transfer_idx on settlement.unknown_outcomes (transfer_id);
comment on table settlement.unknown_outcomes is
  'An attempt that could not learn its outcome after another attempt had taken the transfer over: its number may be booked. Kept, never changed; a person''s not-booked evidence for the number (transfer_evidence) later than it answers it.';
revoke all on settlement.unknown_outcomes from public;
grant select on settlement.unknown_outcomes to settlement_viewer, settlement_operator;
drop sequence settlement.claim_token_seq;
