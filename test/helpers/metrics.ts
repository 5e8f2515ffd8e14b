// Scraping orgwatch in tests and reading exact values out of the exposition.
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
      const fam = byName.get(name);
      const found = fam?.metrics.filter((m) => matches(m.labels, labels)) ?? [];
      if (found.length > 1)
        throw new Error(`${name}${JSON.stringify(labels)} matches ${found.length} histograms`);
      const m = found[0];
      if (!m) return undefined;
      const buckets: Record<string, number> = {};
      for (const [le, v] of Object.entries(m.buckets ?? {})) buckets[le] = Number(v);
      return { count: Number(m.count), sum: Number(m.sum), buckets };
    },
  };
}

export async function scrape(baseUrl: string, path = "/metrics"): Promise<Scrape> {
  const res = await fetch(baseUrl + path);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return parseScrape(await res.text());
}
