import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/**
 * --flood: while a timed day is paid, 64 scrapers read /metrics of a worker
 * as fast as it answers, and 64 readers load a console page of the day (signed
 * in; they wait what a 429 or 503 says before the next load, as a browser's
 * live refresh does). Issue 23: reads must not starve money.
 */
export const FLOOD_SCRAPERS = 64;
export const FLOOD_PAGES = 64;
/** The console user of the flood (an operator token of the benchmark's own). */
export const FLOOD_CONSOLE_TOKEN = 'bench-console-token-0123456789';

export interface FloodCounts {
  scrapes: number;
  scrapeErrors: number;
  pages: number;
  pagesLimited: number;
  pageErrors: number;
}

/** A TCP port free right now on 127.0.0.1 (for a worker's HTTP_PORT). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Signs in to the console on `base`; the session cookie. */
async function signIn(base: string): Promise<string> {
  const r = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
    body: new URLSearchParams({ token: FLOOD_CONSOLE_TOKEN, next: '/' }),
    redirect: 'manual',
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
  if (r.status !== 303 || !cookie) throw new Error(`flood: console sign-in at ${base} answered ${r.status}`);
  return cookie;
}

/** Starts the flood against the worker listening on `port`; stop() ends it and returns what was sent. */
export async function startFlood(port: number, date: string): Promise<{ stop(): Promise<FloodCounts> }> {
  const base = `http://127.0.0.1:${port}`;
  // The worker's HTTP server starts just after it registers: wait for it (up to 30 s).
  let cookie: string | undefined;
  for (let i = 0; !cookie; i++) {
    try {
      cookie = await signIn(base);
    } catch (e) {
      if (i >= 300 || !/ECONNREFUSED/.test(String((e as { cause?: unknown }).cause ?? e))) throw e;
      await sleep(100);
    }
  }
  const counts: FloodCounts = { scrapes: 0, scrapeErrors: 0, pages: 0, pagesLimited: 0, pageErrors: 0 };
  let running = true;
  const scraper = async () => {
    while (running) {
      try {
        const r = await fetch(`${base}/metrics`);
        await r.arrayBuffer();
        if (r.ok) counts.scrapes++;
        else counts.scrapeErrors++;
      } catch {
        counts.scrapeErrors++;
        await sleep(100);
      }
    }
  };
  const reader = async () => {
    while (running) {
      try {
        const r = await fetch(`${base}/day/${date}`, { headers: { cookie } });
        await r.arrayBuffer();
        if (r.ok) counts.pages++;
        else if (r.status === 429 || r.status === 503) {
          counts.pagesLimited++;
          await sleep(Math.min(10, Number(r.headers.get('retry-after') ?? '1')) * 1000);
        } else counts.pageErrors++;
      } catch {
        counts.pageErrors++;
        await sleep(100);
      }
    }
  };
  const loops = [...Array.from({ length: FLOOD_SCRAPERS }, scraper), ...Array.from({ length: FLOOD_PAGES }, reader)];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

/**
 * The flood from a process of its own at the lowest CPU priority (nice 19).
 * The 128 clients ask as fast as they are answered. In the benchmark's own
 * process they would slow its bank simulator (the same event loop), and at
 * normal priority they take the 2 cores from the workers. Neither is the
 * worker's doing. Here they get whatever CPU the day leaves, and their CPU
 * shows under "other processes".
 */
export async function startFloodProcess(port: number, date: string): Promise<{ stop(): Promise<FloodCounts> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./flood-child.js', import.meta.url)), String(port), date], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (child.pid !== undefined) os.setPriority(child.pid, 19);
  let out = '';
  let started = false;
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (!started && out.includes('started\n')) {
        started = true;
        resolve();
      }
    });
    child.on('exit', (c) => {
      if (!started) reject(new Error(`flood: its process exited (${c}) before it started`));
    });
  });
  return {
    async stop() {
      child.stdin.end();
      const code = await exited;
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) throw new Error(`flood: its process exited ${code}`);
      return JSON.parse(last) as FloodCounts;
    },
  };
}
