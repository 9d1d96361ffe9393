/**
 * The README's quick start, run as a newcomer runs it: its ```sh block and
 * the commands its text gives (`npm …` in backquotes) are taken from
 * README.md's "## Quick start" section and run by bash, in a folder that
 * holds this checkout's package.json, dist, sql and node_modules (links) and
 * nothing else: no DATABASE_URL, no BANK_URL, so every command starts (or
 * joins) an embedded PostgreSQL under that folder's .data/pg and an
 * in-process bank simulator, exactly the newcomer's path, without touching
 * the checkout's own .data or any shared database.
 *
 * Not run: `npm install` (this checkout is installed and built: the test
 * checks what its prepare step leaves, an executable bin) and `npm test`
 * (this file is one of its files). `npm run demo` runs with `--accounts 20`
 * (the README says so: 300 accounts take over a minute); the "Try" command
 * runs as written; `npm start` runs until a worker is up, then gets Ctrl-C
 * (SIGINT to its process group, as a terminal sends it) and must stop
 * cleanly, the embedded server after it. A command the quick start gains
 * that this test does not know fails the test.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { alive, waitFor } from '../helpers/procs.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The "## Quick start" section: its ```sh block (commands, comments cut) and the `npm …`/`npx …` commands of its text. */
function quickStart(readme: string): { block: string[]; prose: string[] } {
  const at = readme.indexOf('\n## Quick start\n');
  if (at < 0) throw new Error('README: no "## Quick start" section');
  const end = readme.indexOf('\n## ', at + 1);
  const section = readme.slice(at, end < 0 ? undefined : end);
  const open = section.indexOf('```sh\n');
  const close = section.indexOf('\n```', open + 6);
  if (open < 0 || close < 0) throw new Error('README quick start: no ```sh block');
  const block = section.slice(open + 6, close).split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '');
  const text = section.slice(0, open) + section.slice(close + 4);
  const prose = [...new Set([...text.matchAll(/`((?:npm|npx) [^`]+)`/g)].map((m) => m[1]!))].filter((c) => !block.includes(c));
  return { block, prose };
}

/** A newcomer's environment: this one without any of the product's settings. */
function newcomerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(DATABASE_URL|BANK_|HTTP_|WORKER_|CONSOLE_|SETTLE|SETTLEMENT_|COMMAND_|LOG_|PG)/.test(k)) continue;
    if (/^npm_/.test(k)) continue; // (the harness may itself run under npm)
    env[k] = v;
  }
  // A worker on this host may hold the default port: any free one (HTTP_PORT=0, documented).
  env['HTTP_PORT'] = '0';
  return env;
}

const killGroup = (pgid: number | undefined, signal: NodeJS.Signals = 'SIGKILL') => {
  if (!pgid) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
};

/** Runs one command line with bash in `cwd`, in a process group of its own (stopped at teardown). */
function run(t: { teardown(fn: () => unknown): void }, cwd: string, command: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  const child = spawn('bash', ['-c', command], { cwd, detached: true, env: newcomerEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => killGroup(child.pid));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => killGroup(child.pid), timeoutMs);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, out });
  }));
}

/** The embedded server's pid while one runs on this folder's .data/pg. */
function embeddedPid(dir: string): number | undefined {
  const f = path.join(dir, '.data', 'pg', 'postmaster.pid');
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').split('\n')[0]);
  return pid > 0 && alive(pid) ? pid : undefined;
}

const DEMO_ACCOUNTS = '20';

t.test('the README quick start runs as written, in a folder of its own', async (t) => {
  const { block, prose } = quickStart(readFileSync(path.join(root, 'README.md'), 'utf8'));
  t.same(block, ['npm install', 'npm run demo', 'npm test'], 'the quick start block is the one this test runs');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quickstart-'));
  t.teardown(() => {
    killGroup(embeddedPid(dir));
    rmSync(dir, { recursive: true, force: true });
  });
  for (const f of ['package.json', 'dist', 'sql', 'crontab', 'node_modules']) symlinkSync(path.join(root, f), path.join(dir, f));

  const known = new Set<string>();
  for (const command of [...block, ...prose]) {
    if (command === 'npm install') {
      known.add(command);
      // Installed and built already: what the prepare step leaves is an executable bin.
      const bin = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).bin.settle as string;
      t.doesNotThrow(() => accessSync(path.join(root, bin), constants.X_OK), `npm install: not run here; its prepare step left ${bin} executable`);
    } else if (command === 'npm test') {
      known.add(command);
      t.ok(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.test, 'npm test: not run here (this test is one of its files)');
    } else if (command === 'npm run demo' || command.startsWith('npm run demo -- ')) {
      known.add(command);
      const line = command === 'npm run demo' ? `npm run demo -- --accounts ${DEMO_ACCOUNTS}` : command;
      const t0 = Date.now();
      const r = await run(t, dir, line, 180_000);
      const tail = r.out.split('\n').slice(-25).join('\n');
      t.equal(r.code, 0, `${line}: exit 0 in ${((Date.now() - t0) / 1000).toFixed(0)} s\n${tail}`);
      t.match(r.out, /seeded \d{4}-\d{2}-\d{2}: \d+ loan accounts/, `${line}: it seeds a day`);
      t.match(r.out, /reconciliation against the bank's statements: \d+ transfers .* no break: no difference, to the won/, `${line}: the day reconciles with the bank to the won`);
      t.match(r.out, /^demo OK: every stage done for every kind/m, `${line}: demo OK`);
      t.notOk(embeddedPid(dir), `${line}: the embedded server stopped with the command`);
    } else if (command === 'npm start') {
      known.add(command);
      const child = spawn('bash', ['-c', command], { cwd: dir, detached: true, env: newcomerEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      t.teardown(() => killGroup(child.pid));
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      await waitFor('npm start: a worker is up', async () => out.includes('"event":"worker:start"') || child.exitCode !== null, 90_000);
      t.equal(child.exitCode, null, `npm start: the worker runs\n${out.split('\n').slice(-10).join('\n')}`);
      t.ok(embeddedPid(dir), 'npm start: on the embedded server under .data/pg');
      // Ctrl-C in a terminal: SIGINT to the foreground process group.
      const t0 = Date.now();
      killGroup(child.pid, 'SIGINT');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 40_000))]);
      t.equal(code, 0, `npm start: Ctrl-C stops it, exit 0 in ${((Date.now() - t0) / 1000).toFixed(1)} s\n${out.split('\n').slice(-10).join('\n')}`);
      t.notMatch(out, /"level":(50|60)/, 'npm start: no error-level log line');
      await waitFor('the embedded server stopped after the worker', async () => !embeddedPid(dir), 20_000);
      t.pass('npm start: the embedded server stopped after the worker');
    } else {
      t.fail(`the quick start has a command this test does not run: ${command}`);
    }
  }
  t.same([...known].sort(), ['npm install', 'npm run demo', 'npm start', 'npm test', ...prose.filter((c) => c.startsWith('npm run demo -- '))].sort(),
    'every command of the quick start was met');
  t.ok(prose.some((c) => c.startsWith('npm run demo -- ')), 'the quick start\'s "Try" command is among them');
});
