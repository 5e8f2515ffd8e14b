// Consumer and stream metrics (DESIGN.md §3) from the last JetStream poll. At 10,000 consumers these
// families hold about 170,000 series, too many for prom-client gauges rebuilt on every scrape: they
// are rendered to text once per poll (on the model's `polled` event) and the scrape only
// concatenates. The oldest-unacked age changes with time, so it alone is rendered at scrape time
// from the stored times kept per poll: exact at the moment of the scrape.
import { CONSUMER_STATUSES, lagOf } from "../../logic/consumer-status.js";
import type { ConsumerState, PollResult, StreamState } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { Precompressed, renderInTurns, type MetricsRegistry, type TextSection } from "./registry.js";
import { TextArena, TextArenas } from "./text-arena.js";
import { createExportFilter, type ExportFilter } from "../../logic/export-filter.js";
import { exportFilterOf } from "../../config/load.js";

const NO_FILTER = createExportFilter({});

interface Family<T> {
  readonly name: string;
  readonly help: string;
  /** undefined: no sample for this item (e.g. a time the server does not report). */
  value(item: T): number | undefined;
}

const CONSUMER_FAMILIES: readonly Family<ConsumerState>[] = [
  {
    name: "orgwatch_consumer_pending_messages",
    help: "Messages of the consumer's filter not yet delivered",
    value: (c) => c.pending,
  },
  {
    name: "orgwatch_consumer_ack_pending_messages",
    help: "Messages delivered to the consumer and not yet acknowledged",
    value: (c) => c.ackPending,
  },
  {
    name: "orgwatch_consumer_lag_messages",
    help: "Unprocessed work: pending plus ack-pending messages",
    value: lagOf,
  },
  {
    name: "orgwatch_consumer_redelivered_messages",
    help: "Messages delivered more than once and not yet acknowledged",
    value: (c) => c.redelivered,
  },
  {
    name: "orgwatch_consumer_waiting_pulls",
    help: "Pull requests waiting for messages",
    value: (c) => c.waitingPulls,
  },
  {
    name: "orgwatch_consumer_delivered_stream_sequence",
    help: "Stream sequence of the last message delivered to the consumer",
    value: (c) => c.deliveredStreamSequence,
  },
  {
    name: "orgwatch_consumer_ack_floor_stream_sequence",
    help: "Stream sequence up to which every message of the consumer is acknowledged",
    value: (c) => c.ackFloorStreamSequence,
  },
  {
    name: "orgwatch_consumer_last_delivery_timestamp_seconds",
    help: "When the consumer last delivered a message (Unix time; absent when the server does not say)",
    value: (c) => (c.lastDeliveryMs === undefined ? undefined : c.lastDeliveryMs / 1000),
  },
  {
    name: "orgwatch_consumer_last_ack_timestamp_seconds",
    help: "When the consumer last received an acknowledgement (Unix time; absent when the server does not say)",
    value: (c) => (c.lastAckMs === undefined ? undefined : c.lastAckMs / 1000),
  },
  {
    name: "orgwatch_consumer_ack_wait_seconds",
    help: "The consumer's ack wait: how long a delivered message may stay unacknowledged before redelivery",
    value: (c) => c.ackWaitMs / 1000,
  },
  {
    name: "orgwatch_consumer_ack_rate_per_second",
    help: "Messages acknowledged per second over --backpressure.window (shorter while less history exists; absent until two polls)",
    value: (c) => c.ackRatePerSecond,
  },
  {
    name: "orgwatch_consumer_drain_eta_seconds",
    help: "How long the consumer's lag takes at its ack rate: 0 with no lag, +Inf with lag and no acks",
    value: (c) => c.drainEtaSeconds,
  },
  {
    name: "orgwatch_consumer_max_deliver",
    help: "The consumer's maximum deliveries per message (-1 unlimited)",
    value: (c) => c.maxDeliver,
  },
];

const AGE = {
  name: "orgwatch_consumer_oldest_unacked_age_seconds",
  help: "Age of the consumer's oldest unacknowledged message, from its stored time (0 when none)",
};

const STATUS = {
  name: "orgwatch_consumer_status",
  help: "Consumer status over a window of polls (one-hot): ok, lagging, stalled (ack floor stuck past ack wait while work waits) or stopped (no delivery nor ack while work waits)",
};

const STREAM_FAMILIES: readonly Family<StreamState>[] = [
  { name: "orgwatch_stream_messages", help: "Messages stored in the stream", value: (s) => s.messages },
  { name: "orgwatch_stream_bytes", help: "Bytes stored in the stream", value: (s) => s.bytes },
  {
    name: "orgwatch_stream_last_sequence",
    help: "Sequence of the last message stored in the stream",
    value: (s) => s.lastSequence,
  },
  { name: "orgwatch_stream_consumers", help: "Consumers of the stream", value: (s) => s.consumers },
  {
    name: "orgwatch_stream_max_age_seconds",
    help: "How long the stream keeps a message (its max age; 0 = no limit): an unacknowledged task older than this is lost",
    value: (s) => s.maxAgeMs / 1000,
  },
];

const NEEDS_ESCAPE = /[\\"\n]/;

/** Label value escaping of the text exposition format: backslash, double quote, line feed. */
export function escapeLabelValue(value: string): string {
  // Almost no value needs escaping: test first and skip building a new string.
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

function formatSampleValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

function header(name: string, help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} gauge\n`;
}

function consumerLabels(c: ConsumerState): string {
  return `stream="${escapeLabelValue(c.stream)}",consumer="${escapeLabelValue(c.name)}",role="${escapeLabelValue(c.role)}",kind="${c.kind}"`;
}

function streamLabels(s: StreamState): string {
  return `stream="${escapeLabelValue(s.name)}",role="${escapeLabelValue(s.role)}",kind="${s.kind}"`;
}

/** The text of one poll; everything but the age is fixed until the next poll. */
interface Rendered {
  /** Every family but the age, encoded once (a chunk per family and slice), in exposition order. */
  readonly chunks: readonly Buffer[];
  /** The same as one string (tests). */
  readonly fixed: string;
  /** The age family's HELP and TYPE and its series for consumers with nothing unacknowledged (0). */
  readonly idleAges: readonly Buffer[];
  /** Series prefix (`name{labels} `) and oldest unacked stored time of the other consumers. */
  readonly agePrefixes: readonly string[];
  readonly oldestMs: readonly number[];
  /** `chunks` and `idleAges`, fixed until the next poll, gzip-encoded at most once. */
  readonly fixedPart: Precompressed;
  /** Where the text is written. */
  readonly arena: TextArena;
}

/**
 * Consumers rendered between two turns of the event loop. At 10,000 consumers a poll's text is about
 * 160,000 lines (14 MB): built in one go it blocks the loop for hundreds of milliseconds (scrapes,
 * status messages and advisories wait); in slices each block stays short.
 */
const SLICE = 500;

/** Renders a poll step by step: each `yield` is a point where the event loop may run. */
function* renderSteps(
  poll: PollResult,
  filter: ExportFilter,
  arena: TextArena,
): Generator<void, Rendered, void> {
  let consumers = [...poll.consumers.values()];
  if (filter.active) consumers = consumers.filter((c) => filter.consumer(c.stream, c.name));
  const consumerFamilies = CONSUMER_FAMILIES.filter((f) => filter.family(f.name));
  const withStatus = filter.family(STATUS.name);
  const withAge = filter.family(AGE.name);
  // Each slice's lines are encoded as soon as the slice is done: the 160,000 small strings of a poll
  // then die young instead of surviving (and being copied by every scavenge) until one final join.
  const families = consumerFamilies.map((f) => [arena.write(header(f.name, f.help))]);
  const status = withStatus ? [arena.write(header(STATUS.name, STATUS.help))] : [];
  // Most consumers have nothing unacknowledged: their age is 0 until the next poll, rendered once.
  const idleAges = withAge ? [arena.write(header(AGE.name, AGE.help))] : [];
  const agePrefixes: string[] = [];
  const oldestMs: number[] = [];
  for (let start = 0; start < consumers.length; start += SLICE) {
    const end = Math.min(consumers.length, start + SLICE);
    const texts = consumerFamilies.map(() => "");
    let statusText = "";
    let idleText = "";
    for (let i = start; i < end; i++) {
      const c = consumers[i]!;
      const labels = consumerLabels(c);
      for (let f = 0; f < consumerFamilies.length; f++) {
        const family = consumerFamilies[f]!;
        const v = family.value(c);
        if (v !== undefined) texts[f] += `${family.name}{${labels}} ${formatSampleValue(v)}\n`;
      }
      if (withStatus)
        for (const st of CONSUMER_STATUSES) {
          statusText += `${STATUS.name}{${labels},status="${st}"} ${st === c.status ? 1 : 0}\n`;
        }
      if (!withAge) continue;
      if (c.oldestUnackedMs === undefined) idleText += `${AGE.name}{${labels}} 0\n`;
      else {
        agePrefixes.push(`${AGE.name}{${labels}} `);
        oldestMs.push(c.oldestUnackedMs);
      }
    }
    for (let f = 0; f < texts.length; f++) families[f]!.push(arena.write(texts[f]!));
    if (withStatus) status.push(arena.write(statusText));
    if (withAge) idleAges.push(arena.write(idleText));
    yield;
  }
  let streams = [...poll.streams.values()];
  if (filter.active) streams = streams.filter((st) => filter.stream(st.name));
  const streamLabelText = streams.map(streamLabels);
  const streamFamilies = STREAM_FAMILIES.filter((f) => filter.family(f.name)).map((family) => {
    let text = header(family.name, family.help);
    for (let i = 0; i < streams.length; i++) {
      const v = family.value(streams[i]!);
      if (v !== undefined) text += `${family.name}{${streamLabelText[i]}} ${formatSampleValue(v)}\n`;
    }
    return arena.write(text);
  });
  const chunks = [...families.flat(), ...status, ...streamFamilies];
  return {
    chunks,
    fixedPart: new Precompressed([...chunks, ...idleAges], arena),
    arena,
    get fixed() {
      return Buffer.concat(chunks).toString("utf8");
    },
    idleAges,
    agePrefixes,
    oldestMs,
  };
}

export function renderPoll(
  poll: PollResult,
  filter: ExportFilter = NO_FILTER,
  arena: TextArena = new TextArena(0),
): Rendered {
  const steps = renderSteps(poll, filter, arena);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Age lines encoded at once: short strings, dead before the next scavenge, no 0.5 MB one per scrape. */
const AGE_LINES_PER_WRITE = 256;

/**
 * The ages of the consumers with unacknowledged work at `nowMs`, written into `arena` (a scrape's
 * scratch arena); never negative (clock skew with the server).
 */
function writeBusyAges(rendered: Rendered, nowMs: number, arena: TextArena): Buffer[] {
  const pieces: Buffer[] = [];
  let text = "";
  for (let i = 0; i < rendered.agePrefixes.length; i++) {
    const age = Math.max(0, nowMs - rendered.oldestMs[i]!) / 1000;
    text += rendered.agePrefixes[i]! + formatSampleValue(age) + "\n";
    if ((i + 1) % AGE_LINES_PER_WRITE === 0) {
      pieces.push(arena.write(text));
      text = "";
    }
  }
  if (text !== "") pieces.push(arena.write(text));
  return pieces;
}

/** The age family at `nowMs`: 0 when nothing is unacknowledged. */
export function renderAges(rendered: Rendered, nowMs: number): string {
  const busy = writeBusyAges(rendered, nowMs, new TextArena(0));
  return Buffer.concat([...rendered.idleAges, ...busy]).toString("utf8");
}

/**
 * Room for the first poll's text, per consumer: 18 series of ~80 bytes (1.4 KB a consumer in the
 * benchmark's organization), with room for longer names. A longer text overflows as before.
 */
const FIRST_TEXT_BYTES_PER_CONSUMER = 2048;

export function registerJetStreamMetrics(metrics: MetricsRegistry, org: Organization): void {
  const filter = exportFilterOf(org.config);
  let rendered: Rendered | undefined;
  /** The rendering of the latest poll while it is under way: a scrape waits for it. */
  let rendering: Promise<void> | undefined;
  let latest: PollResult | undefined;
  const arenas = new TextArenas();
  org.jetstream.on("polled", (result) => {
    latest = result;
    // Never the text being served, nor one a scrape still reads (text-arena.ts).
    const arena = arenas.next(rendered?.arena, result.consumers.size * FIRST_TEXT_BYTES_PER_CONSUMER);
    // Small organizations: at once (nothing to gain from slicing, and the model and text never differ).
    if (result.consumers.size <= SLICE) {
      rendered = renderPoll(result, filter, arena);
      rendering = undefined;
      return;
    }
    // Scrapes meanwhile get the previous poll's text (chunks below): waiting for the new one put
    // every scrape of the ~0.5 s it takes at 10,000 consumers past 200 ms (the p99). Both are held
    // while the new one is built (2 × 17 MB at 10,000 consumers). The new text is served once it is
    // gzip-encoded too: encoded on the first scrape asking for gzip (Prometheus's every scrape),
    // that scrape waited for the 17 MB to be compressed, 100–250 ms (the p99 of gzip scrapes).
    // A newer poll meanwhile: this one's text is dropped unfinished (its arena goes to the newer one).
    const done = renderInTurns(renderSteps(result, filter, arena), () => latest !== result)
      .then(async (r) => {
        if (!r) return;
        await r.fixedPart.gzipped;
        if (latest === result) rendered = r;
      })
      .catch(() => undefined);
    rendering = done;
    void done.finally(() => {
      if (rendering === done) rendering = undefined;
    });
  });
  const section: TextSection = {
    selfFiltered: true,
    render: () => (rendered ? rendered.fixed + renderAges(rendered, Date.now()) : ""),
    chunks: async (_openMetrics, scratch) => {
      // The latest poll's text that is ready; before the first one is, the first one.
      while (!rendered && rendering) await rendering;
      return rendered ? [rendered.fixedPart.hold(), ...writeBusyAges(rendered, Date.now(), scratch)] : [];
    },
  };
  metrics.addSection(section);
}
