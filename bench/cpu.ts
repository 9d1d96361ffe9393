import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds used by processes, from /proc (Linux): where a payout's time
 * goes when the machine, not the bank, is the limit. Off Linux, or when
 * Postgres is on another host, the numbers are simply missing.
 */
const TICK = 100; // USER_HZ: 100 on every Linux this runs on

interface Stat {
  ppid: number;
  own: number; // utime + stime, seconds
  reaped: number; // cutime + cstime: children that exited and were waited for
}

function stat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)"; comm may contain spaces, so split after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const n = (i: number) => Number(f[i] ?? 0);
    return { ppid: n(1), own: (n(11) + n(12)) / TICK, reaped: (n(13) + n(14)) / TICK };
  } catch {
    return undefined;
  }
}

/** CPU seconds of these processes (each alone, not their children). */
export function cpuOf(pids: number[]): number {
  return pids.reduce((a, p) => a + (stat(p)?.own ?? 0), 0);
}

/**
 * CPU seconds of a Postgres server: the postmaster, its live children, and
 * (through cutime) the backends that already exited.
 */
export function serverCpu(postmaster: number): number | undefined {
  const pm = stat(postmaster);
  if (!pm) return undefined;
  let total = pm.own + pm.reaped;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = stat(Number(e));
    if (s && s.ppid === postmaster) total += s.own;
  }
  return total;
}

/** The postmaster of a backend (its parent), when that backend runs on this machine. */
export function postmasterOf(backendPid: number): number | undefined {
  const s = stat(backendPid);
  return s && s.ppid > 1 ? s.ppid : undefined;
}

/** This process (the benchmark itself, with the in-process bank simulator). */
export const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** CPU seconds the whole machine spent busy (all cores), from /proc/stat. */
function machineBusy(): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return (user + nice + system + irq + softirq + steal) / TICK;
  } catch {
    return undefined;
  }
}

export interface CpuSplit {
  workers: number;
  postgres: number | undefined;
  bench: number;
  /** Busy CPU of everything else on the machine (other users' builds and tests compete for the same cores). */
  others: number | undefined;
}

/** Samples CPU before and after a timed run; `done()` gives the seconds spent by each side. */
export function cpuMeter(workerPids: number[], postmaster: number | undefined) {
  const read = () => ({ workers: cpuOf(workerPids), postgres: postmaster ? serverCpu(postmaster) : undefined, bench: selfCpu(), machine: machineBusy() });
  const a = read();
  return {
    done(): CpuSplit {
      const b = read();
      const workers = b.workers - a.workers;
      const postgres = a.postgres !== undefined && b.postgres !== undefined ? b.postgres - a.postgres : undefined;
      const bench = b.bench - a.bench;
      const ours = workers + (postgres ?? 0) + bench;
      const others = a.machine !== undefined && b.machine !== undefined && postgres !== undefined ? Math.max(0, b.machine - a.machine - ours) : undefined;
      return { workers, postgres, bench, others };
    },
  };
}
