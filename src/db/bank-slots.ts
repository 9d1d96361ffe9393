/**
 * Bank-call slots are session advisory locks (BANK_SLOT_LOCK_CLASS, slot) of a
 * bank desk's connection (sql/logic/45_bank_slots.sql, where
 * settlement.bank_slot_lock_class() answers the same number: test/desk checks
 * that they agree).
 */
export const BANK_SLOT_LOCK_CLASS = 21332;

/** The slots (1..max_in_flight) this connection holds: `select … as slot`, no parameters. */
export const SLOTS_OF_THIS_CONNECTION = `select l.objid::int as slot from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.classid = ${BANK_SLOT_LOCK_CLASS} and l.objsubid = 2 and l.objid > 0 and l.granted`;

/** Gives back slots of this connection and wakes other processes' waiters ($1: int[]). */
export const GIVE_BANK_SLOTS = 'select settlement.give_bank_slots($1::int[])';
