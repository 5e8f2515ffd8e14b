// Backpressure and the cost of work (DESIGN.md §8): admission requests answered, tokens and cost
// reported by agents, work spent twice. (The ack rate and drain time are consumer families:
// exporters/metrics/jetstream.ts.)
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
  new Counter({
    name: "orgwatch_tokens_total",
    help: "Tokens agents reported on task.completed / task.failed, by role, direction (input|output) and outcome",
    labelNames: ["role", "direction", "outcome"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const t of org.usage.all()) {
        this.inc({ role: t.role, direction: "input", outcome: t.outcome }, t.inputTokens);
        this.inc({ role: t.role, direction: "output", outcome: t.outcome }, t.outputTokens);
      }
    },
  });
  new Counter({
    name: "orgwatch_cost_usd_total",
    help: "Cost in US dollars agents reported on task.completed / task.failed, by role and outcome",
    labelNames: ["role", "outcome"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const t of org.usage.all()) this.inc({ role: t.role, outcome: t.outcome }, t.costUsd);
    },
  });
  new Counter({
    name: "orgwatch_redelivered_tokens_total",
    help: "Tokens spent on work done again: tasks that failed, or were delivered more than once",
    labelNames: ["role"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const [role, n] of org.usage.redelivered()) this.inc({ role }, n);
    },
  });
}
