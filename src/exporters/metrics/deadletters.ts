// (Placeholder until issue #4 lands.)
import type { Organization } from "../../model/organization.js";
import type { MetricsRegistry } from "./registry.js";

export function registerDeadLetterMetrics(_metrics: MetricsRegistry, _org: Organization): void {}
