// Consumer and stream metrics (DESIGN.md §3) from the last JetStream poll. At 10,000 consumers these
// families hold about 170,000 series, too many for prom-client gauges rebuilt on every scrape: they
// are rendered once per poll (on the model's `polled` event), kept gzip-encoded, and the scrape only
// concatenates. The oldest-unacked age changes with time, so it alone is rendered at scrape time
// from the stored times kept per poll: exact at the moment of the scrape.
import { CONSUMER_STATUSES, lagOf } from "../../logic/consumer-status.js";
import type { ConsumerState, PollResult, StreamState } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { gunzipSync } from "node:zlib";
import {
  Precompressed,
  gzipAtOnce,
  renderInTurns,
  streamingGzip,
  type GzipMemberWriter,
  type MetricsRegistry,
  type TextSection,
} from "./registry.js";
import { TextArena } from "./text-arena.js";
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

/** The text of one poll, kept only gzip-encoded; everything but the age is fixed until the next poll. */
interface Rendered {
  /**
   * Every family but the age, a gzip member each, in exposition order, then the age family's HELP
   * and TYPE and its series for consumers with nothing unacknowledged (0) as the last member.
   */
  readonly fixedPart: Precompressed;
  /** Every family but the age, as text (tests). */
  readonly fixed: string;
  /** The age family's HELP, TYPE and 0 series, as text (tests). */
  readonly idleAges: string;
  /** Series prefix (`name{labels} `) and oldest unacked stored time of the other consumers. */
  readonly agePrefixes: readonly string[];
  readonly oldestMs: readonly number[];
}

/** A poll's families as written, before their encoders have all finished. */
interface Draft<M> {
  /** Every family but the age, in exposition order; then the idle ages' member, when exported. */
  readonly members: readonly M[];
  readonly withAge: boolean;
  readonly agePrefixes: readonly string[];
  readonly oldestMs: readonly number[];
}

function finished(draft: Draft<Buffer>): Rendered {
  const members = draft.members;
  const fixedMembers = draft.withAge ? members.slice(0, -1) : members;
  const text = (ms: readonly Buffer[]) => ms.map((m) => gunzipSync(m).toString("utf8")).join("");
  return {
    fixedPart: Precompressed.ofGzip(members),
    get fixed() {
      return text(fixedMembers);
    },
    get idleAges() {
      return draft.withAge ? text(members.slice(-1)) : "";
    },
    agePrefixes: draft.agePrefixes,
    oldestMs: draft.oldestMs,
  };
}

/**
 * Consumers rendered between two turns of the event loop. At 10,000 consumers a poll's text is about
 * 160,000 lines (14 MB): built in one go it blocks the loop for hundreds of milliseconds (scrapes,
 * status messages and advisories wait); in slices each block stays short.
 */
const SLICE = 500;

/**
 * Renders a poll step by step: each `yield` is a point where the event loop may run. A family's
 * lines go to its own gzip member as each slice is done, and only the encoded bytes are kept: the
 * text in the exposition's order (family by family) needed the whole poll's text held at once
 * (2 × 15 MB at 10,000 consumers, the one served and the one being written), its gzip 5 % of it.
 */
function* renderSteps<M>(
  poll: PollResult,
  filter: ExportFilter,
  member: () => GzipMemberWriter<M>,
): Generator<void, Draft<M>, void> {
  let consumers = [...poll.consumers.values()];
  if (filter.active) consumers = consumers.filter((c) => filter.consumer(c.stream, c.name));
  const consumerFamilies = CONSUMER_FAMILIES.filter((f) => filter.family(f.name));
  const withStatus = filter.family(STATUS.name);
  const withAge = filter.family(AGE.name);
  const writers: GzipMemberWriter<M>[] = [];
  const open = (head: string) => {
    const writer = member();
    writer.write(head);
    writers.push(writer);
    return writer;
  };
  /** The idle ages' member goes last (see below): abandoned with the others if the render is dropped. */
  let idleAges: GzipMemberWriter<M> | undefined;
  let done = false;
  try {
    // Each slice's lines are handed to the encoders as soon as the slice is done: the 160,000 small
    // strings of a poll then die young instead of surviving (and being copied by every scavenge).
    const families = consumerFamilies.map((f) => open(header(f.name, f.help)));
    const status = withStatus ? open(header(STATUS.name, STATUS.help)) : undefined;
    // Most consumers have nothing unacknowledged: their age is 0 until the next poll, rendered once.
    idleAges = withAge ? member() : undefined;
    idleAges?.write(header(AGE.name, AGE.help));
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
        if (status)
          for (const st of CONSUMER_STATUSES) {
            statusText += `${STATUS.name}{${labels},status="${st}"} ${st === c.status ? 1 : 0}\n`;
          }
        if (!idleAges) continue;
        if (c.oldestUnackedMs === undefined) idleText += `${AGE.name}{${labels}} 0\n`;
        else {
          agePrefixes.push(`${AGE.name}{${labels}} `);
          oldestMs.push(c.oldestUnackedMs);
        }
      }
      for (let f = 0; f < texts.length; f++) families[f]!.write(texts[f]!);
      status?.write(statusText);
      idleAges?.write(idleText);
      yield;
    }
    let streams = [...poll.streams.values()];
    if (filter.active) streams = streams.filter((st) => filter.stream(st.name));
    const streamLabelText = streams.map(streamLabels);
    for (const family of STREAM_FAMILIES.filter((f) => filter.family(f.name))) {
      let text = header(family.name, family.help);
      for (let i = 0; i < streams.length; i++) {
        const v = family.value(streams[i]!);
        if (v !== undefined) text += `${family.name}{${streamLabelText[i]}} ${formatSampleValue(v)}\n`;
      }
      open(text);
    }
    // The idle ages last: the busy ones follow them at each scrape (one family, one group of lines).
    if (idleAges) writers.push(idleAges);
    const members = writers.map((w) => w.end());
    done = true;
    return { members, withAge: idleAges !== undefined, agePrefixes, oldestMs };
  } finally {
    if (!done) {
      for (const w of writers) w.abandon();
      idleAges?.abandon();
    }
  }
}

/** A poll's text at once (small organizations, tests). */
export function renderPoll(poll: PollResult, filter: ExportFilter = NO_FILTER): Rendered {
  const steps = renderSteps(poll, filter, gzipAtOnce);
  for (;;) {
    const step = steps.next();
    if (step.done) return finished(step.value);
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
  return rendered.idleAges + Buffer.concat(busy).toString("utf8");
}

export function registerJetStreamMetrics(metrics: MetricsRegistry, org: Organization): void {
  const filter = exportFilterOf(org.config);
  let rendered: Rendered | undefined;
  /** The rendering of the latest poll while it is under way: a scrape waits for it. */
  let rendering: Promise<void> | undefined;
  let latest: PollResult | undefined;
  org.jetstream.on("polled", (result) => {
    latest = result;
    // Small organizations: at once (nothing to gain from slicing, and the model and text never differ).
    if (result.consumers.size <= SLICE) {
      rendered = renderPoll(result, filter);
      rendering = undefined;
      return;
    }
    // Scrapes meanwhile get the previous poll's text (chunks below): waiting for the new one put
    // every scrape of the ~0.5 s it takes at 10,000 consumers past 200 ms (the p99). The new text is
    // served once its encoders have finished (on the threadpool, a few milliseconds after the last
    // slice). A newer poll meanwhile: this one's text is dropped unfinished.
    const done = renderInTurns(renderSteps(result, filter, streamingGzip), () => latest !== result)
      .then(async (draft) => {
        if (!draft) return;
        const members = await Promise.all(draft.members);
        if (latest === result) rendered = finished({ ...draft, members });
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
      return rendered ? [rendered.fixedPart, ...writeBusyAges(rendered, Date.now(), scratch)] : [];
    },
  };
  metrics.addSection(section);
}
