// (Placeholder until issue #9 lands.)
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerFindingMetrics(_metrics: MetricsRegistry, _org: Organization): void {}
