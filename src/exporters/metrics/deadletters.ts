// orgwatch_deadletter_messages_total, orgwatch_consumer_naks_total, orgwatch_consumer_terminated_total
// and orgwatch_task_processing_seconds.
import { Counter, Histogram } from "prom-client";
import type { ConsumerCounts, ConsumerLabels } from "../../model/deadletters.js";
import { consumerKey, type ConsumerState } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { escapeLabelValue } from "./jetstream.js";
import { AGENT_LATENCY_BUCKETS, renderInTurns, type MetricsRegistry, type TextSection } from "./registry.js";

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

/** Consumers whose series are rendered between two turns of the event loop. */
const SLICE = 500;

/**
 * orgwatch_deadletter_messages_total as text. Every known consumer has a series from 0, so that
 * increase() sees its first dead letter: at 10,000 consumers that is 10,000 series, which cost
 * prom-client (label hashing, formatting) ~40 ms of blocking work on every scrape. Here each
 * consumer's series prefix is built once (kept while its labels stay the same), and the text is
 * rebuilt, encoded, only when a poll or a count changed it; at a scrape, in slices that yield to the
 * event loop (done in one go it took ~100 ms at 10,000 consumers on a loaded machine); after a poll
 * that changed no count, behind the previous text.
 */
function deadLetterSection(org: Organization): TextSection {
  const model = org.deadLetters;
  let cache: { poll: unknown; total: number; body: readonly Buffer[] } | undefined;
  /** Series prefix by consumerKey, with the role it was built for. */
  let prefixes = new Map<string, { role: string; prefix: string }>();
  let prefixesPoll: unknown;

  function counts(): { counted: Map<string, ConsumerCounts>; total: number } {
    const counted = new Map<string, ConsumerCounts>();
    let total = 0;
    for (const c of model.consumers()) {
      if (c.deadLetters === 0) continue;
      counted.set(consumerKey(c.labels.stream, c.labels.consumer), c);
      total += c.deadLetters;
    }
    return { counted, total };
  }

  function* build(): Generator<void, readonly Buffer[], void> {
    const { counted, total } = counts();
    const poll = org.jetstream.current;
    if (cache && cache.poll === poll && cache.total === total) return cache.body;
    const consumers = [...(poll?.consumers ?? new Map<string, ConsumerState>()).entries()];
    const next = prefixesPoll === poll ? prefixes : new Map<string, { role: string; prefix: string }>();
    const body: Buffer[] = [];
    for (let start = 0; start < consumers.length; start += SLICE) {
      let text = "";
      for (const [key, c] of consumers.slice(start, start + SLICE)) {
        let series = prefixes.get(key);
        if (series?.role !== c.role) {
          series = {
            role: c.role,
            prefix: seriesPrefix({ stream: c.stream, consumer: c.name, role: c.role }),
          };
        }
        next.set(key, series);
        text += `${series.prefix}${counted.get(key)?.deadLetters ?? 0}\n`;
      }
      body.push(Buffer.from(text, "utf8"));
      yield;
    }
    let text = "";
    for (const [key, c] of counted) {
      if (!poll?.consumers.has(key)) text += `${seriesPrefix(labelsOf(org, c))}${c.deadLetters}\n`;
    }
    body.push(Buffer.from(text, "utf8"));
    // Unless a newer poll arrived while this one was built (its text is then built at the next scrape).
    if (org.jetstream.current === poll) {
      prefixes = next;
      prefixesPoll = poll;
      cache = { poll, total, body };
    }
    return body;
  }
  let rebuilding: Promise<readonly Buffer[]> | undefined;
  const header = (openMetrics: boolean) => {
    const name = openMetrics ? DEADLETTERS : `${DEADLETTERS}_total`;
    return `# HELP ${name} ${DEADLETTERS_HELP}\n# TYPE ${name} counter\n`;
  };
  return {
    render: () => {
      const steps = build();
      let step = steps.next();
      while (!step.done) step = steps.next();
      return header(false) + Buffer.concat(step.value).toString("utf8");
    },
    chunks: async (openMetrics) => {
      // Only the poll changed (consumers came or went), no count: the previous text is served while
      // the new one is built, a slice per turn, in the background (a small organization's is built at once). A scrape waiting for it right after
      // each poll, behind the poll's own work, took 100–300 ms (the p99). A new count is never late.
      const poll = org.jetstream.current;
      if (
        cache &&
        cache.poll !== poll &&
        (poll?.consumers.size ?? 0) > SLICE &&
        cache.total === counts().total
      ) {
        rebuilding ??= renderInTurns(build()).finally(() => (rebuilding = undefined));
        return [header(openMetrics), ...cache.body];
      }
      return [header(openMetrics), ...(await renderInTurns(build()))];
    },
  };
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
  new Counter({
    name: "orgwatch_deadletter_replays_total",
    help: "Dead letters this orgwatch replayed to their original subject (console API, --web.enable-admin-api), by role",
    labelNames: ["role"],
    registers,
    collect() {
      this.reset();
      for (const [role, n] of model.replays) this.inc({ role }, n);
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
