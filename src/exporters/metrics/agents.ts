// orgwatch_agent_* (status, per roster role) and orgwatch_events_total.
import { Counter, Gauge } from "prom-client";
import { AGENT_STATES } from "../../logic/status-message.js";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerAgentMetrics(metrics: MetricsRegistry, org: Organization): void {
  const registers = metrics.registers;
  const staleAfterMs = org.config["agent.stale-after"];
  const view = () => org.agents.view(Date.now(), staleAfterMs, org.health.natsOutage);
  new Gauge({
    name: "orgwatch_agent_up",
    help: "1 when the agent sent a status within the staleness window (agent.stale-after)",
    labelNames: ["role"],
    registers,
    collect() {
      this.reset();
      for (const a of view()) this.set({ role: a.role }, a.up ? 1 : 0);
    },
  });
  new Gauge({
    name: "orgwatch_agent_last_status_timestamp_seconds",
    help: "When the agent's last status arrived (Unix time); absent when it never sent one",
    labelNames: ["role"],
    registers,
    collect() {
      this.reset();
      for (const a of view())
        if (a.lastStatusMs !== undefined) this.set({ role: a.role }, a.lastStatusMs / 1000);
    },
  });
  new Gauge({
    name: "orgwatch_agent_state",
    help: "The agent's state, one-hot; unknown when it never reported or fell silent (offline stays offline)",
    labelNames: ["role", "state"],
    registers,
    collect() {
      this.reset();
      for (const a of view()) {
        for (const state of AGENT_STATES) this.set({ role: a.role, state }, a.state === state ? 1 : 0);
      }
    },
  });
  new Counter({
    name: "orgwatch_events_total",
    help: "Organization events by type and role (capped: the rest count as other)",
    labelNames: ["type", "role"],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of org.agents.events) {
        const [type, role] = key.split("\u0000") as [string, string];
        this.inc({ type, role }, n);
      }
    },
  });
}
