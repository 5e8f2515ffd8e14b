// The metrics exporter: one prom-client registry per exposition format (Prometheus text and
// OpenMetrics, which carries exemplars), plus pre-rendered text sections for the large gauge
// families that are rebuilt once per poll instead of on every scrape.
import { Registry, openMetricsContentType, prometheusContentType } from "prom-client";

/** A family rendered outside prom-client, e.g. once per poll. */
export interface TextSection {
  /** Prometheus text (for a section without chunks(), also its OpenMetrics text: gauges only). */
  render(): string;
  /**
   * The text as pieces, some already encoded: a scrape then writes them as they are instead of
   * building (and encoding) one large string each time. At 10,000 consumers the text is ~14 MB.
   * `openMetrics`: counters are named without `_total` in their HELP and TYPE lines there.
   */
  chunks?(openMetrics: boolean): readonly (string | Buffer)[] | Promise<readonly (string | Buffer)[]>;
}

export type Chunk = string | Buffer;

export class MetricsRegistry {
  readonly prometheus = new Registry();
  readonly openMetrics = new Registry<typeof openMetricsContentType>();
  private readonly sections: TextSection[] = [];

  constructor() {
    this.openMetrics.setContentType(openMetricsContentType);
  }

  /** Pass as `registers:` when creating a prom-client metric, so it is exposed in both formats. */
  get registers(): [Registry, Registry<typeof openMetricsContentType>] {
    return [this.prometheus, this.openMetrics];
  }

  addSection(section: TextSection): void {
    this.sections.push(section);
  }

  /** Removes every metric and section (tests build several daemons in one process). */
  clear(): void {
    this.prometheus.clear();
    this.openMetrics.clear();
    this.sections.length = 0;
  }

  async render(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const { contentType, chunks } = await this.renderChunks(openMetrics);
    return {
      contentType,
      body: chunks.map((c) => (typeof c === "string" ? c : c.toString("utf8"))).join(""),
    };
  }

  /** The exposition as pieces to write in order (what the HTTP endpoint sends). */
  async renderChunks(openMetrics: boolean): Promise<{ contentType: string; chunks: Chunk[] }> {
    // One render at a time: an OpenMetrics render renames counters while it runs (see below).
    const result = this.rendering.then(() => this.renderNow(openMetrics));
    this.rendering = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private rendering: Promise<void> = Promise.resolve();

  private async renderNow(openMetrics: boolean): Promise<{ contentType: string; chunks: Chunk[] }> {
    const extra = (
      await Promise.all(this.sections.map((s) => (s.chunks ? s.chunks(openMetrics) : [s.render()])))
    ).flat();
    if (!openMetrics) {
      return { contentType: prometheusContentType, chunks: [await this.prometheus.metrics(), ...extra] };
    }
    // prom-client's OpenMetrics registry strips `_total` from each counter's name *in place*; the
    // counters are shared with the Prometheus registry, which would then lose the suffix for good.
    const names = this.openMetrics.getMetricsAsArray().map((m) => [m, m.name] as const);
    try {
      // OpenMetrics ends with "# EOF": the sections go before it.
      const text = await this.openMetrics.metrics();
      return {
        contentType: openMetricsContentType,
        chunks: [text.replace(/# EOF\n?$/, ""), ...extra, "# EOF\n"],
      };
    } finally {
      for (const [metric, name] of names) (metric as { name: string }).name = name;
    }
  }
}

/** Buckets fitting agents' work: 1 s to 4 h. */
export const AGENT_LATENCY_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];
