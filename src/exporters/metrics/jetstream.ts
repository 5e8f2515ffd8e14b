// (Placeholder until issue #2 lands.)
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerJetStreamMetrics(_metrics: MetricsRegistry, _org: Organization): void {}
