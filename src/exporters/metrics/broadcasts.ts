// orgwatch_broadcast_*: which agents have not acknowledged broadcasts, for how long, and how fast they do.
import { Gauge, Histogram } from "prom-client";
import type { Organization } from "../../model/organization.js";
import { AGENT_LATENCY_BUCKETS, type MetricsRegistry } from "./registry.js";

export function registerBroadcastMetrics(metrics: MetricsRegistry, org: Organization): void {
  const registers = metrics.registers;
  const broadcasts = org.broadcasts;
  new Gauge({
    name: "orgwatch_broadcast_unacked_messages",
    help: "Broadcasts after the agent's ack floor that it has not acknowledged (not yet delivered + delivered and not acked)",
    labelNames: ["role", "consumer"],
    registers,
    collect() {
      this.reset();
      for (const c of broadcasts.consumers) this.set({ role: c.role, consumer: c.name }, c.unacked);
    },
  });
  new Gauge({
    name: "orgwatch_broadcast_oldest_unacked_age_seconds",
    help: "Age of the oldest broadcast the agent has not acknowledged, from its stored time; 0 when none",
    labelNames: ["role", "consumer"],
    registers,
    collect() {
      this.reset();
      const now = Date.now();
      for (const c of broadcasts.consumers) {
        const labels = { role: c.role, consumer: c.name };
        if (c.unacked === 0) this.set(labels, 0);
        else if (c.oldestUnackedMs !== undefined)
          this.set(labels, Math.max(0, now - c.oldestUnackedMs) / 1000);
      }
    },
  });
  // Roles whose series exist: a consumer's histogram is shown (at zero) before its first ack.
  const shown = new Set<string>();
  const ackSeconds = new Histogram({
    name: "orgwatch_broadcast_ack_seconds",
    help: "Broadcast published → acknowledged by the agent (its ack floor passed it; exact where ack sampling is on)",
    labelNames: ["role"],
    buckets: AGENT_LATENCY_BUCKETS,
    registers,
    collect() {
      for (const c of broadcasts.consumers) {
        if (shown.has(c.role)) continue;
        shown.add(c.role);
        this.zero({ role: c.role });
      }
    },
  });
  broadcasts.on("acked", (o) => {
    shown.add(o.role);
    ackSeconds.observe({ role: o.role }, o.seconds);
  });
  new Gauge({
    name: "orgwatch_broadcast_consumer_missing",
    help: "1 for an agent of the roster with no consumer on the broadcasts stream, 0 for one with one",
    labelNames: ["role"],
    registers,
    collect() {
      this.reset();
      if (!broadcasts.hasBroadcasts) return;
      const withConsumer = new Set(broadcasts.consumers.map((c) => c.role));
      for (const role of org.agents.roster()) this.set({ role }, withConsumer.has(role) ? 0 : 1);
    },
  });
}
