import { createRequire } from 'node:module';

/** One metric family as parse-prometheus-text-format (prom2json's shape) gives it. */
export interface PromFamily {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

/** Parses Prometheus text with a real parser (parse-prometheus-text-format). */
export function parsePrometheus(text: string): PromFamily[] {
  return parse(text);
}

/** The value of `family` for the sample whose labels include `labels` (undefined if there is none). */
export function sampleValue(families: PromFamily[], family: string, labels: Record<string, string>): number | undefined {
  const f = families.find((x) => x.name === family);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return m?.value === undefined ? undefined : Number(m.value);
}
