import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * The console's static assets. Everything ships in the package: the style
 * sheet and the refresh script are below, the Korean font is
 * @fontsource/noto-sans-kr from node_modules (no CDN: the hosts may have no
 * internet).
 */
export const CONSOLE_CSS = `
:root { --ok:#1e7b34; --bad:#b3261e; --warn:#9a6700; --run:#0b5cad; --wait:#5f6368; --bg:#f6f7f9; --line:#d9dce1; }
* { box-sizing: border-box; }
body { margin:0; font-family:'Noto Sans KR', system-ui, sans-serif; background:var(--bg); color:#1f2328; font-size:14px; }
header { background:#1f2a37; color:#fff; padding:8px 16px; display:flex; gap:16px; align-items:center; flex-wrap:wrap; }
header a { color:#fff; text-decoration:none; font-weight:700; }
header .mode { margin-left:auto; font-size:12px; opacity:.9; }
header .mode a { font-weight:400; text-decoration:underline; }
main { padding:12px 16px; max-width:1400px; }
h1 { font-size:20px; margin:8px 0 12px; } h2 { font-size:16px; margin:18px 0 8px; } h3 { font-size:14px; margin:12px 0 6px; }
table { border-collapse:collapse; background:#fff; width:100%; margin-bottom:8px; }
th, td { border:1px solid var(--line); padding:4px 6px; text-align:left; vertical-align:top; }
th { background:#eef0f3; font-weight:700; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.grid td { min-width:150px; }
.verdict { display:inline-block; padding:1px 6px; border-radius:4px; color:#fff; font-weight:700; font-size:12px; }
.verdict.done { background:var(--ok); } .verdict.blocked { background:var(--bad); } .verdict.paused { background:var(--warn); }
.verdict.in-progress { background:var(--run); } .verdict.waiting { background:var(--wait); }
.stages { display:flex; gap:2px; flex-wrap:wrap; margin:4px 0; }
.st { font-size:11px; padding:0 4px; border-radius:3px; border:1px solid var(--line); background:#fff; color:#444; }
.st.done { background:#dff3e4; border-color:#9fd3ad; color:var(--ok); }
.st.blocked { background:#fde2e0; border-color:#f1a7a1; color:var(--bad); font-weight:700; }
.st.running { background:#dce9f9; border-color:#9dbfe8; color:var(--run); }
.st.pending { background:#f1f2f4; color:var(--wait); }
.amounts { font-size:12px; color:#333; } .amounts .unpaid { color:var(--bad); font-weight:700; }
.day-verdict { margin:4px 0 12px; }
.flash { padding:8px 12px; border-radius:4px; margin:8px 0; background:#dff3e4; border:1px solid #9fd3ad; }
.flash.error { background:#fde2e0; border-color:#f1a7a1; }
.note { color:#555; font-size:12px; }
.readonly { padding:6px 10px; background:#fff8e1; border:1px solid #f0d58c; border-radius:4px; display:inline-block; }
section.kind { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 12px; margin:12px 0; }
form.action { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px; margin:8px 0; display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
form.action input[type=text], form.action input[type=password] { min-width:280px; padding:4px; }
button { padding:4px 10px; cursor:pointer; }
svg.chart { background:#fff; border:1px solid var(--line); }
svg.chart .line { fill:none; stroke:var(--run); stroke-width:2; }
svg.chart .axis { stroke:#999; stroke-width:1; } svg.chart text { font-size:10px; fill:#555; }
.live-at { font-size:11px; color:#777; }
nav.tabs { display:flex; gap:4px; margin:0 0 10px; border-bottom:1px solid var(--line); }
nav.tabs a { padding:4px 12px; border:1px solid var(--line); border-bottom:none; border-radius:4px 4px 0 0; background:#eef0f3; color:#1f2328; text-decoration:none; }
nav.tabs a.on { background:#fff; font-weight:700; }
table.report td.total { font-weight:700; background:#f7f8fa; }
figure.history { margin:8px 0 16px; }
svg.history-chart text { font-family:'Noto Sans KR', system-ui, sans-serif; }
svg.history-chart .title { font-size:13px; font-weight:700; fill:#1f2328; }
svg.history-chart .legend { font-size:11px; fill:#333; }
svg.history-chart .grid { stroke:#eceef1; stroke-width:1; }
svg.history-chart .k-tax { fill:#4e79a7; } svg.history-chart .k-platform_fee { fill:#f28e2b; } svg.history-chart .k-early_repayment_fee { fill:#59a14f; }
svg.history-chart .k-deferred_fee { fill:#b07aa1; } svg.history-chart .k-upfront_fee { fill:#76b7b2; } svg.history-chart .k-withdrawal_fee { fill:#edc948; }
svg.history-chart .done { fill:var(--ok); } svg.history-chart .not-done { fill:var(--wait); font-size:16px; }
svg.history-chart .failures { fill:var(--bad); } svg.history-chart .breaks { fill:var(--warn); }
code { font-size:12px; }
`;

/**
 * Refresh without reloading: the element #live says whether something is in
 * flight (data-active) and how often to poll; the script fetches the same
 * URL with X-Console-Live and swaps #live for the answer. Forms live outside
 * #live, so a reason being typed is never replaced.
 */
export const CONSOLE_JS = `(function () {
  'use strict';
  window.__consoleRefreshes = 0;
  function schedule() {
    var live = document.getElementById('live');
    if (!live) return;
    var active = live.getAttribute('data-active') === 'true';
    var ms = Number(live.getAttribute(active ? 'data-poll-ms' : 'data-idle-ms')) || 15000;
    setTimeout(refresh, ms);
  }
  function refresh() {
    if (document.hidden) return schedule();
    fetch(location.pathname + location.search, { headers: { 'X-Console-Live': '1' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (res) {
        if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); return Promise.reject(new Error('signed out')); }
        return res.ok ? res.text() : Promise.reject(new Error('HTTP ' + res.status));
      })
      .then(function (text) {
        var live = document.getElementById('live');
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var next = doc.getElementById('live');
        if (live && next) {
          live.replaceWith(document.importNode(next, true));
          window.__consoleRefreshes++;
        }
        var status = document.getElementById('live-status');
        if (status) status.textContent = '';
      })
      .catch(function (e) {
        var status = document.getElementById('live-status');
        if (status) status.textContent = 'refresh failed (' + e.message + '); retrying';
      })
      .then(schedule);
  }
  document.addEventListener('submit', function (ev) {
    var f = ev.target;
    var reason = f && f.querySelector && f.querySelector('input[name=reason]');
    if (reason && !reason.value.trim()) {
      ev.preventDefault();
      reason.focus();
      reason.setAttribute('aria-invalid', 'true');
    }
  });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', schedule); else schedule();
})();
`;

const require = createRequire(import.meta.url);
let fontDir: string | undefined;
function fontRoot(): string {
  fontDir ??= path.dirname(require.resolve('@fontsource/noto-sans-kr/400.css'));
  return fontDir;
}

/** Noto Sans KR: the 400 and 700 style sheets and their font files, from node_modules only. */
export async function fontAsset(rel: string): Promise<{ type: string; body: Buffer } | undefined> {
  if (/^(400|700)\.css$/.test(rel)) {
    return { type: 'text/css; charset=utf-8', body: await readFile(path.join(fontRoot(), rel)) };
  }
  const m = /^files\/(noto-sans-kr-[0-9a-z-]+-(400|700)-normal\.(woff2|woff))$/.exec(rel);
  if (!m) return undefined;
  try {
    return { type: m[3] === 'woff2' ? 'font/woff2' : 'font/woff', body: await readFile(path.join(fontRoot(), 'files', m[1]!)) };
  } catch {
    return undefined;
  }
}
