// orgwatch_deadletter_messages_total, orgwatch_consumer_naks_total, orgwatch_consumer_terminated_total
// and orgwatch_task_processing_seconds.
import { Counter, Histogram } from "prom-client";
import type { ConsumerCounts, ConsumerLabels } from "../../model/deadletters.js";
import { consumerKey, type ConsumerState, type PollResult } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { escapeLabelValue } from "./jetstream.js";
import { AGENT_LATENCY_BUCKETS, type MetricsRegistry, type TextSection } from "./registry.js";

const LABELS = ["stream", "consumer", "role"] as const;

/** The poll's role wins over the one resolved when the event came, so a consumer has one series. */
function labelsOf(org: Organization, counts: ConsumerCounts): ConsumerLabels {
  const { stream, consumer } = counts.labels;
  const polled = org.jetstream.current?.consumers.get(consumerKey(stream, consumer));
  return polled ? { stream, consumer, role: polled.role } : { ...counts.labels };
}

const DEADLETTERS = "orgwatch_deadletter_messages";
const DEADLETTERS_HELP =
  "Messages that exhausted max-deliver (routed to the dead-letter subject), each message once whatever its delivery count";

function seriesPrefix(labels: ConsumerLabels): string {
  const { stream, consumer, role } = labels;
  return `${DEADLETTERS}_total{stream="${escapeLabelValue(stream)}",consumer="${escapeLabelValue(consumer)}",role="${escapeLabelValue(role)}"} `;
}

/**
 * orgwatch_deadletter_messages_total as text. Every known consumer has a series from 0, so that
 * increase() sees its first dead letter: at 10,000 consumers that is 10,000 series, which cost
 * prom-client (label hashing, formatting) ~40 ms of blocking work on every scrape. Here the series
 * prefixes are built once per poll and the text is rebuilt only when a poll or a count changed it.
 */
function deadLetterSection(org: Organization): TextSection {
  const model = org.deadLetters;
  let cache: { poll: unknown; total: number; body: string } | undefined;
  // Built at the first scrape after a poll, not in the poll's listeners (they all run at once).
  let prefixes: { poll: unknown; series: { key: string; prefix: string }[] } | undefined;
  const polledSeries = (poll: PollResult | undefined) => {
    if (!prefixes || prefixes.poll !== poll) {
      const series = [...(poll?.consumers ?? new Map<string, ConsumerState>()).entries()].map(([key, c]) => ({
        key,
        prefix: seriesPrefix({ stream: c.stream, consumer: c.name, role: c.role }),
      }));
      prefixes = { poll, series };
    }
    return prefixes.series;
  };
  const samples = (): string => {
    const counted = new Map<string, ConsumerCounts>();
    let total = 0;
    for (const c of model.consumers()) {
      if (c.deadLetters === 0) continue;
      counted.set(consumerKey(c.labels.stream, c.labels.consumer), c);
      total += c.deadLetters;
    }
    const poll = org.jetstream.current;
    if (cache && cache.poll === poll && cache.total === total) return cache.body;
    const parts: string[] = [];
    for (const { key, prefix } of polledSeries(poll)) {
      parts.push(`${prefix}${counted.get(key)?.deadLetters ?? 0}\n`);
    }
    for (const [key, c] of counted) {
      if (!poll?.consumers.has(key)) parts.push(`${seriesPrefix(labelsOf(org, c))}${c.deadLetters}\n`);
    }
    const body = parts.join("");
    cache = { poll, total, body };
    return body;
  };
  const text = (openMetrics: boolean) => {
    const name = openMetrics ? DEADLETTERS : `${DEADLETTERS}_total`;
    return `# HELP ${name} ${DEADLETTERS_HELP}\n# TYPE ${name} counter\n${samples()}`;
  };
  return { render: () => text(false), chunks: (openMetrics) => [text(openMetrics)] };
}

export function registerDeadLetterMetrics(metrics: MetricsRegistry, org: Organization): void {
  const registers = metrics.registers;
  const model = org.deadLetters;

  metrics.addSection(deadLetterSection(org));
  new Counter({
    name: "orgwatch_consumer_naks_total",
    help: "Negative acknowledgements (naks) of messages, from JetStream advisories",
    labelNames: LABELS,
    registers,
    collect() {
      this.reset();
      for (const c of model.consumers()) if (c.naks > 0) this.inc(labelsOf(org, c), c.naks);
    },
  });
  new Counter({
    name: "orgwatch_consumer_terminated_total",
    help: "Messages an agent terminated (term: never redeliver), from JetStream advisories",
    labelNames: LABELS,
    registers,
    collect() {
      this.reset();
      for (const c of model.consumers()) if (c.terminated > 0) this.inc(labelsOf(org, c), c.terminated);
    },
  });

  const processing = new Histogram({
    name: "orgwatch_task_processing_seconds",
    help: "Time from a task's delivery to its acknowledgement, from sampled acks",
    labelNames: ["role"],
    buckets: AGENT_LATENCY_BUCKETS,
    registers,
  });
  model.on("processed", ({ role, seconds }) => processing.observe({ role }, seconds));
}
