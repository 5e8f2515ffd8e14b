// orgwatch_deadletter_messages_total, orgwatch_consumer_naks_total, orgwatch_consumer_terminated_total
// and orgwatch_task_processing_seconds.
import { Counter, Histogram } from "prom-client";
import type { ConsumerCounts, ConsumerLabels } from "../../model/deadletters.js";
import { consumerKey } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { AGENT_LATENCY_BUCKETS, type MetricsRegistry } from "./registry.js";

const LABELS = ["stream", "consumer", "role"] as const;

/** The poll's role wins over the one resolved when the event came, so a consumer has one series. */
function labelsOf(org: Organization, counts: ConsumerCounts): ConsumerLabels {
  const { stream, consumer } = counts.labels;
  const polled = org.jetstream.current?.consumers.get(consumerKey(stream, consumer));
  return polled ? { stream, consumer, role: polled.role } : { ...counts.labels };
}

export function registerDeadLetterMetrics(metrics: MetricsRegistry, org: Organization): void {
  const registers = metrics.registers;
  const model = org.deadLetters;

  new Counter({
    name: "orgwatch_deadletter_messages_total",
    help: "Messages that exhausted max-deliver (routed to the dead-letter subject), each message once whatever its delivery count",
    labelNames: LABELS,
    registers,
    collect() {
      this.reset();
      // Every known consumer starts at 0, so that increase() sees its first dead letter.
      for (const c of org.jetstream.current?.consumers.values() ?? []) {
        this.inc({ stream: c.stream, consumer: c.name, role: c.role }, 0);
      }
      for (const c of model.consumers()) if (c.deadLetters > 0) this.inc(labelsOf(org, c), c.deadLetters);
    },
  });
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
