/**
 * `settle change propose|approve|reject|list`: the reference data (accounts,
 * contracts, kind_accounts, a loan account's FinAcno, limits, bank_codes,
 * ops_settings) changes only through settlement.propose_change, and what
 * moves money only once another login approves it (README "Security").
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import { approveChange, CHANGE_TARGETS, listChanges, proposeChange, rejectChange, type ChangeRow } from '../db/changes.js';
import type { Logger } from '../log.js';
import { parseCommand, UsageError } from './args.js';
import { withDb } from './commands.js';
import { maskJson } from '../mask.js';

const reasonSchema = z.string().trim().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');
const idSchema = z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a change id (a positive whole number)').transform((s) => BigInt(s));
const setSchema = z.string().transform((s, ctx) => {
  try {
    const v: unknown = JSON.parse(s);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be a JSON object of the columns to set, e.g. \'{"kind":"tax","corporate_account":"3000000009"}\'' });
  return z.NEVER;
});

/** A change for people: account numbers masked (src/mask.ts); `list --json` gives the data as stored. */
const show = (v: unknown) => maskJson(v);

export function formatChange(c: ChangeRow): string[] {
  const decided = c.decided_by ? `; ${c.state} by ${c.decided_by} at ${c.decided_at}${c.decision_reason ? `: ${c.decision_reason}` : ''}` : c.state === 'pending' ? `; expires ${c.expires_at}` : '';
  return [
    `#${c.id} ${c.state.toUpperCase()} ${c.target}${c.needs_two ? ' (two people)' : ' (one person)'} proposed by ${c.proposed_by} at ${c.proposed_at}: ${c.reason}${decided}`,
    `    change: ${show(c.change)}`,
    `    before: ${show(c.before)}`,
    `    after:  ${show(c.after)}`,
  ];
}

export async function cmdChange(argv: string[], config: Config, logger: Logger) {
  const [action, ...rest] = argv;
  switch (action) {
    case 'propose': {
      const o = parseCommand(rest, { target: { type: 'string' }, set: { type: 'string' }, reason: { type: 'string' } },
        z.object({ target: z.enum(CHANGE_TARGETS), set: setSchema, reason: reasonSchema }).strict());
      await withDb(config, logger, async (db) => {
        const id = await proposeChange(db, o.target, o.set, o.reason);
        const [c] = (await listChanges(db, true, 200)).filter((x) => x.id === id);
        if (c) for (const l of formatChange(c)) console.log(l);
        console.log(c?.state === 'applied' ? `change #${id} applied (one person is enough for it)` : `change #${id} proposed: another login approves it with \`settle change approve --id ${id} --reason ...\``);
      });
      return;
    }
    case 'approve':
    case 'reject': {
      const o = parseCommand(rest, { id: { type: 'string' }, reason: { type: 'string' } }, z.object({ id: idSchema, reason: reasonSchema }).strict());
      await withDb(config, logger, async (db) => {
        if (action === 'approve') {
          const after = await approveChange(db, o.id, o.reason);
          console.log(`change #${o.id} approved and applied: ${show(after)}`);
        } else {
          await rejectChange(db, o.id, o.reason);
          console.log(`change #${o.id} rejected`);
        }
      });
      return;
    }
    case 'list': {
      const o = parseCommand(rest, { all: { type: 'boolean' }, json: { type: 'boolean' } }, z.object({ all: z.boolean().optional(), json: z.boolean().optional() }).strict());
      await withDb(config, logger, async (db) => {
        const rows = await listChanges(db, o.all ?? false);
        if (o.json) return void console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
        if (rows.length === 0) return void console.log(o.all ? 'no changes' : 'no change awaits approval (--all: every change)');
        for (const c of rows) for (const l of formatChange(c)) console.log(l);
      });
      return;
    }
    default:
      throw new UsageError(`change: say propose, approve, reject or list (got ${action === undefined ? 'nothing' : JSON.stringify(action)})`);
  }
}
