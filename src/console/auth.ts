import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { isIP } from 'node:net';
import type { ConsoleRole, ConsoleUser } from '../config.js';

/**
 * Who may read and who may act. Every page needs a sign-in: a person types
 * their token (CONSOLE_TOKEN, CONSOLE_VIEWER_TOKEN or one of CONSOLE_USERS),
 * compared in constant time against every user's, and gets a session (an
 * HttpOnly, SameSite=Strict cookie) that ends after 30 minutes unused or 12
 * hours at most. A viewer reads; an operator also acts, with the CSRF token
 * of the session in every form and the request's origin checked. Wrong
 * tokens are throttled per client address.
 */
export const SESSION_COOKIE = 'settle_console';
export const SESSION_IDLE_MS = 30 * 60_000;
export const SESSION_MAX_MS = 12 * 3600_000;
const MAX_SESSIONS = 1000;

export interface Session {
  id: string;
  csrf: string;
  user: { name: string; role: ConsoleRole };
  createdAt: number;
  lastSeen: number;
  flash?: { kind: 'ok' | 'error'; text: string };
}

const digest = (s: string) => createHash('sha256').update(s).digest();
/** Constant-time comparison of two strings (of any lengths). */
export const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** The user whose token this is: every token is compared (no early exit), so the time says nothing about which one matched. */
export function userOfToken(users: readonly ConsoleUser[], token: string): ConsoleUser | undefined {
  let found: ConsoleUser | undefined;
  for (const u of users) if (sameSecret(token, u.token) && !found) found = u;
  return found;
}

export function createSessions(o: { now?: () => number; idleMs?: number; maxMs?: number } = {}) {
  const now = o.now ?? Date.now;
  const idleMs = o.idleMs ?? SESSION_IDLE_MS;
  const maxMs = o.maxMs ?? SESSION_MAX_MS;
  const sessions = new Map<string, Session>();
  const live = (s: Session, t: number) => t - s.lastSeen < idleMs && t - s.createdAt < maxMs;
  const prune = () => {
    const t = now();
    for (const [id, s] of sessions) if (!live(s, t)) sessions.delete(id);
    while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
  };
  return {
    create(user: { name: string; role: ConsoleRole }): Session {
      prune();
      const t = now();
      const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), user: { name: user.name, role: user.role }, createdAt: t, lastSeen: t };
      sessions.set(s.id, s);
      return s;
    },
    /** The request's live session (and it counts as used now), or undefined. */
    get(req: http.IncomingMessage): Session | undefined {
      const id = cookie(req, SESSION_COOKIE);
      if (!id) return undefined;
      const s = sessions.get(id);
      const t = now();
      if (!s) return undefined;
      if (!live(s, t)) {
        sessions.delete(id);
        return undefined;
      }
      s.lastSeen = t;
      return s;
    },
    drop(s: Session): void {
      sessions.delete(s.id);
    },
  };
}
export type Sessions = ReturnType<typeof createSessions>;

/**
 * Wrong sign-ins per client: the first `free` in a row cost nothing; each
 * further one closes the door for twice as long as the last (1 s, 2 s, 4 s
 * ... at most 15 minutes). While it is closed, attempts are refused without
 * looking at the token. A right token opens it again.
 */
export function createThrottle(o: { now?: () => number; free?: number; baseMs?: number; maxMs?: number } = {}) {
  const now = o.now ?? Date.now;
  const free = o.free ?? 5;
  const baseMs = o.baseMs ?? 1000;
  const maxMs = o.maxMs ?? 15 * 60_000;
  const clients = new Map<string, { failures: number; until: number; last: number }>();
  return {
    /** Milliseconds this client must wait before its next attempt (0: it may try now). */
    wait(client: string): number {
      const c = clients.get(client);
      return c ? Math.max(0, c.until - now()) : 0;
    },
    failed(client: string): void {
      const t = now();
      if (clients.size > 10_000) for (const [k, c] of clients) if (t - c.last > maxMs * 2) clients.delete(k);
      const c = clients.get(client) ?? { failures: 0, until: 0, last: t };
      c.failures += 1;
      c.last = t;
      if (c.failures > free) c.until = t + Math.min(maxMs, baseMs * 2 ** Math.min(30, c.failures - free - 1));
      clients.set(client, c);
    },
    succeeded(client: string): void {
      clients.delete(client);
    },
  };
}

/**
 * Requests per key (a session or a client address): a bucket of `burst`
 * that refills `perSecond`. Used for the pages (a flood from one person
 * cannot keep the console's pool busy) and for the bank dry run.
 */
export function createRateLimit(o: { burst: number; perSecond: number; now?: () => number }) {
  const now = o.now ?? Date.now;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    /** 0 if the request may go now (and it is counted), else the ms until it may. */
    take(key: string): number {
      const t = now();
      if (buckets.size > 10_000) for (const [k, b] of buckets) if (t - b.at > (o.burst / o.perSecond) * 1000) buckets.delete(k);
      const b = buckets.get(key) ?? { tokens: o.burst, at: t };
      b.tokens = Math.min(o.burst, b.tokens + ((t - b.at) / 1000) * o.perSecond);
      b.at = t;
      buckets.set(key, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - b.tokens) / o.perSecond) * 1000);
    },
  };
}

export function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export const sessionCookie = (s: Session) => `${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(SESSION_MAX_MS / 1000)}`;
export const clearCookie = () => `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;

/** An IP address as it appears in a Host header: IPv4 as is, IPv6 in brackets; IPv4-mapped IPv6 as IPv4. */
export function hostLiteral(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const a = address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1').toLowerCase();
  const v = isIP(a);
  return v === 4 ? a : v === 6 ? `[${a}]` : undefined;
}

const isLoopbackAddress = (a: string) => /^127\.\d+\.\d+\.\d+$/.test(a) || a === '::1' || a === '[::1]';
const isWildcard = (a: string) => a === '0.0.0.0' || a === '::';

/** Does a connection that reached `localAddress` fall in the console's scope (CONSOLE_HOST)? */
export function inConsoleScope(consoleHost: string, localAddress: string | undefined): boolean {
  if (isWildcard(consoleHost)) return true;
  const local = hostLiteral(localAddress);
  if (!local) return false;
  if (isLoopbackAddress(consoleHost)) return isLoopbackAddress(local);
  return local === hostLiteral(consoleHost);
}

/**
 * The Host check (DNS rebinding): a request is answered only if its Host
 * names, exactly, `localhost`, the console's own address (CONSOLE_HOST, or
 * the address the connection reached), or a name configured on purpose
 * (CONSOLE_HOSTNAMES). `127.0.0.1.rebind.evil.example` is none of them.
 */
export function hostAllowed(req: http.IncomingMessage, o: { consoleHost: string; hostnames: readonly string[] }): boolean {
  const host = (req.headers.host ?? '').toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host);
  if (!m) return false;
  const name = m[1]!;
  if (name === 'localhost') return true;
  if (o.hostnames.includes(name)) return true;
  const literal = hostLiteral(name.replace(/^\[(.*)\]$/, '$1'));
  if (!literal) return false;
  if (!isWildcard(o.consoleHost) && literal === hostLiteral(o.consoleHost)) return true;
  return literal === hostLiteral(req.socket.localAddress);
}

/** A state-changing request must come from this console's own pages. */
export function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return false;
  if (origin === undefined) return typeof site === 'string' || req.headers.referer === undefined || refererMatches(req);
  return origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
}

function refererMatches(req: http.IncomingMessage): boolean {
  try {
    return new URL(req.headers.referer!).host === req.headers.host;
  } catch {
    return false;
  }
}
