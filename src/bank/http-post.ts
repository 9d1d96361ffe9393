/**
 * One JSON POST over node's `http`, classified by what the bank can have seen.
 * The distinction that matters for exactly-once is whether the request may have
 * reached the bank: a connection that was never established cannot have booked
 * anything, while any failure after it was established (timeout, reset, a cut-off
 * body) leaves the outcome unknown.
 */
import http from 'node:http';
import https from 'node:https';

export type PostOutcome =
  | { kind: 'response'; status: number; body: string }
  /** Never connected: the bank cannot have seen the request. */
  | { kind: 'not_sent'; reason: string }
  /** Connected, then timed out or lost: the bank may have processed it. */
  | { kind: 'lost'; reason: string };

/** Bodies above this are refused rather than buffered; a 1,000-line statement is ~250 KB. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface PostOptions {
  agent: http.Agent | https.Agent;
  timeoutMs: number;
}

export function postJson(url: URL, payload: string, opts: PostOptions): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const controller = new AbortController();
    let connected = false;
    let timedOut = false;
    let settled = false;
    const finish = (outcome: PostOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs);

    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(url, {
      method: 'POST',
      agent: opts.agent,
      signal: controller.signal,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(payload),
        accept: 'application/json',
      },
    });

    req.on('socket', (socket) => {
      // A reused keep-alive socket is already connected; a new one connects later.
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });

    req.on('error', (err: NodeJS.ErrnoException) => {
      const reason = timedOut ? `timeout after ${opts.timeoutMs} ms` : (err.code ?? err.message);
      finish(connected ? { kind: 'lost', reason } : { kind: 'not_sent', reason });
    });

    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy();
          finish({ kind: 'lost', reason: `response body over ${MAX_BODY_BYTES} bytes` });
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        finish({ kind: 'response', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      // A body cut off mid-way ('close' without 'end'): the bank answered something
      // we could not read, so the outcome is unknown.
      const cutOff = (): void =>
        finish({ kind: 'lost', reason: timedOut ? `timeout after ${opts.timeoutMs} ms` : 'response cut off' });
      res.on('error', cutOff);
      res.on('close', () => {
        if (!res.complete) cutOff();
      });
    });

    req.end(payload);
  });
}
