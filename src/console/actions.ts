import type http from 'node:http';
import { sql } from 'slonik';
import { z } from 'zod';
import { toSettlementError } from '../db/errors.js';
import { asOperator, pause, resume, retryDay } from '../db/operations.js';
import { dateSchema, kindSchema } from '../domain.js';
import { clearCookie, sameOrigin, sameSecret, sessionCookie, type Sessions } from './auth.js';
import { stageNames } from './data.js';
import { html, type Html } from './html.js';
import { page } from './layout.js';
import { loginPage, safeNext } from './page-login.js';
import type { ConsoleOptions } from './options.js';

const MAX_FORM_BYTES = 16 * 1024;
const reason = z.string().trim().min(1, 'a reason is required (it is recorded in the audit)').max(1000, 'the reason is at most 1000 characters');
const optionalKind = z.preprocess((v) => (v === '' ? undefined : v), kindSchema.optional());

class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new Refused(415, 'Refused: the console takes HTML form posts only.');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new Refused(413, 'Refused: the form is too large.');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * The console's only writes: the operator functions of sql/0021_operations.sql
 * (retry_day, pause, resume, enqueue_stage), each in one transaction whose
 * audit records the reason typed on the page (settlement.reason), under the
 * console's database login and application_name settle-console.
 */
export function actionRoutes(o: ConsoleOptions & {
  sessions: Sessions;
  send: (res: http.ServerResponse, status: number, body: Html | string, headers?: Record<string, string>) => void;
  explain: (e: unknown) => string;
}) {
  const { db, sessions, send, logger } = o;
  const refusedPage = (status: number, text: string) =>
    page('Refused', { actionsOn: Boolean(o.token), here: '/' }, html`<h1>Refused</h1><p class="flash error" role="alert" id="refused">${text}</p><p><a href="/">Back to the days</a></p>`);

  const ops: Record<string, (f: URLSearchParams) => Promise<{ back: string; text: string }>> = {
    async retry(f) {
      const p = z.object({ date: dateSchema, kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const r = await asOperator(db, p.reason, (q) => retryDay(q, p.date, p.kind ?? null));
      const n = r.reduce((a, x) => a + x.retried, 0);
      return {
        back: `/day/${p.date}`,
        text: r.length === 0 ? `Nothing failed for good on ${p.date}${p.kind ? ` ${p.kind}` : ''}: nothing was retried.` : `Re-enqueued ${n} failed transfer(s) for ${p.date}: ${r.map((x) => `${x.kind} ${x.retried}`).join(', ')}.`,
      };
    },
    async pause(f) {
      const p = z.object({ kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const fresh = await asOperator(db, p.reason, (q) => pause(q, p.kind ?? null, p.reason));
      return { back: '/workers', text: `${fresh ? 'Paused' : 'Already paused'}: bank calls for ${p.kind ?? 'every kind'} (calls in flight finish).` };
    },
    async resume(f) {
      const p = z.object({ kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const n = await asOperator(db, p.reason, (q) => resume(q, p.kind ?? null));
      return { back: '/workers', text: `Resumed ${n} pause(s) of ${p.kind ?? 'every kind'}.` };
    },
    async enqueue(f) {
      const stages = await stageNames(db);
      const p = z.object({ date: dateSchema, kind: optionalKind, stage: z.string().refine((s) => stages.includes(s), 'unknown stage'), reason }).parse(Object.fromEntries(f));
      const n = await asOperator(db, p.reason, (q) =>
        q.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.enqueue_stage(${p.stage}::settlement.stage, ${p.date}::date, ${p.kind ?? null}::settlement.kind) as n`),
      );
      return { back: `/day/${p.date}`, text: `Enqueued ${n} ${p.stage} job(s) for ${p.date} ${p.kind ?? 'every kind'}.` };
    },
  };

  async function login(req: http.IncomingMessage, res: http.ServerResponse) {
    const f = await readForm(req);
    const viewer = { actionsOn: Boolean(o.token), here: '/login' };
    if (!o.token) return send(res, 403, loginPage(viewer, '/', undefined));
    if (!sameSecret(f.get('token') ?? '', o.token)) {
      logger.warn({ event: 'console:login_refused', remote: req.socket.remoteAddress }, 'console sign-in with a wrong token');
      return send(res, 401, loginPage(viewer, f.get('next') ?? '/', 'Wrong token.'));
    }
    const s = sessions.create();
    logger.info({ event: 'console:login', remote: req.socket.remoteAddress }, 'console sign-in');
    res.writeHead(303, { location: safeNext(f.get('next')), 'set-cookie': sessionCookie(s), 'cache-control': 'no-store' }).end();
  }

  return async (req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> => {
    try {
      if (!o.token) throw new Refused(403, 'Actions are off: this console has no CONSOLE_TOKEN, so it is read-only. Set CONSOLE_TOKEN to enable retry, pause, resume and enqueue.');
      if (!sameOrigin(req)) throw new Refused(403, 'Refused: the request did not come from this console\'s own pages (origin check).');
      if (path === '/login') return await login(req, res);
      const session = sessions.get(req);
      if (!session) throw new Refused(401, 'Refused: sign in with the console token first (actions need it).');
      const f = await readForm(req);
      if (!sameSecret(f.get('csrf') ?? '', session.csrf)) throw new Refused(403, 'Refused: the form\'s CSRF token does not match this session (reload the page and try again).');
      if (path === '/logout') {
        sessions.drop(session);
        return void res.writeHead(303, { location: '/', 'set-cookie': clearCookie() }).end();
      }
      const op = ops[path.slice('/actions/'.length)];
      if (!op) throw new Refused(404, 'No such action.');
      try {
        const r = await op(f);
        session.flash = { kind: 'ok', text: r.text };
        logger.info({ event: 'console:action', action: path, outcome: 'done' }, r.text);
        res.writeHead(303, { location: r.back, 'cache-control': 'no-store' }).end();
      } catch (e) {
        const text = e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : o.explain(toSettlementError(e));
        session.flash = { kind: 'error', text: `Not done: ${text}` };
        logger.warn({ event: 'console:action', action: path, outcome: 'refused', err: text }, 'console action not done');
        const back = safeNext(refererPath(req));
        res.writeHead(303, { location: back, 'cache-control': 'no-store' }).end();
      }
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      logger.warn({ event: 'console:refused', path, status: e.status, remote: req.socket.remoteAddress }, e.message);
      send(res, e.status, refusedPage(e.status, e.message));
    }
  };
}

function refererPath(req: http.IncomingMessage): string | undefined {
  try {
    const u = new URL(req.headers.referer ?? '');
    return u.host === req.headers.host ? u.pathname + u.search : undefined;
  } catch {
    return undefined;
  }
}
