/**
 * The README's simulator session ("A session in NH's published layouts") is
 * run as written: its ```sh block is taken from README.md, the port replaced by
 * a free one, and every `$ ` command run in order by one real bash (with job
 * control, as in a terminal, so `kill %1` stops the simulator's job) and real
 * curl; each command's output must match the answer the README shows under it,
 * `…` standing for anything. If the README session breaks, this test fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const README_PORT = '18080';

interface Step {
  command: string;
  shown: string;
}

/** The ```sh block after "A session in NH's published layouts", as commands and the answers shown under them. */
function readmeSession(readme: string): Step[] {
  const at = readme.indexOf("A session in NH's published layouts");
  if (at < 0) throw new Error("README: no \"A session in NH's published layouts\"");
  const open = readme.indexOf('```sh\n', at);
  const close = readme.indexOf('\n```', open + 6);
  if (open < 0 || close < 0) throw new Error('README: the session has no ```sh block');
  const steps: Step[] = [];
  for (const line of readme.slice(open + 6, close).split('\n')) {
    const last = steps[steps.length - 1];
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), shown: '' });
    else if (!last) throw new Error(`README session: output before the first command: ${line}`);
    else if (line.startsWith('    ') && last.shown === '') last.command += '\n' + line; // a command's continuation
    else last.shown += (last.shown ? '\n' : '') + line;
  }
  return steps;
}

/** The shown answer as a pattern: literal, with `…` matching anything. */
function shownPattern(shown: string): RegExp {
  const parts = shown.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[^]*')}$`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

const kstSecondsOfDay = () => {
  const s = Math.floor(Date.now() / 1000) + 9 * 3600;
  return s % 86400;
};

const killGroup = (pgid: number | undefined) => {
  if (!pgid) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
};

t.test('the README simulator session runs as written, on any day', async (t) => {
  const curl = spawnSync('curl', ['--version']);
  if (curl.error || curl.status !== 0) {
    t.fail(`curl is missing (${curl.error?.message ?? `exit ${curl.status}`}): the README session needs curl; install it (apt-get install curl)`);
    return;
  }
  const steps = readmeSession(readFileSync(path.join(root, 'README.md'), 'utf8'));
  t.ok(steps.length >= 10, `the session has its commands (${steps.length})`);
  t.match(steps[0]!.command, /npm run settle -- bank-sim --port 18080 .*&$/, 'it starts the simulator in the background');

  // The session reads today's KST date once and the statement of that date at
  // the end; a run that crossed KST midnight in between would ask for the
  // wrong day. Start after midnight instead, so no hour can change the outcome.
  const left = 86400 - kstSecondsOfDay();
  if (left < 120) await new Promise((r) => setTimeout(r, (left + 2) * 1000));

  const port = await freePort();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'readme-sim-'));
  const pidFile = path.join(tmp, 'sim.pid');
  let script = 'set -m\n'; // job control, as in a terminal: the background job is its own process group
  steps.forEach((s, i) => {
    script += s.command.split(README_PORT).join(String(port)) + '\n';
    if (i === 0) script += `echo $! > '${pidFile}'\n`; // (the test's own: to stop the simulator's group if the session does not)
    script += `printf '\\n@@@ ${i}\\n'\n`;
  });

  const bash = spawn('bash', ['-c', script], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: '' } });
  let simPgid: number | undefined;
  t.teardown(() => {
    killGroup(bash.pid);
    try {
      simPgid ??= Number(readFileSync(pidFile, 'utf8'));
    } catch {
      // never started
    }
    killGroup(simPgid);
    rmSync(tmp, { recursive: true, force: true });
  });
  let stdout = '';
  let stderr = '';
  bash.stdout.on('data', (d) => (stdout += d));
  bash.stderr.on('data', (d) => (stderr += d));
  // A session that hangs is stopped whole: bash, and the simulator's own
  // group (it holds bash's stderr open, so bash would never be 'closed').
  const timer = setTimeout(() => {
    killGroup(bash.pid);
    try {
      killGroup(Number(readFileSync(pidFile, 'utf8')));
    } catch {
      // never started
    }
  }, 120_000);
  const code = await new Promise<number | null>((resolve) => bash.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  try {
    simPgid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    // the session never got to start it
  }

  const outputs = stdout.split(/\n@@@ \d+\n/);
  t.equal(outputs.length, steps.length + 1, `every command ran (bash exit ${code})\nstderr:\n${stderr}`);
  steps.forEach((s, i) => {
    const got = (outputs[i] ?? '').replace(/^\n+|\n+$/g, '');
    const want = s.shown.trim();
    const first = s.command.split('\n')[0];
    if (want === '') t.equal(got, '', `$ ${first}\n  prints nothing`);
    else t.match(got, shownPattern(want), `$ ${first}\n  answers as the README shows`);
  });

  // `kill %1` at the end stopped the simulator (npm, its shell and the server under it).
  let stopped = false;
  for (let i = 0; i < 50 && !stopped; i++) {
    stopped = !(await answers(port));
    if (!stopped) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(stopped, 'the simulator no longer answers after the session');
});
