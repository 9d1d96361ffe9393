-- The one clock (0004_clock.sql) for the column defaults of the tables added
-- beside it (0003, 0006, 0007): every time the logic may compare reads
-- settlement_meta.now().
alter table settlement.transfer_evidence
  alter column at set default settlement_meta.now();
alter table settlement.changes
  alter column proposed_at set default settlement_meta.now();
alter table settlement.restores
  alter column restored_at set default settlement_meta.now();
