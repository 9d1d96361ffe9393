/**
 * HTML with escaping by default: every value interpolated into `html`...``
 * is escaped unless it is itself Html (built by this module). Whatever comes
 * from the database — a bank message, an operator's reason — goes through
 * here and shows as text.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (v: unknown): string => String(v).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function part(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === null || v === undefined || v === false) return '';
  return escapeHtml(v);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** 1,234,567 (KRW are integers). */
export const krw = (n: bigint | number): string => BigInt(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** An account number shows its last four digits only. */
export function maskAccount(s: string | null | undefined): string {
  if (!s) return '';
  return s.length <= 4 ? '****' : `****${s.slice(-4)}`;
}

/** Every run of 10 or more digits (an account number, a FinAcno) shown by its last four only: for text we did not build (an error's message). */
export const maskDigits = (s: string): string => s.replace(/\d{10,}/g, (d) => maskAccount(d));

/** Keys of a JSON row (audit args, reconciliation lines) that hold account numbers. */
const ACCOUNT_KEY = /(account|acno|fin_acno|from|to)$/i;

/** A JSON value for people: account numbers masked, compact. */
export function maskJson(v: unknown): string {
  const walk = (x: unknown, key: string): unknown => {
    if (Array.isArray(x)) return x.map((y) => walk(y, key));
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y, k)]));
    if (typeof x === 'string' && ACCOUNT_KEY.test(key) && /^[0-9-]{5,}$/.test(x)) return maskAccount(x.replace(/-/g, ''));
    return x;
  };
  return JSON.stringify(walk(v, ''));
}

/** 12 s, 3 min, 2 h, 1 d. */
export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '-';
  const s = Math.max(0, seconds);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** The settlement kinds by their Korean names (SPEC 2). */
export const KIND_KO: Record<string, string> = {
  tax: '세금',
  platform_fee: '플랫폼 이용료',
  early_repayment_fee: '중도 상환 수수료',
  deferred_fee: '후취 수수료',
  upfront_fee: '선취 수수료',
  withdrawal_fee: '출금 수수료',
};

export const STAGE_KO: Record<string, string> = { record: '기록', pay: '지급', confirm: '지급 확인', withdraw: '출금', reconcile: '대사' };

/** A CSS class for a verdict or a state (letters only). */
export const cls = (s: string): string => s.toLowerCase().replace(/[^a-z]+/g, '-');
