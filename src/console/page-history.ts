import { KINDS } from '../domain.js';
import type { HistoryRow } from '../db/report.js';
import { html, KIND_KO, krw, type Html } from './html.js';

/**
 * The last 30 or 90 business dates in pictures, drawn on the server as SVG
 * (readable without JavaScript; labels in the page's font, Noto Sans KR):
 * KRW paid per day stacked by kind, hours from the end of the business date
 * to DONE, and failures and reconciliation breaks per day.
 */
const W = 1100;
const L = 96;
const R = 16;
const T = 44;
const B = 44;

interface Day {
  date: string;
  paid: Map<string, bigint>;
  total: bigint;
  failures: bigint;
  breaks: bigint;
  /** Hours from the end of the business date to its last kind's DONE; null while a kind is not DONE. */
  doneHours: number | null;
  verdicts: string[];
}

function byDate(rows: readonly HistoryRow[]): Day[] {
  const days = new Map<string, Day>();
  for (const r of rows) {
    let d = days.get(r.business_date);
    if (!d) days.set(r.business_date, (d = { date: r.business_date, paid: new Map(), total: 0n, failures: 0n, breaks: 0n, doneHours: 0, verdicts: [] }));
    d.paid.set(r.kind, r.paid_krw);
    d.total += r.paid_krw;
    d.failures += r.chunks_failed;
    d.breaks += r.breaks;
    d.verdicts.push(r.verdict);
    d.doneHours = d.doneHours === null || r.done_hours === null ? null : Math.max(d.doneHours, r.done_hours);
  }
  return [...days.values()].sort((a, b) => a.date.localeCompare(b.date));
}

/** y of `v` on a 0..max scale of `h` pixels (bigint arithmetic: KRW never becomes a float). */
const scaleKrw = (v: bigint, max: bigint, h: number): number => (max === 0n ? 0 : Number((v * BigInt(h * 100)) / max) / 100);

function frame(id: string, title: string, h: number, days: Day[], yLabels: Array<{ y: number; text: string }>, body: Html, legend: Html = html``): Html {
  const plotW = W - L - R;
  const step = plotW / Math.max(days.length, 1);
  const every = Math.max(1, Math.ceil(days.length / 15));
  return html`<figure class="history" id="${id}">
<svg class="chart history-chart" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" role="img" aria-label="${title}">
<text class="title" x="${L}" y="16">${title}</text>
${legend}
${yLabels.map((y) => html`<line class="grid" x1="${L}" x2="${W - R}" y1="${y.y.toFixed(1)}" y2="${y.y.toFixed(1)}"></line><text class="y" x="${L - 6}" y="${(y.y + 4).toFixed(1)}" text-anchor="end">${y.text}</text>`)}
<line class="axis" x1="${L}" y1="${h - B}" x2="${W - R}" y2="${h - B}"></line>
${body}
${days.map((d, i) => (i % every === 0 || i === days.length - 1 ? html`<text class="x" x="${(L + step * (i + 0.5)).toFixed(1)}" y="${h - B + 16}" text-anchor="middle">${d.date.slice(5)}</text>` : ''))}
</svg>
</figure>`;
}

function paidChart(days: Day[]): Html {
  const h = 300;
  const plotH = h - T - B;
  const step = (W - L - R) / Math.max(days.length, 1);
  const bw = Math.max(2, step * 0.7);
  const max = days.reduce((m, d) => (d.total > m ? d.total : m), 0n);
  const yLabels = [0n, max / 2n, max].map((v) => ({ y: h - B - scaleKrw(v, max, plotH), text: krw(v) }));
  const legend = html`${KINDS.map((k, i) => html`<rect class="k-${k}" x="${L + i * 150}" y="24" width="10" height="10"></rect><text class="legend" x="${L + 14 + i * 150}" y="33">${KIND_KO[k]}</text>`)}`;
  const bars = days.map((d, i) => {
    let y = h - B;
    const x = L + step * i + (step - bw) / 2;
    return html`<g class="day" data-date="${d.date}" data-paid="${d.total.toString()}">${KINDS.filter((k) => (d.paid.get(k) ?? 0n) > 0n).map((k) => {
      const v = d.paid.get(k)!;
      const bh = scaleKrw(v, max, plotH);
      y -= bh;
      return html`<rect class="k-${k}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(bh, 0.5).toFixed(1)}"><title>${d.date} ${k} (${KIND_KO[k]}): ${krw(v)} KRW</title></rect>`;
    })}</g>`;
  });
  return frame('paid', '일별 지급액 (KRW paid per day, by kind)', h, days, yLabels, html`${bars}`, legend);
}

function doneChart(days: Day[]): Html {
  const h = 220;
  const plotH = h - T - B;
  const step = (W - L - R) / Math.max(days.length, 1);
  const bw = Math.max(2, step * 0.5);
  const max = Math.max(1, ...days.map((d) => d.doneHours ?? 0));
  const y = (v: number) => h - B - (v / max) * plotH;
  const yLabels = [0, max / 2, max].map((v) => ({ y: y(v), text: `${v.toFixed(1)} h` }));
  const marks = days.map((d, i) => {
    const x = L + step * i + (step - bw) / 2;
    if (d.doneHours === null) {
      return html`<text class="not-done" x="${(x + bw / 2).toFixed(1)}" y="${h - B - 4}" text-anchor="middle" data-date="${d.date}">·<title>${d.date}: not DONE yet (${[...new Set(d.verdicts)].join(', ')})</title></text>`;
    }
    const top = y(Math.max(d.doneHours, 0));
    return html`<rect class="done" data-date="${d.date}" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(h - B - top, 0.5).toFixed(1)}"><title>${d.date}: DONE ${d.doneHours.toFixed(1)} h after the day ended</title></rect>`;
  });
  return frame('done', '정산 완료까지 걸린 시간 (hours from the end of the day to DONE)', h, days, yLabels, html`${marks}`);
}

function troubleChart(days: Day[]): Html {
  const h = 200;
  const plotH = h - T - B;
  const step = (W - L - R) / Math.max(days.length, 1);
  const bw = Math.max(1, step * 0.35);
  const max = days.reduce((m, d) => (d.failures > m ? d.failures : d.breaks > m ? d.breaks : m), 1n);
  const yLabels = [0n, max].map((v) => ({ y: h - B - scaleKrw(v, max, plotH), text: v.toString() }));
  const legend = html`<rect class="failures" x="${L}" y="24" width="10" height="10"></rect><text class="legend" x="${L + 14}" y="33">실패 (failures)</text>
<rect class="breaks" x="${L + 160}" y="24" width="10" height="10"></rect><text class="legend" x="${L + 174}" y="33">대사 불일치 (breaks)</text>`;
  const bars = days.map((d, i) => {
    const x = L + step * i + step * 0.15;
    const fh = scaleKrw(d.failures, max, plotH);
    const bh = scaleKrw(d.breaks, max, plotH);
    return html`<g data-date="${d.date}" data-failures="${d.failures.toString()}" data-breaks="${d.breaks.toString()}">${d.failures > 0n ? html`<rect class="failures" x="${x.toFixed(1)}" y="${(h - B - fh).toFixed(1)}" width="${bw.toFixed(1)}" height="${fh.toFixed(1)}"><title>${d.date}: ${d.failures} failure(s)</title></rect>` : ''}${d.breaks > 0n ? html`<rect class="breaks" x="${(x + bw).toFixed(1)}" y="${(h - B - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}"><title>${d.date}: ${d.breaks} break(s)</title></rect>` : ''}</g>`;
  });
  return frame('trouble', '실패 및 대사 불일치 (failed attempts and reconciliation breaks)', h, days, yLabels, html`${bars}`, legend);
}

export function historyBody(rows: readonly HistoryRow[], daysBack: number): Html {
  const days = byDate(rows);
  const nav = html`<nav class="tabs">${[30, 90].map((n) => html`<a href="/history?days=${n}"${n === daysBack ? html` class="on" aria-current="page"` : ''}>last ${n} days</a>`)}</nav>`;
  if (days.length === 0) return html`${nav}<p>No settlement day in the last ${daysBack} days.</p>`;
  const paid = days.reduce((a, d) => a + d.total, 0n);
  const done = days.filter((d) => d.doneHours !== null).length;
  return html`${nav}
<p class="history-summary">${days.length} business date(s), ${krw(paid)} KRW paid; ${done} DONE; ${days.reduce((a, d) => a + d.failures, 0n)} failure(s), ${days.reduce((a, d) => a + d.breaks, 0n)} break(s).</p>
${paidChart(days)}
${doneChart(days)}
${troubleChart(days)}`;
}
