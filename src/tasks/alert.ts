import type { Task } from 'graphile-worker';
import { z } from 'zod';
import { alertSent, alertToSend } from '../db/operations.js';
import { parsePayload, type TaskContext } from './context.js';
import { postWebhook } from '../ops/webhook.js';

const payloadSchema = z.object({ alert_id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) }).strict();

/**
 * Posts one alert to ALERT_WEBHOOK_URL (Slack-compatible `{"text": ...}`).
 * Enqueued by settlement.detect_alerts in the transaction that opened the
 * alert (outbox); a failed post throws, so graphile-worker retries it with
 * backoff. Sent once: an alert already sent is a no-op.
 */
export function createAlertTask(ctx: TaskContext): Task {
  return async (raw, helpers) => {
    const { alert_id: id } = parsePayload(payloadSchema, 'alert', raw);
    const a = await alertToSend(ctx.db, id);
    const log = ctx.logger.child({ job_id: helpers.job.id, task: 'alert', alert_id: id, key: a.key, attempt: helpers.job.attempts });
    if (a.sent) return;
    const url = ctx.config.alerts.webhookUrl;
    if (!url) {
      await alertSent(ctx.db, id, 'ALERT_WEBHOOK_URL is not set: recorded, not sent');
      log.error({ event: 'alert:unsent', text: a.message }, `alert (no ALERT_WEBHOOK_URL): ${a.message}`);
      return;
    }
    try {
      await postWebhook(url, { text: `daily-settlement: ${a.message}` }, ctx.config.alerts.timeoutMs);
    } catch (e) {
      await alertSent(ctx.db, id, (e as Error).message).catch(() => undefined);
      throw e;
    }
    await alertSent(ctx.db, id, null);
    log.warn({ event: 'alert:sent', text: a.message }, `alert sent: ${a.message}`);
  };
}
