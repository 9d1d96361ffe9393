import { spawn } from 'node:child_process';
import http from 'node:http';
import { CLI, reapOnExit, waitFor } from './procs.js';

/**
 * Signing in to the console over HTTP, as a browser's form post does
 * (POST /login with the token): returns the session cookie to send along.
 */
export async function consoleSession(base: string, token: string): Promise<string> {
  const r = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, next: '/' }).toString(),
  });
  const cookie = r.headers.get('set-cookie');
  if (r.status !== 303 || !cookie) throw new Error(`console sign-in failed: HTTP ${r.status}`);
  return cookie.split(';')[0]!;
}

/**
 * Clicks a link or button and waits for the navigation it starts. The
 * console's live pages replace their region while the test runs (a refresh
 * every few seconds), so the element found can be replaced before the click
 * lands ("Node is detached from document"): then it is found again and
 * clicked again — how slow the machine is decides how often, not whether.
 */
export async function clickToNavigate(page: import('puppeteer-core').Page, selector: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await Promise.all([page.waitForNavigation(), page.click(selector)]);
      return;
    } catch (e) {
      if (i >= 10 || !/detached|not clickable|No node found/i.test((e as Error).message)) throw e;
    }
  }
}

type T = { teardown(fn: () => unknown): void };

/**
 * `settle console` (the console alone) as a real process with the given
 * environment, killed at teardown; resolves with its base URL once it logs
 * `console:listen`; `stop()` sends SIGTERM and resolves with the exit code.
 */
export async function spawnConsole(t: T, env: Record<string, string>): Promise<{ base: string; logs: string[]; stop(): Promise<number | null> }> {
  const child = reapOnExit(spawn(process.execPath, [CLI, 'console'], {
    env: { ...process.env, HTTP_PORT: '0', LOG_LEVEL: 'info', CONSOLE_TOKEN: '', CONSOLE_VIEWER_TOKEN: '', CONSOLE_USERS: '', CONSOLE_DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const logs: string[] = [];
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  child.stdout.on('data', (d: Buffer) => logs.push(...d.toString().split('\n')));
  child.stderr.on('data', (d: Buffer) => logs.push(d.toString()));
  const port = await waitFor('console:listen', async () => {
    if (child.exitCode !== null) throw new Error(`settle console exited (${child.exitCode}):\n${logs.slice(-10).join('\n')}`);
    const line = logs.find((l) => l.includes('"event":"console:listen"'));
    return line ? (JSON.parse(line).port as number) : undefined;
  }, 60_000, 100);
  // SIGTERM, and its exit code (0: a clean stop).
  const stop = () => (child.kill('SIGTERM'), exited);
  return { base: `http://127.0.0.1:${port}`, logs, stop };
}

/** Serves a console (createConsole's handler) on a free loopback port until the test ends; returns its port. */
export async function serveConsole(t: T, web: { handle(req: http.IncomingMessage, res: http.ServerResponse): boolean }): Promise<number> {
  const server = http.createServer((req, res) => {
    if (!web.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as { port: number }).port;
}
