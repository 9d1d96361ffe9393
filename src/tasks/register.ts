import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { finRegistration, recordFinAccount, recordFinRgno } from '../db/registration.js';
import { RetryLaterError } from '../domain.js';
import { parsePayload, type TaskContext } from './context.js';

const payloadSchema = z.object({ account_no: z.string().regex(/^[0-9]{6,20}$/, 'account_no must be 6-20 digits') }).strict();

/**
 * Registers a loan account at NH for withdrawals: OpenFinAccountDirect
 * (DrtrRgyn Y) gives a registration number, CheckOpenFinAccountDirect turns
 * it into the fin-account (FinAcno) that payouts are drawn from. The
 * registration number is stored first, so a run after a crash goes straight
 * to the second step. Registering moves no money; running twice is harmless.
 */
export function createRegisterTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const { account_no: accountNo } = parsePayload(payloadSchema, 'register', raw);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'register', account_no: accountNo, attempt: helpers.job.attempts });
    const reg = await finRegistration(ctx.db, accountNo);
    if (reg.fin_acno) return;
    let rgno = reg.fin_rgno;
    if (!rgno) {
      rgno = await ctx.bank.openFinAccount(reg.bank_code, reg.account_no, ctx.desk.gate());
      await recordFinRgno(ctx.db, accountNo, rgno);
    }
    const fin = await ctx.bank.checkFinAccount(rgno, ctx.desk.gate());
    const r = await recordFinAccount(ctx.db, accountNo, rgno, fin.finAcno, fin.rgsnYmd);
    // An ingest transaction that added an accrual to this account holds its row until it ends
    // (at most limits.ingest_idle_timeout idle): not waited for here, the job runs again later.
    if (r === undefined) throw new RetryLaterError('another session holds the account (an accrual in an open transaction?); registered when it ends');
    log.info({ event: 'register:done', recorded: r }, `loan account registered for withdrawals`);
  };
}
