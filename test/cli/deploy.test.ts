import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { envSchema } from '../../src/config.js';
import { sqlDir } from '../../src/db/migrate.js';
import { workerEnv } from '../helpers/day.js';
import { freshDb } from '../helpers/db.js';
import { runCli, spawnWorker, waitFor } from '../helpers/procs.js';
import { startSim } from '../helpers/day.js';

const root = path.resolve(sqlDir(), '..');
const deploy = path.join(root, 'docs', 'deploy');
const known = new Set(Object.keys(envSchema.shape));

/** key=value lines of one [Section] of a systemd unit (a key may repeat). */
function unitSection(text: string, section: string): [string, string][] {
  const out: [string, string][] = [];
  let inside = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) { inside = s[1] === section; continue; }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`not a unit line: ${line}`);
    if (inside) out.push([kv[1]!, kv[2]!]);
  }
  return out;
}

/** Dockerfile instructions (continuation lines joined). */
function dockerfile(text: string): [string, string][] {
  return text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((l) => { const m = /^([A-Z]+)\s+(.*)$/.exec(l); if (!m) throw new Error(`not an instruction: ${l}`); return [m[1]!, m[2]!] as [string, string]; });
}

const commands = async () => {
  const help = await runCli(['--help']);
  return new Set([...help.stdout.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!));
};

t.test('the systemd unit names a command, variables and paths this version has', async (t) => {
  const service = unitSection(readFileSync(path.join(deploy, 'settle-worker.service'), 'utf8'), 'Service');
  const get = (k: string) => service.filter(([key]) => key === k).map(([, v]) => v);
  const [exec] = get('ExecStart');
  const m = /^\/usr\/bin\/node \/opt\/daily-settlement\/(\S+) (\S+)$/.exec(exec ?? '');
  t.ok(m, `ExecStart runs node on the project's CLI: ${exec}`);
  t.ok(existsSync(path.join(root, m![1]!)), `${m![1]} is the built CLI`);
  t.ok((await commands()).has(m![2]!), `"${m![2]}" is a settle command`);
  for (const e of get('Environment')) {
    const name = e.split('=')[0]!;
    t.ok(known.has(name) || name === 'NODE_ENV' || name === 'SETTLE_WATCH_PARENT', `Environment ${name} is a setting`);
  }
  t.same(get('Environment').find((e) => e.startsWith('SETTLE_WATCH_PARENT=')), 'SETTLE_WATCH_PARENT=0', 'no parent watch under systemd');
  t.same(get('KillSignal'), ['SIGTERM'], 'stopped by SIGTERM (graceful)');
  const stop = Number(get('TimeoutStopSec')[0]);
  t.ok(stop >= 120, `TimeoutStopSec ${stop} s is at least the 120 s docs/deploy/README.md gives a stop`);
  t.same(get('RestartPreventExitStatus'), ['2'], 'a configuration or version error (exit 2) is not restarted in a loop');
});

t.test('the Dockerfile copies what exists, runs a settle command, probes /healthz and stops with SIGTERM', async (t) => {
  const ins = dockerfile(readFileSync(path.join(deploy, 'Dockerfile'), 'utf8'));
  for (const [, args] of ins.filter(([i]) => i === 'COPY')) {
    if (args.startsWith('--from=')) continue;
    const sources = args.split(/\s+/).slice(0, -1);
    for (const s of sources) t.ok(existsSync(path.join(root, s)), `COPY ${s}: exists in the repository`);
  }
  const env = Object.fromEntries(ins.filter(([i]) => i === 'ENV').map(([, a]) => a.split('=') as [string, string]));
  for (const name of Object.keys(env)) t.ok(known.has(name) || name === 'NODE_ENV' || name === 'SETTLE_WATCH_PARENT', `ENV ${name} is a setting`);
  t.equal(env['SETTLE_WATCH_PARENT'], '0', 'no parent watch in a container');
  const entry = JSON.parse(ins.find(([i]) => i === 'ENTRYPOINT')![1]) as string[];
  t.same(entry.slice(0, 1), ['node'], 'the entry point is node');
  t.ok(existsSync(path.join(root, entry[1]!)), `${entry[1]} is the built CLI`);
  const cmd = JSON.parse(ins.find(([i]) => i === 'CMD')![1]) as string[];
  t.ok((await commands()).has(cmd[0]!), `CMD ${cmd[0]} is a settle command`);
  t.equal(ins.find(([i]) => i === 'STOPSIGNAL')?.[1], 'SIGTERM');
  const health = ins.find(([i]) => i === 'HEALTHCHECK')?.[1] ?? '';
  t.ok(health.includes(`http://127.0.0.1:${env['HTTP_PORT']}/healthz`), 'the health check asks /healthz on the port the image sets');
  t.match(readFileSync(path.join(deploy, 'Dockerfile'), 'utf8'), /--stop-timeout 120/, 'the recipe gives the documented stop timeout');
});

t.test('a worker started as the unit starts it: /healthz and /readyz answer 200 (the probes the recipes use)', async (t) => {
  const { url } = await freshDb(t);
  const sim = await startSim(t);
  const w = await spawnWorker(t, workerEnv(url, sim.url, { SETTLE_WATCH_PARENT: '0', HTTP_HOST: '127.0.0.1', NODE_ENV: 'production' }));
  const line = await waitFor('the worker\'s http:listen', async () => w.logs.find((l) => l.includes('"event":"http:listen"')), 30_000);
  const port = (JSON.parse(line) as { port: number }).port;
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(health.status, 200, '/healthz');
  await waitFor('/readyz 200', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 30_000);
  t.pass('/readyz');
  w.child.kill('SIGTERM');
  t.equal(await w.exited, 0, 'SIGTERM: exit 0');
});
