/**
 * The monitoring kit (docs/grafana/settlement.json, docs/prometheus/alerts.yml)
 * names only metrics the worker exports: every metric of every PromQL
 * expression is a family of the worker's real /metrics registry (rendered
 * against a real database with a settlement day), or Prometheus' own `up`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { createWorkerMetrics } from '../../src/ops/metrics.js';
import { seed } from '../../src/seed.js';
import { freshDb } from '../helpers/db.js';
import { pastDate } from '../helpers/fixtures.js';
import { parsePrometheus } from '../helpers/prom.js';
import { parseYamlSubset, type Yaml } from '../helpers/yaml-subset.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** PromQL words that are not metric names. */
const FUNCTIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'absent', 'by', 'without', 'or', 'and', 'unless', 'on', 'ignoring', 'bool', 'offset', 'time']);

/** The metric names of a PromQL expression (strings, label matchers, groupings and ranges taken out first). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  const words = bare.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? [];
  return [...new Set(words.filter((w) => !FUNCTIONS.has(w)))];
}

function balanced(expr: string): boolean {
  let depth = 0;
  for (const c of expr.replace(/"(?:[^"\\]|\\.)*"/g, '')) {
    if (c === '(' || c === '{' || c === '[') depth++;
    if (c === ')' || c === '}' || c === ']') depth--;
    if (depth < 0) return false;
  }
  return depth === 0;
}

t.test('metricNames reads PromQL as the kit uses it', async (t) => {
  t.same(metricNames('max by (business_date, kind) (settle_day_blocked) == 1'), ['settle_day_blocked']);
  t.same(metricNames('histogram_quantile(0.95, sum by (le, api) (rate(settle_bank_call_duration_seconds_bucket[5m])))'), ['settle_bank_call_duration_seconds_bucket']);
  t.same(metricNames('(sum(up{job="settlement"}) == 0) or absent(up{job="settlement"}) or (min(settle_worker_heartbeat_age_seconds) > 120)'), ['up', 'settle_worker_heartbeat_age_seconds']);
  t.same(metricNames('settle_dya_blocked{kind="tax"}'), ['settle_dya_blocked'], 'a typo stays a name (and then fails the check below)');
});

t.test('the YAML subset parser: what it reads, and what it refuses', async (t) => {
  t.same(parseYamlSubset('a:\n  - b: "x # not a comment"\n    c: 1 # comment\n  - d\n'), { a: [{ b: 'x # not a comment', c: '1' }, 'd'] });
  t.throws(() => parseYamlSubset('a: [1, 2]\n'), /outside the YAML subset/);
  t.throws(() => parseYamlSubset('a:\n\tb: 1\n'), /tabs/);
  t.throws(() => parseYamlSubset('a: 1\na: 2\n'), /duplicate key/);
  t.throws(() => parseYamlSubset('a: 1\n   b: 2\n'), /unexpected indentation|cannot place/);
});

t.test('the Grafana dashboard and the Prometheus alert rules name only metrics the worker exports', async (t) => {
  // What a worker's /metrics declares, from the real registry on a real database.
  const { db } = await freshDb(t);
  await seed(db, { date: pastDate(1), accounts: 2, kinds: ['tax'] });
  const metrics = createWorkerMetrics(db, createLogger('silent'));
  const body = (await metrics.render()).body;
  const families = new Map([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  t.ok(parsePrometheus(body).length > 0, 'the exposition parses');
  t.equal(families.get('settle_db_scrape_ok'), 'gauge');
  t.ok(body.includes('settle_day_verdict{'), 'day gauges have samples for the seeded day');
  const exported = (name: string) => {
    if (families.has(name)) return true;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return base !== name && families.get(base) === 'histogram';
  };
  const PROMETHEUS_OWN = new Set(['up']);

  // The dashboard.
  const dash = JSON.parse(readFileSync(path.join(root, 'docs/grafana/settlement.json'), 'utf8')) as {
    title: string; uid: string; panels: Array<{ title: string; type: string; gridPos: object; targets: Array<{ expr: string; refId: string }> }>;
  };
  t.ok(dash.title && dash.uid, 'a title and a uid');
  const want = ['verdict', 'unpaid', 'in flight vs the cap', 'latency', 'outcomes', 'heartbeats'];
  for (const w of want) t.ok(dash.panels.some((p) => p.title.toLowerCase().includes(w)), `a panel for ${w}`);
  const dashExprs = dash.panels.flatMap((p) => {
    t.ok(p.gridPos && p.type && p.targets.length > 0, `panel "${p.title}": type, position, queries`);
    return p.targets.map((x) => ({ where: `dashboard "${p.title}" ${x.refId}`, expr: x.expr }));
  });

  // The alert rules.
  const rules = parseYamlSubset(readFileSync(path.join(root, 'docs/prometheus/alerts.yml'), 'utf8')) as { groups: Array<{ name: string; rules: Array<Record<string, Yaml>> }> };
  t.ok(Array.isArray(rules.groups) && rules.groups.length > 0, 'groups');
  const alerts = rules.groups.flatMap((g) => g.rules);
  t.same(alerts.map((a) => a['alert']).sort(), ['SettlementDatabaseGaugesFailing', 'SettlementDayBlocked', 'SettlementDeadlineMissed', 'SettlementNoLiveWorker', 'SettlementScrapeFailing', 'SettlementUnresolvedTooLong'],
    'blocked day, unresolved too long, deadline missed, no live worker, scrape failing');
  for (const a of alerts) {
    t.type(a['expr'], 'string', `${a['alert']}: expr`);
    t.ok(a['for'] === undefined || /^\d+[smh]$/.test(a['for'] as string), `${a['alert']}: for is a duration`);
    t.ok((a['labels'] as Record<string, string>)?.['severity'], `${a['alert']}: severity`);
    t.ok((a['annotations'] as Record<string, string>)?.['summary'], `${a['alert']}: summary`);
  }
  const alertExprs = alerts.map((a) => ({ where: `alert ${a['alert']}`, expr: a['expr'] as string }));

  const named = new Set<string>();
  for (const { where, expr } of [...dashExprs, ...alertExprs]) {
    t.ok(balanced(expr), `${where}: brackets balance`);
    const names = metricNames(expr);
    t.ok(names.length > 0, `${where}: names a metric`);
    for (const n of names) {
      named.add(n);
      t.ok(exported(n) || PROMETHEUS_OWN.has(n), `${where}: ${n} is exported by the worker${PROMETHEUS_OWN.has(n) ? ' (Prometheus\' own)' : ''}`);
    }
  }
  for (const must of ['settle_day_verdict', 'settle_day_unpaid_krw', 'settle_bank_slots_in_use', 'settle_bank_max_in_flight', 'settle_bank_calls_total',
    'settle_bank_call_duration_seconds_bucket', 'settle_worker_heartbeat_age_seconds', 'settle_day_blocked', 'settle_day_chunks_unresolved', 'settle_day_withdraw_overdue', 'up']) {
    t.ok(named.has(must), `the kit uses ${must}`);
  }
});
