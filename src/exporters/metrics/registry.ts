// The metrics exporter: one prom-client registry per exposition format (Prometheus text and
// OpenMetrics, which carries exemplars), plus pre-rendered text sections for the large gauge
// families that are rebuilt once per poll instead of on every scrape.
import { constants, createGzip } from "node:zlib";
import { Registry, openMetricsContentType, prometheusContentType } from "prom-client";
import { ScratchArenas, type TextArena } from "./text-arena.js";
import { backgroundTurn } from "../../turns.js";

/**
 * gzip of pieces written one after the other: no joined copy of them (17 MB at 10,000 consumers).
 * zlib's fastest level: the large text is encoded anew every poll (16 MB: 22 ms at level 1, 85 ms
 * at the default 6, for 18 % more bytes; BENCHMARKS.md, 2026-12-07).
 */
function gzipPieces(pieces: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoder = createGzip({ level: constants.Z_BEST_SPEED });
    const out: Buffer[] = [];
    encoder.on("data", (b: Buffer) => out.push(b));
    encoder.on("end", () => resolve(Buffer.concat(out)));
    encoder.on("error", reject);
    for (const piece of pieces) encoder.write(piece);
    encoder.end();
  });
}

/**
 * Text that stays the same until the next poll, with its gzip encoding made once (on the first
 * scrape that asks for gzip, on libuv's threadpool, not the event loop) and kept: a scrape asking
 * for gzip sends it as it is, as one member of a multi-member gzip body (RFC 1952; Prometheus, curl
 * and browsers read them), and compresses only what changes per scrape.
 */
export class Precompressed {
  private encoded: Promise<Buffer> | undefined;

  /** `arena`: where `raw` is written (text-arena.ts); held while a scrape or the encoding reads it. */
  constructor(
    readonly raw: readonly Buffer[],
    private readonly arena?: TextArena,
  ) {}

  get gzipped(): Promise<Buffer> {
    if (!this.encoded) {
      this.arena?.hold();
      this.encoded = gzipPieces(this.raw);
      void this.encoded.finally(() => this.arena?.release()).catch(() => undefined);
    }
    return this.encoded;
  }

  /** A scrape reads it until `release()`: a section handing it out holds it (see MetricsRegistry.renderChunks). */
  hold(): this {
    this.arena?.hold();
    return this;
  }

  release(): void {
    this.arena?.release();
  }
}

/** Releases what a scrape's sections held (Precompressed.hold). */
function releaseChunks(chunks: readonly Chunk[]): void {
  for (const c of chunks) if (c instanceof Precompressed) c.release();
}

function asBuffers(chunk: Chunk): readonly Buffer[] {
  if (chunk instanceof Precompressed) return chunk.raw;
  return [typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk];
}

/** The chunks as written without compression. */
export function identityBody(chunks: readonly Chunk[]): Buffer[] {
  return chunks.flatMap(asBuffers);
}

/** The chunks gzip-encoded: each precompressed chunk as its own member, the rest compressed now. */
export async function gzipBody(chunks: readonly Chunk[]): Promise<Buffer[]> {
  const members: Promise<Buffer>[] = [];
  let plain: Buffer[] = [];
  const flush = () => {
    if (plain.length > 0) members.push(gzipPieces(plain));
    plain = [];
  };
  for (const c of chunks) {
    if (c instanceof Precompressed) {
      flush();
      members.push(c.gzipped);
    } else plain.push(...asBuffers(c));
  }
  flush();
  return Promise.all(members);
}

/**
 * Runs a render's steps (a generator) with a turn of the event loop between them; resolves with its
 * result, or with undefined as soon as `stale()` turns true between two steps (a newer poll came).
 */
export function renderInTurns<T>(steps: Generator<void, T, void>): Promise<T>;
export function renderInTurns<T>(
  steps: Generator<void, T, void>,
  stale: () => boolean,
): Promise<T | undefined>;
export async function renderInTurns<T>(
  steps: Generator<void, T, void>,
  stale?: () => boolean,
): Promise<T | undefined> {
  let step = steps.next();
  while (!step.done) {
    await backgroundTurn();
    if (stale?.()) return undefined;
    step = steps.next();
  }
  return step.value;
}

/** A family rendered outside prom-client, e.g. once per poll. */
export interface TextSection {
  /** Prometheus text (for a section without chunks(), also its OpenMetrics text: gauges only). */
  render(): string;
  /**
   * The text as pieces, some already encoded: a scrape then writes them as they are instead of
   * building (and encoding) one large string each time. At 10,000 consumers the text is ~14 MB.
   * `openMetrics`: counters are named without `_total` in their HELP and TYPE lines there.
   * A Precompressed chunk written in a text arena is handed out held (`hold()`); the scrape releases it.
   * `scratch`: an arena for text made for this scrape alone, held until the scrape is over.
   */
  chunks?(openMetrics: boolean, scratch: TextArena): readonly Chunk[] | Promise<readonly Chunk[]>;
  /** It applies the export filter itself (the large JetStream section); else its text is filtered here. */
  readonly selfFiltered?: boolean;
}

/** The family a line of exposition text belongs to (a sample's metric name, or a HELP/TYPE line's). */
function familyOfLine(line: string): string | undefined {
  if (line.startsWith("# ")) return line.split(" ", 3)[2];
  const end = line.search(/[{ ]/);
  return end < 0 ? undefined : line.slice(0, end);
}

export type Chunk = string | Buffer | Precompressed;

export class MetricsRegistry {
  readonly prometheus = new Registry();
  readonly openMetrics = new Registry<typeof openMetricsContentType>();
  private readonly sections: TextSection[] = [];
  private readonly scratch = new ScratchArenas();

  constructor() {
    this.openMetrics.setContentType(openMetricsContentType);
  }

  /** Pass as `registers:` when creating a prom-client metric, so it is exposed in both formats. */
  get registers(): [Registry, Registry<typeof openMetricsContentType>] {
    return [this.prometheus, this.openMetrics];
  }

  private keep: ((name: string) => boolean) | undefined;

  /** Drops the families a filter switches off: prom-client's now, the sections' at each render. */
  keepFamilies(keep: (name: string) => boolean): void {
    for (const registry of [this.prometheus, this.openMetrics] as Registry[]) {
      for (const m of registry.getMetricsAsArray()) if (!keep(m.name)) registry.removeSingleMetric(m.name);
    }
    // OpenMetrics names a counter's HELP and TYPE without `_total`.
    this.keep = (name) => keep(name) || keep(`${name}_total`);
  }

  private filtered(section: TextSection, chunks: readonly Chunk[]): readonly Chunk[] {
    const keep = this.keep;
    if (!keep || section.selfFiltered) return chunks;
    const text = Buffer.concat(identityBody(chunks)).toString("utf8");
    releaseChunks(chunks);
    return [
      text
        .split("\n")
        .filter((line) => {
          const family = familyOfLine(line);
          return family === undefined || keep(family);
        })
        .join("\n"),
    ];
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
    const { contentType, chunks, release } = await this.renderChunks(openMetrics);
    try {
      return { contentType, body: Buffer.concat(identityBody(chunks)).toString("utf8") };
    } finally {
      release();
    }
  }

  /**
   * The exposition as pieces to write in order (what the HTTP endpoint sends); `release()` once they
   * are written (the large sections' text is reused at a later poll once no scrape holds it).
   */
  async renderChunks(
    openMetrics: boolean,
  ): Promise<{ contentType: string; chunks: Chunk[]; release: () => void }> {
    // One render at a time: an OpenMetrics render renames counters while it runs (see below).
    const scratch = this.scratch.take();
    const result = this.rendering.then(() => this.renderNow(openMetrics, scratch));
    this.rendering = result.then(
      () => undefined,
      () => undefined,
    );
    let rendered: Awaited<typeof result>;
    try {
      rendered = await result;
    } catch (err) {
      this.scratch.give(scratch);
      throw err;
    }
    // The text made for this scrape alone goes into the scratch arena, not into new Buffers.
    const chunks = rendered.chunks.map((c) => (typeof c === "string" ? scratch.write(c) : c));
    let released = false;
    const release = () => {
      if (!released) {
        releaseChunks(chunks);
        this.scratch.give(scratch);
      }
      released = true;
    };
    return { contentType: rendered.contentType, chunks, release };
  }

  private rendering: Promise<void> = Promise.resolve();

  private async renderNow(
    openMetrics: boolean,
    scratch: TextArena,
  ): Promise<{ contentType: string; chunks: Chunk[] }> {
    const extra = (
      await Promise.all(
        this.sections.map(async (s) =>
          this.filtered(s, s.chunks ? await s.chunks(openMetrics, scratch) : [s.render()]),
        ),
      )
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
