/**
 * Who may read and act on the console, over real HTTP against a real
 * Postgres (the console's own pool, an operator login): every page needs a
 * sign-in; the Host check is an exact list (DNS rebinding names refused on
 * every page, signed in or not); wrong tokens are throttled per client
 * address; sessions end unused or after 12 h; a viewer reads and cannot act;
 * an operator's action is audited under their name; a flood of pages from one
 * address is cut off and never takes more than the console's pool. The
 * console's clock is the test's (sessions, throttles and rate limits), so no
 * outcome depends on how fast this machine is.
 */
import http from 'node:http';
import { sql } from 'slonik';
import t from 'tap';
import { z } from 'zod';
import type { ConsoleUser } from '../../src/config.js';
import { hostAllowed, inConsoleScope } from '../../src/console/auth.js';
import { CONSOLE_POOL_SIZE, CONSOLE_STATEMENT_TIMEOUT_MS } from '../../src/console/mount.js';
import { createConsole } from '../../src/console/server.js';
import { serveConsole } from '../helpers/console.js';
import { createDbPool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { ensureLoginRole } from '../../src/runtime.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';

const USERS: ConsoleUser[] = [
  { name: 'operator', role: 'operator', token: 'operator-token-0123456789' },
  { name: 'alice', role: 'operator', token: 'alice-token-abcdefghijkl' },
  { name: 'bob', role: 'viewer', token: 'bob-token-mnopqrstuvwxyz' },
];
const LOGIN = { name: 'settle_test_console_auth', password: 'settle-test-console-auth', role: 'settlement_operator' };
const D = pastDate(1);
const PAGES = ['/', '/days', '/workers', `/day/${D}`, `/day/${D}/retry`, `/day/${D}/retry?kind=tax`, '/days?days=3'];

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

async function setup(t: { teardown(fn: () => unknown): void }) {
  const { url, db } = await freshDb(t);
  const consoleUrl = await ensureLoginRole(url, LOGIN);
  const cdb = await createDbPool(consoleUrl, { maximumPoolSize: CONSOLE_POOL_SIZE, applicationName: 'settle-console', statementTimeoutMs: CONSOLE_STATEMENT_TIMEOUT_MS });
  t.teardown(() => cdb.end());
  const clock = { now: Date.now() };
  const web = createConsole({
    db: cdb, users: USERS, consoleHost: '127.0.0.1', hostnames: ['settle.example.internal'],
    logger: createLogger('silent'), now: () => clock.now,
  });
  const port = await serveConsole(t, web);
  const host = `127.0.0.1:${port}`;

  /** One request; `from` is the client's own address (127.0.0.x: each a different client). */
  const request = (path: string, o: { method?: string; host?: string; cookie?: string; form?: Record<string, string>; headers?: Record<string, string>; from?: string } = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const body = o.form ? new URLSearchParams(o.form).toString() : undefined;
      const headers: Record<string, string> = { host: o.host ?? host, ...(o.cookie ? { cookie: o.cookie } : {}), ...o.headers };
      if (body !== undefined) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        headers['content-length'] = String(Buffer.byteLength(body));
        headers.origin ??= `http://${o.host ?? host}`;
      }
      const req = http.request({ host: '127.0.0.1', port, path, method: o.method ?? (body !== undefined ? 'POST' : 'GET'), headers, localAddress: o.from ?? '127.0.0.1', agent: false }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
      });
      req.on('error', reject);
      req.end(body);
    });

  /** Signs in; the session cookie and the CSRF token of its forms. */
  const signIn = async (token: string, from = '127.0.0.1') => {
    const r = await request('/login', { form: { token, next: '/' }, from });
    if (r.status !== 303) throw new Error(`sign-in answered ${r.status}: ${r.body.slice(0, 300)}`);
    const cookie = String(r.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    const home = await request('/', { cookie, from });
    const csrf = /name="csrf" value="([^"]+)"/.exec(home.body)?.[1];
    if (!csrf) throw new Error('no CSRF token on the page');
    return { cookie, csrf };
  };
  return { db, cdb, port, host, clock, request, signIn };
}
type Setup = Awaited<ReturnType<typeof setup>>;

t.test('every console page needs a sign-in; /login is the only page without one', async (t) => {
  const s: Setup = await setup(t);
  for (const p of PAGES) {
    const r = await s.request(p);
    t.equal(r.status, 303, `GET ${p} without a session: redirected`);
    t.equal(r.headers.location, `/login?next=${encodeURIComponent(p)}`, `... to the sign-in page, coming back to ${p}`);
    t.notOk(r.body.includes('<table'), 'and shows nothing');
    const live = await s.request(p, { headers: { 'x-console-live': '1' } });
    t.equal(live.status, 401, `a live refresh of ${p} without a session: 401`);
  }
  for (const [p, form] of [['/actions/pause', { kind: 'tax', reason: 'x', csrf: 'x' }], ['/actions/retry', { date: D, reason: 'x', csrf: 'x' }], [`/day/${D}/retry`, { kind: '', csrf: 'x' }], ['/logout', { csrf: 'x' }]] as const) {
    t.equal((await s.request(p, { form })).status, 401, `POST ${p} without a session: 401`);
  }
  const login = await s.request('/login');
  t.equal(login.status, 200, 'the sign-in page answers');
  t.match(login.body, /id="login-form"/);
  t.equal((await s.request('/static/console.css')).status, 200, 'static styles (no data) need no session');
  const n = await s.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.operator_actions`);
  t.equal(n, 0n, 'nothing was done');
});

t.test('the Host check is an exact list, on every page, signed in or not', async (t) => {
  const s: Setup = await setup(t);
  const op = await s.signIn(USERS[0]!.token);
  const bad = ['127.0.0.1.rebind.evil.example', '127.attacker.com', `127.0.0.1.rebind.evil.example:${s.port}`, `127.attacker.com:${s.port}`, 'evil.example', 'localhost.evil.example', '127.0.0.2.nip.io', '[::1].evil', 'localhost:80@evil.example'];
  const paths = [...PAGES, '/login', '/static/console.css', '/static/console.js', '/favicon.ico'];
  let refused = 0;
  for (const host of bad) {
    for (const p of paths) {
      for (const cookie of [undefined, op.cookie]) {
        const r = await s.request(p, { host, cookie });
        t.equal(r.status, 421, `GET ${p} Host "${host}"${cookie ? ' (signed in)' : ''}: 421`);
        if (r.status === 421) refused++;
      }
    }
    const post = await s.request('/login', { host, form: { token: USERS[0]!.token } });
    t.equal(post.status, 421, `POST /login Host "${host}": 421`);
    t.equal(post.headers['set-cookie'], undefined, 'and no session');
    t.equal((await s.request('/actions/pause', { host, cookie: op.cookie, form: { kind: 'tax', reason: 'rebound', csrf: op.csrf } })).status, 421, `POST /actions/pause Host "${host}": 421`);
  }
  t.equal(refused, bad.length * paths.length * 2);
  for (const host of [`localhost:${s.port}`, 'localhost', `LOCALHOST:${s.port}`, `127.0.0.1:${s.port}`, '127.0.0.1', `settle.example.internal:${s.port}`]) {
    const r = await s.request('/', { host, cookie: op.cookie });
    t.equal(r.status, 200, `Host "${host}" is on the list`);
  }
  const paused = await s.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.pauses`);
  t.equal(paused, 0n, 'no rebound post changed anything');

  // The rules themselves: the scope of CONSOLE_HOST, and a console bound wide.
  const req = (host: string, local: string) => ({ headers: { host }, socket: { localAddress: local } }) as unknown as http.IncomingMessage;
  t.ok(inConsoleScope('127.0.0.1', '127.0.0.1') && inConsoleScope('127.0.0.1', '::ffff:127.0.0.1') && inConsoleScope('127.0.0.1', '::1'), 'loopback scope: loopback connections');
  t.notOk(inConsoleScope('127.0.0.1', '10.1.2.3'), 'loopback scope: not a connection to the pod\'s address');
  t.ok(inConsoleScope('0.0.0.0', '10.1.2.3') && inConsoleScope('::', '10.1.2.3'), 'a wide scope (set on purpose): any');
  t.ok(inConsoleScope('10.1.2.3', '::ffff:10.1.2.3') && !inConsoleScope('10.1.2.3', '10.1.2.4'), 'one address: that address');
  const wide = { consoleHost: '0.0.0.0', hostnames: ['settle.example.internal'] };
  t.ok(hostAllowed(req('10.1.2.3:9464', '10.1.2.3'), wide), 'bound wide: the address the connection reached');
  t.notOk(hostAllowed(req('10.1.2.4:9464', '10.1.2.3'), wide), 'not another address');
  t.notOk(hostAllowed(req('0.0.0.0:9464', '10.1.2.3'), wide), 'not the wildcard');
  t.notOk(hostAllowed(req('10.1.2.3.rebind.evil.example', '10.1.2.3'), wide), 'not a name that starts with it');
  t.ok(hostAllowed(req('settle.example.internal', '10.1.2.3'), wide), 'a configured name');
  t.notOk(hostAllowed(req('x.settle.example.internal', '10.1.2.3'), wide), 'exactly (no subdomain)');
  t.ok(hostAllowed(req('[::1]:9464', '::1'), { consoleHost: '::1', hostnames: [] }), 'IPv6 in brackets');
});

t.test('wrong tokens are throttled per client address, with "try again in N s"', async (t) => {
  const s: Setup = await setup(t);
  const attacker = '127.0.0.2';
  const statuses: number[] = [];
  let last: Reply | undefined;
  for (let i = 0; i < 200; i++) {
    last = await s.request('/login', { form: { token: `guess-${i}-0123456789abcdef` }, from: attacker });
    statuses.push(last.status);
  }
  const count = (n: number) => statuses.filter((x) => x === n).length;
  t.equal(count(401), 6, 'five free wrong tokens, then a sixth that closes the door');
  t.equal(count(429), 194, 'the other 194 refused without a look at the token');
  t.match(last!.body, /Too many wrong tokens from this address: try again in 1 s/);
  t.equal(last!.headers['retry-after'], '1');
  const right = await s.request('/login', { form: { token: USERS[0]!.token }, from: attacker });
  t.equal(right.status, 429, 'while the door is closed even the right token is refused');
  t.equal(right.headers['set-cookie'], undefined);
  t.equal((await s.request('/login', { form: { token: USERS[0]!.token }, from: '127.0.0.3' })).status, 303, 'another client is not held up');
  // The door closes twice as long after each further wrong token.
  s.clock.now += 1_000;
  t.equal((await s.request('/login', { form: { token: 'wrong-again-0123456789' }, from: attacker })).status, 401);
  const again = await s.request('/login', { form: { token: USERS[0]!.token }, from: attacker });
  t.equal(again.status, 429);
  t.match(again.body, /try again in 2 s/);
  s.clock.now += 2_000;
  const ok = await s.request('/login', { form: { token: USERS[2]!.token, next: '/workers' }, from: attacker });
  t.equal(ok.status, 303, 'after the wait the right token signs in');
  t.equal(ok.headers.location, '/workers');
  t.equal((await s.request('/login', { form: { token: 'wrong-once-more-0123456' }, from: attacker })).status, 401, 'and a right token opens the door again (five free once more)');
});

t.test('sessions end after 30 minutes unused or 12 hours in all; signing out ends one', async (t) => {
  const s: Setup = await setup(t);
  const a = await s.signIn(USERS[0]!.token);
  s.clock.now += 29 * 60_000;
  t.equal((await s.request('/', { cookie: a.cookie })).status, 200, 'used within 30 minutes: alive');
  s.clock.now += 29 * 60_000;
  t.equal((await s.request('/', { cookie: a.cookie })).status, 200, 'each use counts');
  s.clock.now += 31 * 60_000;
  const idle = await s.request('/', { cookie: a.cookie });
  t.equal(idle.status, 303, 'unused for 31 minutes: signed out');
  t.match(String(idle.headers.location), /^\/login/);

  const b = await s.signIn(USERS[0]!.token);
  for (let used = 0; used < 12 * 60; used += 20) {
    s.clock.now += 20 * 60_000;
    const r = await s.request('/workers', { cookie: b.cookie });
    if (used + 20 < 12 * 60) t.equal(r.status, 200, `used every 20 minutes: alive at ${(used + 20) / 60} h`);
    else t.equal(r.status, 303, 'at 12 hours it ends, however much it is used');
  }

  const c = await s.signIn(USERS[0]!.token);
  t.equal((await s.request('/logout', { cookie: c.cookie, form: { csrf: c.csrf } })).status, 303);
  t.equal((await s.request('/', { cookie: c.cookie })).status, 303, 'signed out: the session is gone');
  t.equal((await s.request('/login', { form: { token: USERS[0]!.token }, headers: { origin: 'http://evil.example' } })).status, 403, 'a cross-site sign-in is refused');
});

t.test('a viewer reads and cannot act; an operator acts under their own name in the audit', async (t) => {
  const s: Setup = await setup(t);
  const bob = await s.signIn(USERS[2]!.token);
  for (const p of PAGES) {
    const r = await s.request(p, { cookie: bob.cookie });
    t.equal(r.status, 200, `a viewer reads ${p}`);
    t.notOk(/action="\/actions\//.test(r.body), `no action form on ${p} for a viewer`);
  }
  t.match((await s.request('/workers', { cookie: bob.cookie })).body, /bob \(viewer: reads only\)/);
  for (const [p, form] of [['/actions/pause', { kind: 'tax', reason: 'viewer tries' }], [`/day/${D}/retry`, { kind: '' }], ['/actions/enqueue', { date: D, stage: 'record', kind: '', reason: 'viewer tries' }]] as const) {
    const r = await s.request(p, { cookie: bob.cookie, form: { ...form, csrf: bob.csrf } });
    t.equal(r.status, 403, `a viewer's POST ${p}: 403`);
    t.match(r.body, /bob is a viewer; this needs an operator/);
  }
  const none = await s.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`select count(*) as n from settlement.operator_actions`);
  t.equal(none, 0n, 'a viewer changed nothing');

  const alice = await s.signIn(USERS[1]!.token);
  t.equal((await s.request('/actions/pause', { cookie: alice.cookie, form: { kind: 'tax', reason: 'NH incident 7', csrf: 'not-the-token' } })).status, 403, 'a form without the session\'s CSRF token is refused');
  t.equal((await s.request('/actions/pause', { cookie: alice.cookie, form: { kind: 'tax', reason: 'NH incident 7', csrf: alice.csrf }, headers: { origin: 'http://evil.example' } })).status, 403, 'a cross-site form is refused');
  const paused = await s.request('/actions/pause', { cookie: alice.cookie, form: { kind: 'tax', reason: 'NH incident 7', csrf: alice.csrf } });
  t.equal(paused.status, 303, 'an operator pauses tax');
  const audit = await s.db.one(sql.type(z.object({ action: z.string(), reason: z.string().nullable(), application_name: z.string(), db_user: z.string() }))`
    select action, reason, application_name, db_user from settlement.operator_actions order by id desc limit 1`);
  t.same(audit, { action: 'pause', reason: 'NH incident 7', application_name: 'settle-console:alice', db_user: LOGIN.name }, 'audited with the person\'s name');
  const workers = await s.request('/workers', { cookie: alice.cookie });
  t.match(workers.body, /Paused: bank calls for tax/, 'the page says what was done');
  t.match(workers.body, /alice \(operator: reads and acts\)/);
});

t.test('a flood of pages from one address is cut off and never takes more than the console\'s pool', async (t) => {
  const s: Setup = await setup(t);
  const flooder = '127.0.0.4';
  const op = await s.signIn(USERS[0]!.token, flooder); // one page (the home page, for its CSRF token)
  const replies = await Promise.all(Array.from({ length: 64 }, () => s.request(`/day/${D}`, { cookie: op.cookie, from: flooder })));
  const statuses = replies.map((r) => r.status);
  const count = (n: number) => statuses.filter((x) => x === n).length;
  t.same(statuses.filter((x) => ![200, 429, 503].includes(x)), [], 'every page answered 200, 429 (too many) or 503 (busy)');
  t.ok(count(200) >= 1 && count(200) <= 39, `${count(200)} served: at most the address's 40 at once (one was the home page)`);
  t.ok(count(429) + count(503) >= 25, `the rest told to come back: ${count(429)} too many from this address, ${count(503)} busy (at most 8 pages at once)`);
  // One at a time (the console's clock stands still): exactly the address's 40, then 429.
  const steady = '127.0.0.6';
  const st = await s.signIn(USERS[0]!.token, steady); // its home page is the first of the 40
  const seq: Reply[] = [];
  for (let i = 0; i < 45; i++) seq.push(await s.request(`/day/${D}`, { cookie: st.cookie, from: steady }));
  t.same(seq.map((r) => r.status), [...Array(39).fill(200), ...Array(6).fill(429)], 'one after another: 39 more pages, then 429');
  t.match(seq[44]!.body, /Too many page requests from this address\. Try again in 1 s/);
  t.equal(seq[44]!.headers['retry-after'], '1');
  t.equal((await s.request('/', { cookie: (await s.signIn(USERS[1]!.token, '127.0.0.5')).cookie, from: '127.0.0.5' })).status, 200, 'another address still reads');
  const conns = await s.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
    select count(*) as n from pg_stat_activity where application_name = 'settle-console' and datname = current_database()`);
  t.ok(conns <= BigInt(CONSOLE_POOL_SIZE), `the console's pool: ${conns} connection(s), at most ${CONSOLE_POOL_SIZE}`);
  const timeout = await s.cdb.oneFirst(sql.type(z.object({ s: z.string() }))`select current_setting('statement_timeout') as s`);
  t.equal(timeout, '5s', 'the console\'s pool cancels a statement after 5 s');
  s.clock.now += 10_000;
  t.equal((await s.request(`/day/${D}`, { cookie: op.cookie, from: flooder })).status, 200, 'a little later the address reads again');
});
