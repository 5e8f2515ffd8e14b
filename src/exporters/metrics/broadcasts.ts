// (Placeholder until issue #3 lands.)
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerBroadcastMetrics(_metrics: MetricsRegistry, _org: Organization): void {}
