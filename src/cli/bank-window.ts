/**
 * `settle bank-window`: the bank's quiet hours (settlement.bank_windows,
 * sql/logic/47_bank_windows.sql). No money request is sent inside a window;
 * a transfer that would be waits and is sent after it.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import { addBankWindow, asOperator, bankWindows, configureBankWindow, removeBankWindow } from '../db/operations.js';
import type { Logger } from '../log.js';
import { parseCommand } from './args.js';
import { withDb } from './commands.js';

const hhmm = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
/** 'HH:MM-HH:MM' (Korea time) or 'none'. */
const dailySchema = z.string().trim().refine((v) => v === 'none' || (v.split('-').length === 2 && v.split('-').every((p) => hhmm.test(p)) && v.split('-')[0] !== v.split('-')[1]),
  'must be HH:MM-HH:MM (Korea time, two different times; 23:30-00:30 spans midnight) or none');
/** A Korea-time instant 'YYYY-MM-DD HH:MM' (or with an explicit offset, ISO). */
const instant = /^\d{4}-\d{2}-\d{2}[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-]\d{2}:?\d{2})?$/;
const rangeSchema = z.string().trim().refine((v) => v.split('..').length === 2 && v.split('..').every((p) => instant.test(p.trim())),
  "must be 'YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM' (Korea time unless an offset is given)");
const reasonSchema = z.string().trim().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');

/** A Korea-time wall clock reading as an instant the database reads (an explicit offset is kept). */
const kst = (v: string) => {
  const t = v.trim().replace(' ', 'T');
  return /(Z|[+-]\d{2}:?\d{2})$/.test(t) ? t : `${t}+09:00`;
};

export async function cmdBankWindow(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { daily: { type: 'string' }, add: { type: 'string' }, remove: { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' } },
    z.object({
      daily: dailySchema.optional(), add: rangeSchema.optional(), remove: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a window id').transform(Number).optional(),
      reason: reasonSchema.optional(), json: z.boolean().optional(),
    }).strict()
      .refine((v) => [v.daily, v.add, v.remove].filter((x) => x !== undefined).length <= 1, 'give one of --daily, --add, --remove')
      .refine((v) => (v.daily === undefined && v.add === undefined && v.remove === undefined) || v.reason !== undefined, '--reason is required to change a window'),
  );
  await withDb(config, logger, async (db) => {
    if (o.daily !== undefined) {
      const [from, until] = o.daily === 'none' ? [null, null] : o.daily.split('-');
      const r = await asOperator(db, o.reason!, (q) => configureBankWindow(q, from ?? null, until ?? null, o.reason!));
      console.log(`${from ? `daily quiet window: ${from}-${until} KST` : 'no daily quiet window'}${r.transfers_rerun ? `; ${r.transfers_rerun} waiting transfer(s) run again now` : ''}`);
    } else if (o.add !== undefined) {
      const [starts, ends] = o.add.split('..').map(kst);
      const id = await asOperator(db, o.reason!, (q) => addBankWindow(q, starts!, ends!, o.reason!));
      console.log(`added quiet window ${id}: no money request from ${o.add.split('..')[0]!.trim()} to ${o.add.split('..')[1]!.trim()} (settle bank-window --remove ${id} --reason R to lift it)`);
    } else if (o.remove !== undefined) {
      const n = await asOperator(db, o.reason!, (q) => removeBankWindow(q, o.remove!, o.reason!));
      console.log(`removed quiet window ${o.remove}${n ? `; ${n} waiting transfer(s) run again now` : ''}`);
    }
    const rows = await bankWindows(db);
    if (o.json) return void console.log(JSON.stringify(rows, null, 2));
    if (rows.length === 0) return void console.log('the bank has no quiet window: money requests are sent at any hour');
    for (const w of rows) {
      console.log(w.daily
        ? `${String(w.window_id).padStart(4)}  daily ${w.daily}${w.starts ? ` (next: ${w.starts} to ${w.ends})` : ''}  ${w.reason}  (by ${w.added_by}, ${w.added_at})`
        : `${String(w.window_id).padStart(4)}  ${w.starts} to ${w.ends}  ${w.reason}  (by ${w.added_by}, ${w.added_at})`);
    }
  });
}
