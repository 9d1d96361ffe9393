import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { decideUnresolved, matchWatch } from '../db/reconcile.js';
import { openDays, runStage } from '../db/stages.js';
import { dateSchema, kindSchema } from '../domain.js';
import { cronMeta, parsePayload, type TaskContext } from './context.js';
import { readFinalStatements } from '../reconcile/read.js';

const payloadSchema = z.object({ date: dateSchema.optional(), kind: kindSchema.optional(), _cron: cronMeta }).strict();

/**
 * Reads the bank statements SQL says are final and not read yet (those of
 * days waiting for reconcile and of transfers whose outcome is unresolved),
 * lets the statements decide the unresolved transfers (settlement.decide_unresolved:
 * booked -> succeeded; not on the final statement -> re-planned under a new
 * IsTuno), matches what the statement watch read for days already
 * reconciled (settlement.match_watch: late evidence reopens its day), then
 * runs the reconcile stage, which matches in one transaction.
 */
export function createReconcileTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const p = parsePayload(payloadSchema, 'reconcile', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'reconcile', attempt: helpers.job.attempts });
    const r = await readFinalStatements(ctx.db, ctx.bank, () => ctx.desk.gate(), log);
    if (r.read > 0) log.info({ event: 'reconcile:read', statements: r.read, new_lines: r.lines }, `read ${r.read} statement(s), ${r.lines} new line(s)`);
    for (const d of await decideUnresolved(ctx.db)) {
      log.warn({ event: 'reconcile:decided', transfer_id: d.transfer_id.toString(), is_tuno: d.is_tuno, decision: d.decision },
        `transfer ${d.transfer_id} (${d.is_tuno}) decided by the statement: ${d.decision}`);
    }
    // Late evidence of reconciled days on the statements the watch read: breaks of those days (which reopens them).
    const watched = await matchWatch(ctx.db);
    if (watched > 0) log.warn({ event: 'reconcile:watch', lines: watched }, `the statement watch matched ${watched} new line(s) of reconciled days`);
    const days = p.date && p.kind ? [{ business_date: p.date, kind: p.kind }]
      : (await openDays(ctx.db)).filter((d) => (!p.date || d.business_date === p.date) && (!p.kind || d.kind === p.kind));
    for (const d of days) {
      const s = await runStage(ctx.db, 'reconcile', d.business_date, d.kind);
      if (s.outcome !== 'not_ready' || p.date) {
        log[s.outcome === 'blocked' ? 'error' : 'info']({ event: 'stage:outcome', stage: 'reconcile', business_date: d.business_date, kind: d.kind, outcome: s.outcome, detail: s.detail },
          `reconcile ${d.business_date} ${d.kind}: ${s.outcome}`);
      }
    }
  };
}
