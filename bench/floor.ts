import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Timeline, TimelineRecorder } from './timeline.js';

const CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'bare-client.js');

/** P1's floor: what this machine allows before any of our work (bare-client.ts). */
export interface Floor {
  wallMs: number;
  /** wall / ceil(N/M)·L, as P1's ratio. */
  ratio: number;
  timeline?: Timeline;
}

/**
 * N calls from W bare clients (M/W in flight each, as P1's workers share the
 * cap) against P1's simulator, timed from the bank's side like P1.
 */
export async function runFloor(simUrl: string, recorder: TimelineRecorder, n: number, latencyMs: number, maxInFlight: number, workers: number): Promise<Floor> {
  const url = simUrl.replace(/\/+$/, '') + '/DrawingTransfer.nh';
  const kids: ChildProcess[] = [];
  const cleanup = () => kids.forEach((k) => k.kill('SIGKILL'));
  process.once('exit', cleanup);
  try {
    const share = (i: number) => Math.floor(maxInFlight / workers) + (i < maxInFlight % workers ? 1 : 0);
    const calls = (i: number) => Math.floor(n / workers) + (i < n % workers ? 1 : 0);
    for (let i = 0; i < workers; i++) kids.push(fork(CLIENT, [url, String(share(i))], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    await Promise.all(kids.map((k) => new Promise<void>((resolve, reject) => {
      k.once('message', () => resolve());
      k.once('exit', (code) => reject(new Error(`a bare client exited (${code}) before it was ready`)));
    })));
    const round = (count: (i: number) => number) =>
      Promise.all(kids.map((k, i) => new Promise<void>((resolve, reject) => {
        k.once('message', (m: { ms?: number; error?: string }) => (m.error ? reject(new Error(`bare client: ${m.error}`)) : resolve()));
        k.send({ n: count(i) });
      })));
    // A warm-up round (as P1's warm-up day), untimed.
    await round((i) => 2 * share(i));
    recorder.arm();
    const t0 = performance.now();
    await round(calls);
    const wallMs = performance.now() - t0;
    const timeline = recorder.take(wallMs, n, latencyMs, maxInFlight);
    return { wallMs, ratio: wallMs / (Math.ceil(n / maxInFlight) * latencyMs), ...(timeline ? { timeline } : {}) };
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}
