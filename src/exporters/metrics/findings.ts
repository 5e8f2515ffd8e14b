// orgwatch_config_findings{level,check,role}: the setup findings of `orgwatch check`, as the daemon
// evaluated them after its last poll. The value is the number of findings (streams or consumers
// concerned) with those labels; a fixed finding's series disappears.
import { Gauge } from "prom-client";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerFindingMetrics(metrics: MetricsRegistry, org: Organization): void {
  new Gauge({
    name: "orgwatch_config_findings",
    help: "Setup findings of orgwatch check (ack wait shorter than the work, no dead-letter path, ...) by level, check and role",
    labelNames: ["level", "check", "role"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const f of org.findings.current) this.inc({ level: f.level, check: f.check, role: f.role });
    },
  });
}
