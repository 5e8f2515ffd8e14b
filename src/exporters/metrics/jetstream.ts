// Consumer and stream metrics (DESIGN.md §3) from the last JetStream poll. At 10,000 consumers these
// families hold about 170,000 series, too many for prom-client gauges rebuilt on every scrape: they
// are rendered to text once per poll (on the model's `polled` event) and the scrape only
// concatenates. The oldest-unacked age changes with time, so it alone is rendered at scrape time
// from the stored times kept per poll: exact at the moment of the scrape.
import { CONSUMER_STATUSES, lagOf } from "../../logic/consumer-status.js";
import type { ConsumerState, PollResult, StreamState } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry, TextSection } from "./registry.js";

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
];

/** Label value escaping of the text exposition format: backslash, double quote, line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

export function formatSampleValue(n: number): string {
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
  readonly fixed: string;
  /** Series prefix (`name{labels} `) and oldest unacked stored time per consumer. */
  readonly agePrefixes: readonly string[];
  readonly oldestMs: readonly (number | undefined)[];
}

export function renderPoll(poll: PollResult): Rendered {
  const consumers = [...poll.consumers.values()];
  const labels = consumers.map(consumerLabels);
  const parts: string[] = [];
  for (const family of CONSUMER_FAMILIES) {
    parts.push(header(family.name, family.help));
    for (let i = 0; i < consumers.length; i++) {
      const v = family.value(consumers[i]!);
      if (v !== undefined) parts.push(`${family.name}{${labels[i]}} ${formatSampleValue(v)}\n`);
    }
  }
  parts.push(header(STATUS.name, STATUS.help));
  for (let i = 0; i < consumers.length; i++) {
    const status = consumers[i]!.status;
    for (const s of CONSUMER_STATUSES) {
      parts.push(`${STATUS.name}{${labels[i]},status="${s}"} ${s === status ? 1 : 0}\n`);
    }
  }
  const streams = [...poll.streams.values()];
  const streamLabelText = streams.map(streamLabels);
  for (const family of STREAM_FAMILIES) {
    parts.push(header(family.name, family.help));
    for (let i = 0; i < streams.length; i++) {
      const v = family.value(streams[i]!);
      if (v !== undefined) parts.push(`${family.name}{${streamLabelText[i]}} ${formatSampleValue(v)}\n`);
    }
  }
  return {
    fixed: parts.join(""),
    agePrefixes: labels.map((l) => `${AGE.name}{${l}} `),
    oldestMs: consumers.map((c) => c.oldestUnackedMs),
  };
}

/** The age family at `nowMs`: 0 when nothing is unacknowledged, never negative (clock skew with the server). */
export function renderAges(rendered: Rendered, nowMs: number): string {
  const parts: string[] = [header(AGE.name, AGE.help)];
  for (let i = 0; i < rendered.agePrefixes.length; i++) {
    const oldest = rendered.oldestMs[i];
    const age = oldest === undefined ? 0 : Math.max(0, nowMs - oldest) / 1000;
    parts.push(rendered.agePrefixes[i]! + formatSampleValue(age) + "\n");
  }
  return parts.join("");
}

export function registerJetStreamMetrics(metrics: MetricsRegistry, org: Organization): void {
  let rendered: Rendered | undefined;
  org.jetstream.on("polled", (result) => {
    rendered = renderPoll(result);
  });
  const section: TextSection = {
    render: () => (rendered ? rendered.fixed + renderAges(rendered, Date.now()) : ""),
  };
  metrics.addSection(section);
}
