// Scraping orgwatch in tests and reading exact values out of the exposition.
import { TASK_OUTCOMES } from "../../src/model/tasks/index.js";
import parsePrometheusTextFormat from "parse-prometheus-text-format";

export interface Scrape {
  readonly text: string;
  /** The value of the one series matching `name` and all of `labels`; undefined when absent. Throws when ambiguous. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every series of `name` matching `labels`, with its labels. */
  series(name: string, labels?: Record<string, string>): { labels: Record<string, string>; value: number }[];
  /** Histogram count/sum for the series matching labels. */
  histogram(
    name: string,
    labels?: Record<string, string>,
  ): { count: number; sum: number; buckets: Record<string, number> } | undefined;
}

function matches(have: Record<string, string> | undefined, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => (have?.[k] ?? "") === v);
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

interface HistogramSeries {
  labels: Record<string, string>;
  count: number;
  sum: number;
  buckets: Record<string, number>;
}

/** Every series of histogram `name` in a Prometheus text exposition, keyed by its labels without `le`. */
function histograms(text: string, name: string): HistogramSeries[] {
  const byLabels = new Map<string, HistogramSeries>();
  for (const line of text.split("\n")) {
    const sample = SAMPLE_LINE.exec(line);
    if (!sample) continue;
    const suffix = sample[1]!.startsWith(name + "_") ? sample[1]!.slice(name.length + 1) : "";
    if (suffix !== "bucket" && suffix !== "sum" && suffix !== "count") continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (sample[2] ?? "").matchAll(LABEL_PAIR)) labels[k!] = v!.replace(/\\(.)/g, "$1");
    const le = labels["le"];
    delete labels["le"];
    const key = JSON.stringify(Object.entries(labels).sort());
    let h = byLabels.get(key);
    if (!h) byLabels.set(key, (h = { labels, count: 0, sum: 0, buckets: {} }));
    const value = Number(sample[3]);
    if (suffix === "count") h.count = value;
    else if (suffix === "sum") h.sum = value;
    else if (le !== undefined) h.buckets[le] = value;
  }
  return [...byLabels.values()];
}

export function parseScrape(text: string): Scrape {
  const families = parsePrometheusTextFormat(text);
  const byName = new Map(families.map((f) => [f.name, f]));
  const series: Scrape["series"] = (name, labels = {}) => {
    const fam = byName.get(name);
    if (!fam) return [];
    return fam.metrics
      .filter((m) => matches(m.labels, labels))
      .map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }));
  };
  return {
    text,
    series,
    value(name, labels = {}) {
      const found = series(name, labels);
      if (found.length > 1)
        throw new Error(`${name}${JSON.stringify(labels)} matches ${found.length} series`);
      return found[0]?.value;
    },
    histogram(name, labels = {}) {
      // Read from the text: parse-prometheus-text-format drops histograms' labels, sums and counts.
      const found = histograms(text, name).filter((h) => matches(h.labels, labels));
      if (found.length > 1)
        throw new Error(`${name}${JSON.stringify(labels)} matches ${found.length} histograms`);
      const h = found[0];
      return h && { count: h.count, sum: h.sum, buckets: h.buckets };
    },
  };
}

export async function scrape(baseUrl: string, path = "/metrics"): Promise<Scrape> {
  const res = await fetch(baseUrl + path);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return parseScrape(await res.text());
}

/**
 * The task books of one orgwatch for `role` (DESIGN.md §7): published = every outcome + open.
 * Undefined when they balance, else what does not add up.
 */
export function ledgerBalances(m: Scrape, role: string): string | undefined {
  const published = m.series("orgwatch_tasks_published_total", { role }).reduce((a, s) => a + s.value, 0);
  const ended = TASK_OUTCOMES.map(
    (outcome) =>
      [
        outcome,
        m.series("orgwatch_tasks_completed_total", { role, outcome }).reduce((a, s) => a + s.value, 0),
      ] as const,
  );
  const open = m.value("orgwatch_tasks_open", { role }) ?? 0;
  const sum = ended.reduce((a, [, n]) => a + n, 0) + open;
  return published === sum
    ? undefined
    : `published ${published} ≠ ${ended.map(([o, n]) => `${o} ${n}`).join(" + ")} + open ${open}`;
}
