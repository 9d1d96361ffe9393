import http from 'node:http';
import { z } from 'zod';
import { SettlementError } from '../db/errors.js';
import { problems, retryPreview } from '../db/operations.js';
import { dateSchema, kindSchema } from '../domain.js';
import { actionRoutes } from './actions.js';
import type { ConsoleOptions } from './options.js';
import { CONSOLE_CSS, CONSOLE_JS, fontAsset } from './assets.js';
import { createSessions, hostAllowed, type Session } from './auth.js';
import {
  bankSlots, canReadBankCodes, consoleWorkers, dayBreaks, dayCells, dayProblems, dayProgress, dayStages, hasReconciliation, operatorActions, pausesNow, stageNames,
} from './data.js';
import { html, krw, type Html } from './html.js';
import { live, page, type Viewer } from './layout.js';
import { dayActions, dayBody } from './page-day.js';
import { historyBody } from './page-history.js';
import { dayTabs, reportBody } from './page-report.js';
import { dayReport, history } from '../db/report.js';
import { reportCsv } from '../report/format.js';
import { daysBody, inFlight } from './page-days.js';
import { retryBody, workersActions, workersBody, type PreviewLine, type WorkersData } from './page-workers.js';
import { loginPage } from './page-login.js';

export interface Console {
  /** Answers the request if it is the console's (true), else leaves it (false). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

const SECURITY_HEADERS = {
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

export function createConsole(o: ConsoleOptions): Console {
  const sessions = createSessions();
  const { db, logger } = o;
  const viewerOf = (req: http.IncomingMessage, session: Session | undefined): Viewer => {
    // A live refresh does not show (or use up) the message of the last action.
    const flash = req.headers['x-console-live'] === '1' ? undefined : session?.flash;
    if (session && flash) session.flash = undefined;
    return { actionsOn: Boolean(o.token), csrf: o.token ? session?.csrf : undefined, here: req.url ?? '/', flash };
  };
  const now = () => new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

  /** Renders a page whose #live part refreshes; a live request gets that part only. */
  async function render(req: http.IncomingMessage, res: http.ServerResponse, title: string, build: (v: Viewer) => Promise<{ active: boolean; body: Html; after?: Html; before?: Html }>) {
    const viewer = viewerOf(req, sessions.get(req));
    const p = await build(viewer);
    const region = live(p.active, p.body, now());
    if (req.headers['x-console-live'] === '1') return send(res, 200, region);
    send(res, 200, page(title, viewer, html`${p.before ?? ''}${region}${p.after ?? ''}`));
  }

  const days = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) =>
    render(req, res, 'Days', async () => {
      const n = z.coerce.number().int().min(1).max(366).catch(14).parse(url.searchParams.get('days') ?? 14);
      const [cells, stages] = await Promise.all([dayCells(db, { days: n }), stageNames(db)]);
      return { active: inFlight(cells), before: html`<h1>Days <span class="note">정산 현황 — newest first</span></h1>`, body: daysBody(cells, stages) };
    });

  const day = (req: http.IncomingMessage, res: http.ServerResponse, date: string) =>
    render(req, res, date, async (viewer) => {
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

  const report = (req: http.IncomingMessage, res: http.ServerResponse, date: string) =>
    render(req, res, `Report ${date}`, async () => {
      const rows = await dayReport(db, date);
      return { active: false, before: html`<h1>${date} <span class="note">report · 정산 보고서</span></h1>${dayTabs(date, 'report')}`, body: reportBody(date, rows) };
    });

  /** The report as CSV: the same rows and columns as `settle report --format csv`. */
  const reportFile = async (res: http.ServerResponse, date: string) => {
    const rows = await dayReport(db, date);
    if (rows.length === 0) return send(res, 404, page('Not found', { actionsOn: Boolean(o.token), here: '/' }, html`<p>No settlement day ${date}: nothing to report.</p>`));
    res.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="settlement-report-${date}.csv"`, 'cache-control': 'no-store', ...SECURITY_HEADERS,
    });
    res.end(reportCsv(rows));
  };

  const historyPage = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) =>
    render(req, res, 'History', async () => {
      const n = url.searchParams.get('days') === '90' ? 90 : 30;
      const rows = await history(db, n);
      return { active: false, before: html`<h1>History <span class="note">최근 ${n}일 정산 추이</span></h1>`, body: historyBody(rows, n) };
    });

  const retry = (req: http.IncomingMessage, res: http.ServerResponse, date: string, url: URL) =>
    render(req, res, `Retry ${date}`, async (viewer) => {
      const kind = kindSchema.optional().catch(undefined).parse(url.searchParams.get('kind') || undefined);
      const rows = await retryPreview(db, date, kind ?? null);
      const lines: PreviewLine[] = [];
      for (const r of rows) {
        let balance = o.balance ? 'not asked' : 'not asked (no bank reachable from this console)';
        if (r.purpose === 'withdrawal') balance = 'not asked (the contracted account has no fin-account)';
        else if (o.balance && r.fin_acno) {
          try {
            const available = await o.balance(r.fin_acno);
            const short = r.amount - available;
            balance = `available ${krw(available)} KRW, ${short > 0n ? `SHORT ${krw(short)} KRW` : 'enough'}`;
          } catch (e) {
            balance = `could not ask the bank (${firstLine(e)})`;
          }
        }
        lines.push({ ...r, balance });
      }
      return { active: false, before: html`<h1>Retry ${date}${kind ? ` ${kind}` : ''}: dry run</h1>`, body: retryBody(date, kind, lines, viewer) };
    });

  const workers = (req: http.IncomingMessage, res: http.ServerResponse) =>
    render(req, res, 'Workers and the bank', async (viewer) => {
      const [ws, bank, pauses, ps, actions] = await Promise.all([consoleWorkers(db), bankSlots(db), pausesNow(db), problems(db), operatorActions(db, null, 20)]);
      const d: WorkersData = { workers: ws, bank, pauses, problems: ps, actions };
      return {
        active: ws.some((w) => w.jobs_locked > 0n) || bank.in_use > 0n,
        before: html`<h1>Workers and the bank</h1>`,
        body: workersBody(d),
        after: workersActions(d, viewer),
      };
    });

  const actions = actionRoutes({ ...o, sessions, send, explain });

  const routes = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> => {
    const path = url.pathname;
    if (req.method === 'POST') {
      if (path === '/login' || path === '/logout' || path.startsWith('/actions/')) {
        await actions(req, res, path);
        return true;
      }
      return false;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/static/console.css') return void res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=300' }).end(CONSOLE_CSS), true;
    if (path === '/static/console.js') return void res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' }).end(CONSOLE_JS), true;
    if (path.startsWith('/static/fonts/noto-sans-kr/')) {
      const a = await fontAsset(path.slice('/static/fonts/noto-sans-kr/'.length));
      if (!a) return void res.writeHead(404).end(), true;
      res.writeHead(200, { 'content-type': a.type, 'cache-control': 'max-age=86400' }).end(a.body);
      return true;
    }
    if (path === '/' || path === '/days') return await days(req, res, url), true;
    if (path === '/workers') return await workers(req, res), true;
    if (path === '/history') return await historyPage(req, res, url), true;
    if (path === '/login') return send(res, 200, loginPage(viewerOf(req, sessions.get(req)), url.searchParams.get('next') ?? '/', undefined)), true;
    const m = /^\/day\/([^/]+?)(\/retry|\/report|\/report\.csv)?$/.exec(path);
    if (m) {
      const date = dateSchema.safeParse(m[1]);
      if (!date.success) return send(res, 404, page('Not found', viewerOf(req, undefined), html`<p>Not a business date: ${m[1]}</p>`)), true;
      if (m[2] === '/retry') await retry(req, res, date.data, url);
      else if (m[2] === '/report') await report(req, res, date.data);
      else if (m[2] === '/report.csv') await reportFile(res, date.data);
      else await day(req, res, date.data);
      return true;
    }
    if (path === '/favicon.ico') return void res.writeHead(204).end(), true;
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
      if (!hostAllowed(req, o.listenHost)) {
        send(res, 421, 'This console answers only to localhost (it is bound to a loopback address).');
        return true;
      }
      // Answer synchronously whether the path is ours: known prefixes only.
      const ours = /^\/(|days|workers|history|login|logout|favicon\.ico|day\/.*|actions\/.*|static\/.*)$/.test(url.pathname);
      if (!ours) return false;
      routes(req, res, url).then(
        (handled) => {
          if (!handled && !res.headersSent) send(res, req.method === 'GET' ? 404 : 405, 'not found');
        },
        (e: unknown) => {
          logger.error({ event: 'console:error', path: url.pathname, err: firstLine(e) }, 'console page failed');
          if (!res.headersSent) send(res, 500, page('Error', { actionsOn: Boolean(o.token), here: '/' }, html`<p class="flash error">The console could not read the database: ${explain(e)}</p>`));
          else res.end();
        },
      );
      return true;
    },
  };
}

