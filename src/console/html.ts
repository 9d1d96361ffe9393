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

export { maskAccount, maskDigits, maskJson } from '../mask.js';

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
