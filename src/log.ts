import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

import { maskAccount } from './mask.js';

const ACCOUNT_PATHS = ['accountNo', 'from', 'to', '*.accountNo', '*.from', '*.to', 'account_no', '*.account_no', 'acno', '*.acno', 'fin_acno', '*.fin_acno', 'finAcno', '*.finAcno'];
const SECRET_PATHS = ['accessToken', '*.accessToken', 'AccessToken', '*.AccessToken', '*.*.AccessToken', 'BANK_ACCESS_TOKEN', '*.BANK_ACCESS_TOKEN', 'password', '*.password'];

/**
 * JSON logs by default; human-readable when stdout is a terminal. Secrets are
 * removed and account numbers masked by pino's redaction, so no call site can
 * forget it. Money (bigint) is logged as a decimal string.
 */
export function createLogger(level: string, opts: { name?: string; pretty?: boolean; destination?: { write(s: string): void } } = {}): Logger {
  const pretty = !opts.destination && (opts.pretty ?? Boolean(process.stdout.isTTY));
  const options: LoggerOptions = {
    name: opts.name ?? 'settle',
    level,
    redact: {
      paths: [...SECRET_PATHS, ...ACCOUNT_PATHS],
      censor: (value: unknown, path: string[]) => {
        const key = path[path.length - 1] ?? '';
        return SECRET_PATHS.some((p) => p.endsWith(key)) ? '[secret]' : maskAccount(String(value ?? ''));
      },
    },
    formatters: { log: (obj) => bigintsToStrings(obj) as Record<string, unknown> },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  };
  return (opts.destination ? pino(options, opts.destination) : pino(options)) as Logger;
}

function bigintsToStrings(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(bigintsToStrings);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = bigintsToStrings(x);
    return out;
  }
  return v;
}
