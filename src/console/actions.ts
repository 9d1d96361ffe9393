import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import pg from 'pg';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { SettlementError, sqlstateOf, toSettlementError } from '../db/errors.js';
import { asOperator, pause, resume, retryDay } from '../db/operations.js';
import { dateSchema, kindSchema } from '../domain.js';
import { clearCookie, createThrottle, sameOrigin, sameSecret, sessionCookie, userOfToken, type Session, type Sessions } from './auth.js';
import { stageNames } from './data.js';
import { html, maskDigits, type Html } from './html.js';
import { page } from './layout.js';
import { loginPage, safeNext } from './page-login.js';
import type { ConsoleOptions } from './options.js';

type Throttle = ReturnType<typeof createThrottle>;

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
 * console's database login and application_name settle-console; and the
 * decisions on proposed changes (approve_change, reject_change), made under
 * the person's OWN database login (README "Security").
 */
export function actionRoutes(o: ConsoleOptions & {
  sessions: Sessions;
  throttle: Throttle;
  send: (res: http.ServerResponse, status: number, body: Html | string, headers?: Record<string, string>) => void;
  explain: (e: unknown) => string;
}) {
  const { db, sessions, throttle, send, logger } = o;
  const refusedPage = (status: number, text: string) =>
    page('Refused', { here: '/' }, html`<h1>Refused</h1><p class="flash error" role="alert" id="refused">${text}</p><p><a href="/">Back to the days</a></p>`);
  /** The operator function runs in one transaction whose audit names the person: application_name settle-console:<name>. */
  const audited = <T>(s: Session, reason: string, fn: (q: CommonQueryMethods) => Promise<T>) => asOperator(db, reason, fn, { applicationName: `settle-console:${s.user.name}` });

  // Wrong database passwords typed on the Changes page, per console user (the page must not be a password oracle).
  const ownLoginThrottle = createThrottle({ now: o.now, free: 3 });

  /**
   * A decision on a change, made as the person: one connection with the
   * console's URL but the person's own database login (named like their
   * console user) and the password typed, for this one call. The console's
   * own login never approves (it is settlement_shared: ST090).
   */
  async function asOwnLogin(s: Session, f: URLSearchParams, reason: string, call: { text: string; values: unknown[] }): Promise<void> {
    const password = f.get('password') ?? '';
    if (!password) throw new SettlementError('own_login_required', 'ST091', `a change is decided with your own database login: type the password of the database login ${s.user.name}`);
    if (!o.databaseUrl) throw new SettlementError('own_login_required', 'ST091', 'this console does not know its database URL: decide changes with `settle change approve|reject` under your own login');
    const wait = ownLoginThrottle.wait(s.user.name);
    if (wait > 0) throw new SettlementError('own_login_refused', 'ST092', `too many wrong database passwords for ${s.user.name}: try again in ${Math.ceil(wait / 1000)} s`);
    const u = new URL(o.databaseUrl);
    u.username = s.user.name;
    u.searchParams.set('application_name', `settle-console:${s.user.name}`);
    // The password is what makes the login the person's: a server that lets
    // the login in without checking it (trust authentication) proves nothing.
    u.password = randomBytes(24).toString('base64url');
    if (await opens(u)) {
      throw new SettlementError('passwords_not_checked', 'ST093',
        `the database lets the login ${s.user.name} in without checking its password (trust authentication), so a password typed here proves nothing: decide changes with \`settle change approve|reject\` under your own login, or have the database check passwords (scram-sha-256)`);
    }
    u.password = password;
    // One connection, one attempt (a pool would retry a wrong password), one transaction.
    const c = new pg.Client({ connectionString: u.toString(), statement_timeout: 5_000, connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    try {
      try {
        await c.connect();
      } catch (e) {
        const state = sqlstateOf(e);
        if (state === '28P01' || state === '28000') {
          ownLoginThrottle.failed(s.user.name);
          throw new SettlementError('own_login_refused', 'ST092', `the database refused the login ${s.user.name} with that password (${state}); nothing changed`);
        }
        throw e;
      }
      ownLoginThrottle.succeeded(s.user.name);
      await c.query('begin');
      try {
        await c.query(`select set_config('settlement.reason', $1, true)`, [reason]);
        await c.query(call.text, call.values);
        await c.query('commit');
      } catch (e) {
        await c.query('rollback').catch(() => undefined);
        throw toSettlementError(e);
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  /** Whether the database lets `u` in (false: it refused the login or its password). */
  async function opens(u: URL): Promise<boolean> {
    const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return true;
    } catch (e) {
      const state = sqlstateOf(e);
      if (state === '28P01' || state === '28000') return false;
      throw e;
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  const changeId = (f: URLSearchParams) => {
    const id = (f.get('id') ?? '').trim();
    if (!/^[1-9][0-9]{0,17}$/.test(id)) throw new SettlementError('change_not_found', 'ST061', `no change ${JSON.stringify(id.slice(0, 30))}: the id is a change's number`);
    return BigInt(id);
  };
  const decisionReason = (f: URLSearchParams, what: string) => {
    const r = (f.get('reason') ?? '').trim();
    if (!r) throw new SettlementError('reason_required', 'ST040', `${what}: a reason is required (it is recorded in the audit)`);
    if (r.length > 1000) throw new SettlementError('reason_required', 'ST040', `${what}: the reason is at most 1000 characters`);
    return r;
  };

  const ops: Record<string, (f: URLSearchParams, s: Session) => Promise<{ back: string; text: string }>> = {
    async retry(f, s) {
      const p = z.object({ date: dateSchema, kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const r = await audited(s, p.reason, (q) => retryDay(q, p.date, p.kind ?? null));
      const n = r.reduce((a, x) => a + x.retried, 0);
      return {
        back: `/day/${p.date}`,
        text: r.length === 0 ? `Nothing failed for good on ${p.date}${p.kind ? ` ${p.kind}` : ''}: nothing was retried.` : `Re-enqueued ${n} failed transfer(s) for ${p.date}: ${r.map((x) => `${x.kind} ${x.retried}`).join(', ')}.`,
      };
    },
    async pause(f, s) {
      const p = z.object({ kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const fresh = await audited(s, p.reason, (q) => pause(q, p.kind ?? null, p.reason));
      return { back: '/workers', text: `${fresh ? 'Paused' : 'Already paused'}: bank calls for ${p.kind ?? 'every kind'} (calls in flight finish).` };
    },
    async resume(f, s) {
      const p = z.object({ kind: optionalKind, reason }).parse(Object.fromEntries(f));
      const n = await audited(s, p.reason, (q) => resume(q, p.kind ?? null));
      return { back: '/workers', text: `Resumed ${n} pause(s) of ${p.kind ?? 'every kind'}.` };
    },
    async 'approve-change'(f, s) {
      const id = changeId(f);
      const r = decisionReason(f, 'approve');
      // Refused before any password is asked: the proposer (the SQL refuses it too, ST064).
      const c = await db.maybeOne(sql.type(z.object({ proposed_by: z.string() }))`select proposed_by from settlement.changes where id = ${id.toString()}::bigint`);
      if (!c) throw new SettlementError('change_not_found', 'ST061', `no change #${id}`);
      if (c.proposed_by === s.user.name) throw new SettlementError('change_needs_another_person', 'ST064', `change #${id} was proposed by ${s.user.name}: another operator must approve it`);
      await asOwnLogin(s, f, r, { text: 'select settlement.approve_change($1::bigint, $2) as after', values: [id.toString(), r] });
      return { back: '/changes', text: `Change #${id} approved and applied (proposed by ${c.proposed_by}, approved by ${s.user.name}).` };
    },
    async 'reject-change'(f, s) {
      const id = changeId(f);
      const r = decisionReason(f, 'reject');
      await asOwnLogin(s, f, r, { text: 'select settlement.reject_change($1::bigint, $2)', values: [id.toString(), r] });
      return { back: '/changes', text: `Change #${id} rejected by ${s.user.name}.` };
    },
    async enqueue(f, s) {
      const stages = await stageNames(db);
      const p = z.object({ date: dateSchema, kind: optionalKind, stage: z.string().refine((x) => stages.includes(x), 'unknown stage'), reason }).parse(Object.fromEntries(f));
      const n = await audited(s, p.reason, (q) =>
        q.oneFirst(sql.type(z.object({ n: z.number() }))`select settlement.enqueue_stage(${p.stage}::settlement.stage, ${p.date}::date, ${p.kind ?? null}::settlement.kind) as n`),
      );
      return { back: `/day/${p.date}`, text: `Enqueued ${n} ${p.stage} job(s) for ${p.date} ${p.kind ?? 'every kind'}.` };
    },
  };

  async function login(req: http.IncomingMessage, res: http.ServerResponse) {
    const client = req.socket.remoteAddress ?? '?';
    const viewer = { here: '/login' };
    const wait = throttle.wait(client);
    if (wait > 0) {
      // Refused without looking at the token: guessing costs time.
      const s = Math.ceil(wait / 1000);
      logger.warn({ event: 'console:login_throttled', remote: client, wait_s: s }, 'console sign-in refused: too many wrong tokens from this address');
      req.resume();
      return send(res, 429, loginPage(viewer, '/', `Too many wrong tokens from this address: try again in ${s} s.`), { 'retry-after': String(s) });
    }
    const f = await readForm(req);
    const user = userOfToken(o.users, f.get('token') ?? '');
    if (!user) {
      throttle.failed(client);
      logger.warn({ event: 'console:login_refused', remote: client }, 'console sign-in with a wrong token');
      return send(res, 401, loginPage(viewer, f.get('next') ?? '/', 'Wrong token.'));
    }
    throttle.succeeded(client);
    const s = sessions.create(user);
    logger.info({ event: 'console:login', remote: client, user: user.name, role: user.role }, `console sign-in: ${user.name} (${user.role})`);
    res.writeHead(303, { location: safeNext(f.get('next')), 'set-cookie': sessionCookie(s), 'cache-control': 'no-store' }).end();
  }

  /**
   * A form post that needs an operator: from this console's pages, with a
   * session, the operator role and the session's CSRF token. Answers the
   * refusal itself and returns undefined, or returns the session and form.
   */
  async function operatorPost(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<{ session: Session; form: URLSearchParams } | undefined> {
    try {
      if (!sameOrigin(req)) throw new Refused(403, 'Refused: the request did not come from this console\'s own pages (origin check).');
      const session = sessions.get(req);
      if (!session) throw new Refused(401, 'Refused: sign in first (every page and action needs it).');
      const form = await readForm(req);
      if (!sameSecret(form.get('csrf') ?? '', session.csrf)) throw new Refused(403, 'Refused: the form\'s CSRF token does not match this session (reload the page and try again).');
      if (session.user.role !== 'operator' && path !== '/logout') throw new Refused(403, `Refused: ${session.user.name} is a viewer; this needs an operator.`);
      return { session, form };
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      logger.warn({ event: 'console:refused', path, status: e.status, remote: req.socket.remoteAddress }, e.message);
      send(res, e.status, refusedPage(e.status, e.message));
      return undefined;
    }
  }

  const handler = async (req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> => {
    if (path === '/login') {
      if (!sameOrigin(req)) {
        logger.warn({ event: 'console:refused', path, status: 403, remote: req.socket.remoteAddress }, 'cross-site sign-in');
        return send(res, 403, refusedPage(403, 'Refused: the request did not come from this console\'s own pages (origin check).'));
      }
      try {
        return await login(req, res);
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        return send(res, e.status, refusedPage(e.status, e.message));
      }
    }
    const post = await operatorPost(req, res, path);
    if (!post) return;
    const { session, form: f } = post;
    if (path === '/logout') {
      sessions.drop(session);
      return void res.writeHead(303, { location: '/login', 'set-cookie': clearCookie() }).end();
    }
    const op = ops[path.slice('/actions/'.length)];
    if (!op) return send(res, 404, refusedPage(404, 'No such action.'));
    try {
      const r = await op(f, session);
      session.flash = { kind: 'ok', text: r.text };
      logger.info({ event: 'console:action', action: path, outcome: 'done', user: session.user.name }, r.text);
      res.writeHead(303, { location: r.back, 'cache-control': 'no-store' }).end();
    } catch (e) {
      const text = e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : maskDigits(o.explain(toSettlementError(e)));
      session.flash = { kind: 'error', text: `Not done: ${text}` };
      logger.warn({ event: 'console:action', action: path, outcome: 'refused', user: session.user.name, err: text }, 'console action not done');
      const back = safeNext(refererPath(req));
      res.writeHead(303, { location: back, 'cache-control': 'no-store' }).end();
    }
  };
  return Object.assign(handler, { operatorPost });
}

function refererPath(req: http.IncomingMessage): string | undefined {
  try {
    const u = new URL(req.headers.referer ?? '');
    return u.host === req.headers.host ? u.pathname + u.search : undefined;
  } catch {
    return undefined;
  }
}
