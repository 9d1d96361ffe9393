import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';

/**
 * Who may act. Actions are off unless CONSOLE_TOKEN is set. With it, a person
 * signs in with the token and gets a session (an HttpOnly, SameSite=Strict
 * cookie) holding a CSRF token that every action form carries; an action is
 * refused unless the session, the CSRF token and the request's origin all
 * match. Reading needs no session: the console is a window, and binds to
 * localhost unless HTTP_HOST says otherwise.
 */
export const SESSION_COOKIE = 'settle_console';
const SESSION_TTL_MS = 12 * 3600_000;
const MAX_SESSIONS = 1000;

export interface Session {
  id: string;
  csrf: string;
  expiresAt: number;
  flash?: { kind: 'ok' | 'error'; text: string };
}

const digest = (s: string) => createHash('sha256').update(s).digest();
/** Constant-time comparison of two strings (of any lengths). */
export const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

export function createSessions() {
  const sessions = new Map<string, Session>();
  const prune = () => {
    const now = Date.now();
    for (const [id, s] of sessions) if (s.expiresAt < now) sessions.delete(id);
    while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
  };
  return {
    create(): Session {
      prune();
      const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), expiresAt: Date.now() + SESSION_TTL_MS };
      sessions.set(s.id, s);
      return s;
    },
    get(req: http.IncomingMessage): Session | undefined {
      const id = cookie(req, SESSION_COOKIE);
      if (!id) return undefined;
      const s = sessions.get(id);
      if (!s || s.expiresAt < Date.now()) return undefined;
      return s;
    },
    drop(s: Session): void {
      sessions.delete(s.id);
    },
  };
}
export type Sessions = ReturnType<typeof createSessions>;

export function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export const sessionCookie = (s: Session) => `${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(SESSION_TTL_MS / 1000)}`;
export const clearCookie = () => `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
export const isLoopback = (host: string) => LOOPBACK_NAMES.has(host) || /^127\./.test(host);

/**
 * A console bound to localhost answers only requests addressed to localhost
 * (a page elsewhere that rebinds its own name to 127.0.0.1 must not read it).
 */
export function hostAllowed(req: http.IncomingMessage, listenHost: string): boolean {
  if (!isLoopback(listenHost)) return true;
  const host = req.headers.host ?? '';
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  return isLoopback(name);
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
