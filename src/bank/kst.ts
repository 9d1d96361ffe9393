/**
 * Korea Standard Time helpers. NH dates and times (Tsymd, Trtm, Prtm, Trdd) are
 * Korea local time. Korea has had no daylight saving time since 1988, so a fixed
 * +09:00 offset is exact and needs no time-zone database.
 */
const KST_OFFSET_MS = 9 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** YYYYMMDD in Korea time. */
export function kstYmd(at: Date): string {
  const k = new Date(at.getTime() + KST_OFFSET_MS);
  return `${pad(k.getUTCFullYear(), 4)}${pad(k.getUTCMonth() + 1, 2)}${pad(k.getUTCDate(), 2)}`;
}

/** HHMMSS in Korea time. */
export function kstHms(at: Date): string {
  const k = new Date(at.getTime() + KST_OFFSET_MS);
  return `${pad(k.getUTCHours(), 2)}${pad(k.getUTCMinutes(), 2)}${pad(k.getUTCSeconds(), 2)}`;
}

const YMD = /^(\d{4})(\d{2})(\d{2})$/;
const YMDHMS = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/;

/** True when `ymd` is a real calendar date written as YYYYMMDD. */
export function isValidYmd(ymd: string): boolean {
  const m = YMD.exec(ymd);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  // Date.UTC rolls 20240230 over to 20240301; a real date survives the round trip.
  return `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}` === ymd;
}

/** The instant at which the Korean day `ymd` ends (00:00 KST of the next day). */
export function kstEndOfDay(ymd: string): Date {
  const m = YMD.exec(ymd);
  if (!m) throw new RangeError(`not a YYYYMMDD date: ${ymd}`);
  const startUtcMs = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - KST_OFFSET_MS;
  return new Date(startUtcMs + DAY_MS);
}

/**
 * NH's 14-digit YYYYMMDDHHMMSS Korea-time stamp → ISO 8601 with the +09:00 offset,
 * or null when absent or malformed (a missing timestamp is not worth failing a
 * transfer whose outcome is otherwise clear).
 */
export function kstStampToIso(stamp: unknown): string | null {
  if (typeof stamp !== 'string') return null;
  const m = YMDHMS.exec(stamp);
  if (!m) return null;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+09:00`;
}

/** YYYYMMDDHHMMSS in Korea time. */
export function kstStamp(at: Date): string {
  return kstYmd(at) + kstHms(at);
}
