// (Placeholder until issue #5 lands.)
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerTaskMetrics(_metrics: MetricsRegistry, _org: Organization): void {}
