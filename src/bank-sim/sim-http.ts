/** Small HTTP helpers for the simulator's server side. */
import type http from 'node:http';

/** Request bodies above this are refused (413); NH requests are a few hundred bytes. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** The whole body, 'too_large', or 'gone' when the client went away first. */
export function readBody(req: http.IncomingMessage, maxBytes = MAX_REQUEST_BYTES): Promise<Buffer | 'too_large' | 'gone'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) resolve('too_large');
      else chunks.push(chunk);
    });
    // The promise settles once: 'close' after 'end' changes nothing.
    req.on('end', () => resolve(size > maxBytes ? 'too_large' : Buffer.concat(chunks)));
    req.on('error', () => resolve('gone'));
    req.on('close', () => resolve('gone'));
  });
}

/** Parsed JSON, undefined for an empty body, or a SyntaxError. */
export function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  return JSON.parse(raw.toString('utf8'));
}

/** True once the response can no longer be written (answered, or the socket is gone). */
export function isGone(res: http.ServerResponse): boolean {
  return res.writableEnded || res.destroyed || res.socket === null || res.socket.destroyed;
}

export function sendText(res: http.ServerResponse, status: number, text: string, contentType = 'application/json; charset=utf-8'): void {
  if (isGone(res)) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body));
}
