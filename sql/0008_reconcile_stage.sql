-- The fifth stage. An enum value cannot be used in the transaction that adds
-- it, so it gets a migration of its own (0009 uses it).
alter type settlement.stage add value if not exists 'reconcile';
