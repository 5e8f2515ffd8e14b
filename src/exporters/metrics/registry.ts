// The metrics exporter: one prom-client registry per exposition format (Prometheus text and
// OpenMetrics, which carries exemplars), plus pre-rendered text sections for the large gauge
// families that are rebuilt once per poll instead of on every scrape.
import { promisify } from "node:util";
import { constants, createGzip, gunzip, gzipSync, type Gzip } from "node:zlib";
import { Registry, openMetricsContentType, prometheusContentType } from "prom-client";
import { ScratchArenas, type TextArena } from "./text-arena.js";
import { backgroundTurn } from "../../turns.js";

/**
 * zlib's fastest level: the large text is encoded anew every poll (16 MB: 22 ms at level 1, 85 ms
 * at the default 6, for 18 % more bytes; BENCHMARKS.md, 2026-12-07).
 */
const GZIP_OPTIONS = { level: constants.Z_BEST_SPEED, chunkSize: 64 * 1024 };

const gunzipped = promisify(gunzip);

/** One gzip member written piece by piece; its bytes once it is ended. */
export interface GzipMemberWriter<M> {
  write(text: string | Buffer): void;
  end(): M;
  /** Dropped unfinished (a newer poll came): its encoder's memory is given back now. */
  abandon(): void;
}

/** A member encoded as it is written, on libuv's threadpool: only the encoded bytes are kept. */
export function streamingGzip(): GzipMemberWriter<Promise<Buffer>> {
  const encoder: Gzip = createGzip(GZIP_OPTIONS);
  const out: Buffer[] = [];
  const ended = new Promise<Buffer>((resolve, reject) => {
    encoder.on("data", (b: Buffer) => out.push(b));
    encoder.on("end", () => resolve(out.length === 1 ? out[0]! : Buffer.concat(out)));
    encoder.on("error", reject);
  });
  return {
    write: (text) => {
      if (text.length > 0) encoder.write(text);
    },
    end: () => {
      encoder.end();
      return ended;
    },
    abandon: () => encoder.destroy(),
  };
}

/** A member encoded at once when ended (a small text: a millisecond or two on the event loop). */
export function gzipAtOnce(): GzipMemberWriter<Buffer> {
  const texts: (string | Buffer)[] = [];
  return {
    write: (text) => void texts.push(text),
    end: () =>
      gzipSync(
        Buffer.concat(texts.map((t) => (typeof t === "string" ? Buffer.from(t, "utf8") : t))),
        GZIP_OPTIONS,
      ),
    abandon: () => void (texts.length = 0),
  };
}

/** gzip of pieces written one after the other: no joined copy of them. */
function gzipPieces(pieces: readonly Buffer[]): Promise<Buffer> {
  const member = streamingGzip();
  for (const piece of pieces) member.write(piece);
  return member.end();
}

/**
 * Text that stays the same until the next poll, gzip-encoded once and kept: a scrape asking for
 * gzip sends it as it is, as members of a multi-member gzip body (RFC 1952; Prometheus, curl and
 * browsers read them), and compresses only what changes per scrape. Either kept as text and
 * encoded on the first scrape asking for gzip (`ofText`), or kept only encoded (`ofGzip`: the
 * JetStream families, 15.5 MB of text at 10,000 consumers for 0.8 MB of gzip) and decoded for a
 * scrape that does not ask for gzip (a person's curl; Prometheus always asks).
 */
export class Precompressed {
  private constructor(
    /** The text, when kept as text. */
    readonly raw: readonly Buffer[] | undefined,
    private encoded: Promise<readonly Buffer[]> | undefined,
  ) {}

  static ofText(pieces: readonly Buffer[]): Precompressed {
    return new Precompressed(pieces, undefined);
  }

  static ofGzip(members: readonly Buffer[]): Precompressed {
    return new Precompressed(undefined, Promise.resolve(members));
  }

  /** The gzip members, encoded on the first call (on libuv's threadpool, not the event loop). */
  get gzipped(): Promise<readonly Buffer[]> {
    this.encoded ??= gzipPieces(this.raw ?? []).then((member) => [member]);
    return this.encoded;
  }

  /** The text; decoded from the members when kept only encoded (not kept decoded: it is rare). */
  async plain(): Promise<readonly Buffer[]> {
    if (this.raw) return this.raw;
    return Promise.all((await this.gzipped).map((member) => gunzipped(member)));
  }
}

/** The chunks as written without compression. */
export async function identityBody(chunks: readonly Chunk[]): Promise<Buffer[]> {
  const pieces = await Promise.all(
    chunks.map((c) =>
      c instanceof Precompressed ? c.plain() : [typeof c === "string" ? Buffer.from(c, "utf8") : c],
    ),
  );
  return pieces.flat();
}

/** The chunks gzip-encoded: each precompressed chunk as its members, the rest compressed now. */
export async function gzipBody(chunks: readonly Chunk[]): Promise<Buffer[]> {
  const members: Promise<readonly Buffer[]>[] = [];
  let plain: Buffer[] = [];
  const flush = () => {
    if (plain.length > 0) members.push(gzipPieces(plain).then((member) => [member]));
    plain = [];
  };
  for (const c of chunks) {
    if (c instanceof Precompressed) {
      flush();
      members.push(c.gzipped);
    } else plain.push(typeof c === "string" ? Buffer.from(c, "utf8") : c);
  }
  flush();
  return (await Promise.all(members)).flat();
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
    if (stale?.()) {
      // Its `finally` runs: what it holds (encoders) is given back.
      steps.return(undefined as T);
      return undefined;
    }
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

  private async filtered(section: TextSection, chunks: readonly Chunk[]): Promise<readonly Chunk[]> {
    const keep = this.keep;
    if (!keep || section.selfFiltered) return chunks;
    const text = Buffer.concat(await identityBody(chunks)).toString("utf8");
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
      return { contentType, body: Buffer.concat(await identityBody(chunks)).toString("utf8") };
    } finally {
      release();
    }
  }

  /**
   * The exposition as pieces to write in order (what the HTTP endpoint sends); `release()` once they
   * are written (this scrape's own text is written in an arena the next scrape reuses).
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
      if (!released) this.scratch.give(scratch);
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
