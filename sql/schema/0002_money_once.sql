-- One path for a transfer's claim and finish (issue 19): claim_transfers and
-- finish_transfers (sql/logic/50_transfers.sql) are the only bodies that
-- claim and finish a transfer. What only the one-by-one path used goes:
-- claim_transfer and finish_transfer, the one-slot functions nothing calls
-- (try_bank_slot, give_bank_slot), the helpers folded into finish_transfers
-- (journal_transfer, after_payout), the composite type claim_transfer
-- returned, and the leased slot table of 0.1 that nothing has read since slots
-- became advisory locks (it was only still written). On a new database the
-- logic is applied after every schema file, so the functions do not exist yet
-- here: "if exists".
drop function if exists settlement.claim_transfer(bigint, text, integer, text, integer);
drop function if exists settlement.finish_transfer(bigint, text, text, text, text, text, integer, text);
drop function if exists settlement.try_bank_slot();
drop function if exists settlement.give_bank_slot(integer);
drop function if exists settlement.journal_transfer(settlement.transfers);
drop function if exists settlement.after_payout(settlement.transfers);
drop type if exists settlement.transfer_claim;
drop table settlement.bank_slots;
