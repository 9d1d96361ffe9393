import { z } from 'zod';
import type { Config } from '../config.js';
import { dateSchema } from '../domain.js';
import { dayReport, exportJournal } from '../db/report.js';
import type { Logger } from '../log.js';
import { journalCsvHeader, journalCsvLines, journalJsonLine, reportCsv, reportJson, reportTable } from '../report/format.js';
import { UsageError, parseCommand } from './args.js';
import { withDb } from './commands.js';

export class NoSuchDayError extends Error {
  override name = 'NoSuchDayError';
  readonly code = 'unknown_day';
}

/** stdout's error (a reader that went away: EPIPE), once it happened: the next write stops the export. */
let stdoutError: Error | undefined;

/** Writes to stdout, waiting while the pipe is full (a long export never piles up in memory). */
function write(s: string): Promise<void> {
  if (!stdoutError && process.stdout.listenerCount('error') === 0) process.stdout.on('error', (e) => (stdoutError = e));
  if (stdoutError) return Promise.reject(new Error(`stdout closed: ${stdoutError.message}`));
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(new Error(`stdout closed: ${e.message}`));
    process.stdout.once('error', onError);
    const done = () => (process.stdout.off('error', onError), resolve());
    if (process.stdout.write(s)) done();
    else process.stdout.once('drain', done);
  });
}

/** `settle report --date D [--format table|csv|json]`: settlement.day_report of the day (a row per kind and the totals). */
export async function cmdReport(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { date: { type: 'string' }, format: { type: 'string' } },
    z.object({ date: dateSchema, format: z.enum(['table', 'csv', 'json']).default('table') }).strict(),
  );
  await withDb(config, logger, async (db) => {
    const rows = await dayReport(db, o.date);
    if (rows.length === 0) throw new NoSuchDayError(`no settlement day ${o.date}: nothing to report`);
    await write(o.format === 'csv' ? reportCsv(rows) : o.format === 'json' ? `${reportJson(rows)}\n` : `${reportTable(rows)}\n`);
  });
}

/**
 * `settle export journal --from D1 --to D2 [--format csv|json]`: every
 * journal line of those business dates, in (entry, line) order, read and
 * written a page at a time; each entry checked to balance on the way.
 */
export async function cmdExport(argv: string[], config: Config, logger: Logger) {
  const o = parseCommand(
    argv,
    { from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string' } },
    z.object({ what: z.literal('journal', { errorMap: () => ({ message: 'what to export: journal' }) }), from: dateSchema, to: dateSchema, format: z.enum(['csv', 'json']).default('csv') }).strict(),
    ['what'],
  );
  if (o.from > o.to) throw new UsageError(`--from ${o.from} is after --to ${o.to}`);
  await withDb(config, logger, async (db) => {
    let first = true;
    if (o.format === 'csv') await write(journalCsvHeader());
    else await write('[');
    const r = await exportJournal(db, o.from, o.to, async (lines) => {
      if (o.format === 'csv') return write(journalCsvLines(lines));
      const text = lines.map((l) => {
        const sep = first ? '\n' : ',\n';
        first = false;
        return sep + journalJsonLine(l);
      });
      return write(text.join(''));
    });
    if (o.format === 'json') await write(r.lines > 0 ? '\n]\n' : ']\n');
    logger.info({ event: 'export:journal', from: o.from, to: o.to, lines: r.lines, entries: r.entries, debit: r.debit.toString(), credit: r.credit.toString() }, 'journal exported');
    process.stderr.write(`exported ${r.lines} line(s) of ${r.entries} balanced entr${r.entries === 1 ? 'y' : 'ies'}: debits ${r.debit} KRW = credits ${r.credit} KRW\n`);
  });
}
