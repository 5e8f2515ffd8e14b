// (Placeholder until issue #3 lands.)
import type { Config } from "../../config/schema.js";
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerAgentMetrics(_metrics: MetricsRegistry, _org: Organization, _config: Config): void {}
