import http from 'node:http';
import { z } from 'zod';
import { SettlementError } from '../db/errors.js';
import { formatPayeeChange, payeeChanges } from '../db/changes.js';
import { problems, retryPreview } from '../db/operations.js';
import { dateSchema, kindSchema } from '../domain.js';
import { actionRoutes } from './actions.js';
import type { ConsoleOptions } from './options.js';
import { CONSOLE_CSS, CONSOLE_JS, fontAsset } from './assets.js';
import { createRateLimit, createSessions, createThrottle, hostAllowed, inConsoleScope, type Session } from './auth.js';
import {
  bankSlots, canReadBankCodes, consoleChanges, consoleWorkers, dayBreaks, dayCells, dayProblems, dayProgress, dayStages, hasReconciliation, operatorActions, pausesNow, stageNames,
} from './data.js';
import { html, krw, maskDigits, type Html } from './html.js';
import { live, page, type Viewer } from './layout.js';
import { dayActions, dayBody } from './page-day.js';
import { historyBody } from './page-history.js';
import { dayTabs, reportBody } from './page-report.js';
import { dayReport, history } from '../db/report.js';
import { reportCsv } from '../report/format.js';
import { daysBody, inFlight } from './page-days.js';
import { retryBody, workersActions, workersBody, type PreviewLine, type WorkersData } from './page-workers.js';
import { loginPage } from './page-login.js';
import { changesBody } from './page-changes.js';

export interface Console {
  /** Answers the request if it is the console's (true), else leaves it (false). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

export function sqlstate(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

const firstLine = (e: unknown) => {
  let cur: unknown = e;
  let msg = e instanceof Error ? e.message : String(e);
  for (let i = 0; i < 5 && cur && typeof cur === 'object'; i++) {
    const c = (cur as { cause?: unknown }).cause;
    if (c instanceof Error) msg = c.message;
    cur = c;
  }
  return msg.split('\n')[0]!;
};

/** A database error, said for the person looking at the page. */
export function explain(e: unknown): string {
  if (e instanceof SettlementError) return `${e.code} (${e.sqlstate}): ${e.message}`;
  if (sqlstate(e) === '42501') {
    return `the console's database login is not allowed to do this (${firstLine(e)}): reading needs settlement_viewer, acting settlement_operator — set CONSOLE_DATABASE_URL to such a login`;
  }
  return firstLine(e);
}

export function send(res: http.ServerResponse, status: number, body: Html | string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS, ...headers });
  res.end(String(body));
}

export type { ConsoleOptions };

/** Pages rendered at once (they read through the console's small pool); more are told to come back. */
const MAX_PAGES_AT_ONCE = 8;
/** The bank dry run of a (date, kind): at most once per this long. */
export const BALANCE_DRY_RUN_EVERY_MS = 60_000;

export function createConsole(o: ConsoleOptions): Console {
  const now = o.now ?? Date.now;
  const sessions = createSessions({ now });
  const throttle = createThrottle({ now });
  // Per client address: 40 at once, 10 a second after that (a page and its live refresh every 2 s are far below).
  const pageLimit = createRateLimit({ burst: 40, perSecond: 10, now });
  const dryRunLimit = createRateLimit({ burst: 1, perSecond: 1000 / BALANCE_DRY_RUN_EVERY_MS, now });
  let pagesInFlight = 0;
  const { db, logger } = o;
  const viewerOf = (req: http.IncomingMessage, session: Session | undefined): Viewer => {
    // A live refresh does not show (or use up) the message of the last action.
    const flash = req.headers['x-console-live'] === '1' ? undefined : session?.flash;
    if (session && flash) session.flash = undefined;
    return { user: session?.user, csrf: session?.csrf, here: req.url ?? '/', flash };
  };
  const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

  /** Renders a page whose #live part refreshes; a live request gets that part only. */
  async function render(req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, title: string, build: (v: Viewer) => Promise<{ active: boolean; body: Html; after?: Html; before?: Html; still?: boolean }>, status = 200) {
    const p = await build(viewer);
    // A page that answers a form (the bank's balances) is not refreshed: a GET would not show them again.
    const region = p.still ? html`<div id="answer">${p.body}<p class="live-at">as of ${stamp()}</p></div>` : live(p.active, p.body, stamp());
    if (req.headers['x-console-live'] === '1') return send(res, status, region);
    send(res, status, page(title, viewer, html`${p.before ?? ''}${region}${p.after ?? ''}`));
  }

  const days = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, url: URL) =>
    render(req, res, viewer, 'Days', async () => {
      const n = z.coerce.number().int().min(1).max(366).catch(14).parse(url.searchParams.get('days') ?? 14);
      const [cells, stages] = await Promise.all([dayCells(db, { days: n }), stageNames(db)]);
      return { active: inFlight(cells), before: html`<h1>Days <span class="note">정산 현황 — newest first</span></h1>`, body: daysBody(cells, stages) };
    });

  const day = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, date: string) =>
    render(req, res, viewer, date, async () => {
      const [cells, stages, stageRows, progress, notes, recon, actions] = await Promise.all([
        dayCells(db, { date }), stageNames(db), dayStages(db, date), dayProgress(db, date), canReadBankCodes(db), hasReconciliation(db), operatorActions(db, date),
      ]);
      const [problemRows, breaks] = await Promise.all([dayProblems(db, date, notes), recon ? dayBreaks(db, date) : Promise.resolve(undefined)]);
      const d = { date, cells, stages, stageRows, progress, problems: problemRows, breaks, actions };
      const unpaid = cells.reduce((a, c) => a + c.amount_unpaid, 0n);
      return {
        active: inFlight(cells),
        before: html`<h1>${date} <span class="note">${cells.length} kind(s)${unpaid > 0n ? ` · ${krw(unpaid)} KRW unpaid` : ''}</span></h1>${dayTabs(date, 'day')}`,
        body: dayBody(d),
        after: dayActions(d, viewer),
      };
    });

  const report = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, date: string) =>
    render(req, res, viewer, `Report ${date}`, async () => {
      const rows = await dayReport(db, date);
      return { active: false, before: html`<h1>${date} <span class="note">report · 정산 보고서</span></h1>${dayTabs(date, 'report')}`, body: reportBody(date, rows) };
    });

  /** The report as CSV: the same rows and columns as `settle report --format csv`. */
  const reportFile = async (res: http.ServerResponse, viewer: Viewer, date: string) => {
    const rows = await dayReport(db, date);
    if (rows.length === 0) return send(res, 404, page('Not found', viewer, html`<p>No settlement day ${date}: nothing to report.</p>`));
    res.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="settlement-report-${date}.csv"`, 'cache-control': 'no-store', ...SECURITY_HEADERS,
    });
    res.end(reportCsv(rows));
  };

  const historyPage = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, url: URL) =>
    render(req, res, viewer, 'History', async () => {
      const n = url.searchParams.get('days') === '90' ? 90 : 30;
      const rows = await history(db, n);
      return { active: false, before: html`<h1>History <span class="note">최근 ${n}일 정산 추이</span></h1>`, body: historyBody(rows, n) };
    });

  /**
   * The retry dry run. A GET reads the database only; the bank is asked for
   * balances only by an operator's POST (askBank), at most once a minute per
   * (date, kind).
   */
  const retry = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer, date: string, kind: string | undefined, askBank: boolean) =>
    render(req, res, viewer, `Retry ${date}`, async () => {
      const rows = await retryPreview(db, date, (kind ?? null) as Parameters<typeof retryPreview>[2]);
      const lines: PreviewLine[] = [];
      for (const r of rows) {
        let balance = !o.balance ? 'not asked (no bank reachable from this console)' : askBank ? 'not asked' : 'not asked yet (an operator can ask the bank below)';
        if (r.purpose === 'withdrawal') balance = 'not asked (the contracted account has no fin-account)';
        else if (askBank && o.balance && r.fin_acno) {
          try {
            const available = await o.balance(r.fin_acno);
            const short = r.amount - available;
            balance = `available ${krw(available)} KRW, ${short > 0n ? `SHORT ${krw(short)} KRW` : 'enough'}`;
          } catch (e) {
            balance = `could not ask the bank (${maskDigits(firstLine(e))})`;
          }
        }
        lines.push({ ...r, balance });
      }
      return {
        active: false,
        before: html`<h1>Retry ${date}${kind ? ` ${kind}` : ''}: dry run</h1>`,
        body: retryBody(date, kind, lines, viewer, { bank: Boolean(o.balance), asked: askBank }),
        still: askBank,
      };
    });

  const workers = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer) =>
    render(req, res, viewer, 'Workers and the bank', async () => {
      const [ws, bank, pauses, ps, actions, payees] = await Promise.all([consoleWorkers(db), bankSlots(db), pausesNow(db), problems(db), operatorActions(db, null, 20), payeeChanges(db)]);
      const d: WorkersData = { workers: ws, bank, pauses, problems: ps, actions, payees: payees.map(formatPayeeChange) };
      return {
        active: ws.some((w) => w.jobs_locked > 0n) || bank.in_use > 0n,
        before: html`<h1>Workers and the bank</h1>`,
        body: workersBody(d),
        after: workersActions(d, viewer),
      };
    });

  const changes = (req: http.IncomingMessage, res: http.ServerResponse, viewer: Viewer) =>
    render(req, res, viewer, 'Changes', async () => {
      const rows = await consoleChanges(db, 50);
      return {
        // Forms live inside the page's rows: not refreshed under a person typing.
        active: false,
        still: true,
        before: html`<h1>Changes <span class="note">변경 승인 — the reference data, two people</span></h1>
<p class="note">A change to the payees, contracts, accounts, FinAcnos, limits, bank codes or settings waits here for a second operator. Approving signs in to the database as <em>you</em> (your own database login, named like your console user): the console's own login cannot approve, and the proposer cannot approve their own change.</p>`,
        body: changesBody(rows, viewer),
      };
    });

  const actions = actionRoutes({ ...o, sessions, throttle, send, explain });

  const tooMany = (res: http.ServerResponse, waitMs: number, text: string) => {
    const s = Math.max(1, Math.ceil(waitMs / 1000));
    send(res, 429, page('Too many requests', { here: '/' }, html`<h1>Too many requests</h1><p class="flash error" role="alert" id="refused">${text} Try again in ${s} s.</p>`), { 'retry-after': String(s) });
  };

  const routes = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> => {
    const path = url.pathname;
    const client = req.socket.remoteAddress ?? '?';
    if (req.method === 'POST' && (path === '/login' || path === '/logout' || path.startsWith('/actions/'))) {
      await actions(req, res, path);
      return true;
    }
    const retryPath = /^\/day\/([^/]+)\/retry$/.exec(path);
    if (req.method === 'POST' && retryPath) {
      // The bank dry run: an operator's form post, at most once a minute per (date, kind).
      const post = await actions.operatorPost(req, res, path);
      if (!post) return true;
      const date = dateSchema.safeParse(retryPath[1]);
      const kind = kindSchema.optional().safeParse(post.form.get('kind') || undefined);
      if (!date.success || !kind.success) return send(res, 400, page('Bad request', viewerOf(req, post.session), html`<p class="flash error">Not a business date or kind.</p>`)), true;
      const key = `${date.data}/${kind.data ?? '*'}`;
      const wait = dryRunLimit.take(key);
      if (wait > 0) {
        logger.warn({ event: 'console:refused', path, status: 429, user: post.session.user.name }, 'bank dry run asked again too soon');
        return tooMany(res, wait, `The bank was asked for the balances of ${date.data} ${kind.data ?? 'every kind'} less than ${BALANCE_DRY_RUN_EVERY_MS / 1000} s ago (each dry run calls the bank).`), true;
      }
      logger.info({ event: 'console:bank_dry_run', business_date: date.data, kind: kind.data, user: post.session.user.name }, 'retry dry run asks the bank for balances');
      await retry(req, res, viewerOf(req, post.session), date.data, kind.data, true);
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/login') {
      const wait = pageLimit.take(client);
      if (wait > 0) return tooMany(res, wait, 'Too many requests from this address.'), true;
      return send(res, 200, loginPage(viewerOf(req, sessions.get(req)), url.searchParams.get('next') ?? '/', undefined)), true;
    }
    const session = sessions.get(req);
    if (!session) {
      if (req.headers['x-console-live'] === '1') return send(res, 401, 'sign in again'), true;
      res.writeHead(303, { location: `/login?next=${encodeURIComponent(path + url.search)}`, 'cache-control': 'no-store', ...SECURITY_HEADERS }).end();
      return true;
    }
    const viewer = viewerOf(req, session);
    // Busy first: a page not rendered does not use up the address's allowance.
    if (pagesInFlight >= MAX_PAGES_AT_ONCE) {
      send(res, 503, page('Busy', viewer, html`<p class="flash error" role="alert">The console is answering ${MAX_PAGES_AT_ONCE} pages already; try again in a second.</p>`), { 'retry-after': '1' });
      return true;
    }
    const wait = pageLimit.take(client);
    if (wait > 0) return tooMany(res, wait, 'Too many page requests from this address.'), true;
    pagesInFlight++;
    try {
      if (path === '/' || path === '/days') return await days(req, res, viewer, url), true;
      if (path === '/workers') return await workers(req, res, viewer), true;
      if (path === '/history') return await historyPage(req, res, viewer, url), true;
      if (path === '/changes') return await changes(req, res, viewer), true;
      const m = /^\/day\/([^/]+?)(\/retry|\/report|\/report\.csv)?$/.exec(path);
      if (m) {
        const date = dateSchema.safeParse(m[1]);
        if (!date.success) return send(res, 404, page('Not found', viewer, html`<p>Not a business date: ${m[1]}</p>`)), true;
        if (m[2] === '/retry') await retry(req, res, viewer, date.data, kindSchema.optional().catch(undefined).parse(url.searchParams.get('kind') || undefined), false);
        else if (m[2] === '/report') await report(req, res, viewer, date.data);
        else if (m[2] === '/report.csv') await reportFile(res, viewer, date.data);
        else await day(req, res, viewer, date.data);
        return true;
      }
    } finally {
      pagesInFlight--;
    }
    return false;
  };

  const statics = (req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/static/console.css') return void res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=300' }).end(CONSOLE_CSS), true;
    if (path === '/static/console.js') return void res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' }).end(CONSOLE_JS), true;
    if (path === '/favicon.ico') return void res.writeHead(204).end(), true;
    if (path.startsWith('/static/fonts/noto-sans-kr/')) {
      fontAsset(path.slice('/static/fonts/noto-sans-kr/'.length)).then(
        (a) => (a ? res.writeHead(200, { 'content-type': a.type, 'cache-control': 'max-age=86400' }).end(a.body) : res.writeHead(404).end()),
        () => res.writeHead(500).end(),
      );
      return true;
    }
    return false;
  };

  return {
    handle(req, res) {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://console.invalid');
      } catch {
        return false;
      }
      // Answer synchronously whether the path is ours: known prefixes only.
      const ours = /^\/(|days|workers|history|changes|login|logout|favicon\.ico|day\/.*|actions\/.*|static\/.*)$/.test(url.pathname);
      if (!ours) return false;
      // Outside CONSOLE_HOST (default: loopback connections only) there is no console.
      if (!inConsoleScope(o.consoleHost, req.socket.localAddress)) return false;
      if (!hostAllowed(req, { consoleHost: o.consoleHost, hostnames: o.hostnames })) {
        logger.warn({ event: 'console:refused', path: url.pathname, status: 421, remote: req.socket.remoteAddress }, 'a request for another Host name');
        send(res, 421, 'This console answers only to localhost, its own address and the names in CONSOLE_HOSTNAMES.');
        return true;
      }
      if (statics(req, res, url.pathname)) return true;
      routes(req, res, url).then(
        (handled) => {
          if (!handled && !res.headersSent) send(res, req.method === 'GET' ? 404 : 405, 'not found');
        },
        (e: unknown) => {
          logger.error({ event: 'console:error', path: url.pathname, err: maskDigits(firstLine(e)) }, 'console page failed');
          if (!res.headersSent) send(res, 500, page('Error', { here: '/' }, html`<p class="flash error">The console could not read the database: ${maskDigits(explain(e))}</p>`));
          else res.end();
        },
      );
      return true;
    },
  };
}
