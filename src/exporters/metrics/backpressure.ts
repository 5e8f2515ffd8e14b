// Backpressure and the cost of work (DESIGN.md §8): admission requests answered. (The ack rate and
// drain time are consumer families: exporters/metrics/jetstream.ts.)
import { Counter } from "prom-client";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerBackpressureMetrics(metrics: MetricsRegistry, org: Organization): void {
  new Counter({
    name: "orgwatch_admission_requests_total",
    help: "Admission requests answered, by role and verdict (accept, defer, reject; error for a request that could not be answered)",
    labelNames: ["role", "verdict"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const a of org.admissions.all()) this.inc({ role: a.role, verdict: a.verdict }, a.count);
    },
  });
}
