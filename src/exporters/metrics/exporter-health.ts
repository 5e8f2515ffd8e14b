// orgwatch_* metrics about orgwatch itself.
import { Counter, Gauge } from "prom-client";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";
import { VERSION } from "../../version.js";

export function registerExporterHealthMetrics(metrics: MetricsRegistry, org: Organization): void {
  const health = org.health;
  const registers = metrics.registers;
  new Gauge({
    name: "orgwatch_build_info",
    help: "orgwatch build information; always 1",
    labelNames: ["version", "nodejs"],
    registers,
    collect() {
      this.set({ version: VERSION, nodejs: process.version }, 1);
    },
  });
  new Gauge({
    name: "orgwatch_nats_connected",
    help: "1 when orgwatch is connected to NATS",
    registers,
    collect() {
      this.set(health.natsConnected ? 1 : 0);
    },
  });
  new Gauge({
    name: "orgwatch_lease_held",
    help: "1 while this orgwatch holds the lease (it exports spans and writes chain state); a pair has exactly one",
    labelNames: ["lease"],
    registers,
    collect() {
      this.set({ lease: org.lease.name }, org.lease.held ? 1 : 0);
    },
  });
  new Counter({
    name: "orgwatch_lease_acquisitions_total",
    help: "Times this orgwatch acquired the lease since start",
    labelNames: ["lease"],
    registers,
    collect() {
      this.reset();
      this.inc({ lease: org.lease.name }, org.lease.acquisitions);
    },
  });
  new Counter({
    name: "orgwatch_nats_reconnects_total",
    help: "Reconnections to NATS since start",
    registers,
    collect() {
      this.reset();
      this.inc(health.natsReconnects);
    },
  });
  new Gauge({
    name: "orgwatch_poll_duration_seconds",
    help: "Wall time of the last completed JetStream poll",
    registers,
    collect() {
      if (health.lastPollDurationSeconds !== undefined) this.set(health.lastPollDurationSeconds);
    },
  });
  new Counter({
    name: "orgwatch_poll_errors_total",
    help: "JetStream polls that failed",
    registers,
    collect() {
      this.reset();
      this.inc(health.pollErrors);
    },
  });
  new Gauge({
    name: "orgwatch_last_poll_success_timestamp_seconds",
    help: "When the last JetStream poll completed successfully (Unix time)",
    registers,
    collect() {
      if (health.lastPollSuccessMs !== undefined) this.set(health.lastPollSuccessMs / 1000);
    },
  });
  new Gauge({
    name: "orgwatch_state_saved_timestamp_seconds",
    help: "When the model state last saved to orgwatch's KV bucket was taken (Unix time): counts shown by /metrics are the saved ones",
    registers,
    collect() {
      if (health.lastStateSavedMs !== undefined) this.set(health.lastStateSavedMs / 1000);
    },
  });
  new Counter({
    name: "orgwatch_invalid_messages_total",
    help: "Messages that could not be understood, by source and reason; counted and skipped",
    labelNames: ["source", "reason"],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of health.invalidMessages) {
        const [source, reason] = key.split("\u0000") as [string, string];
        this.inc({ source, reason }, n);
      }
    },
  });
  new Counter({
    name: "orgwatch_label_overflow_total",
    help: "Label values from message contents refused by the cardinality cap, by metric",
    labelNames: ["metric"],
    registers,
    collect() {
      this.reset();
      for (const [metric, n] of health.labelOverflow) this.inc({ metric }, n);
    },
  });
}
