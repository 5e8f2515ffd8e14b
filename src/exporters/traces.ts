// OpenTelemetry traces across on_complete chains. (Placeholder until issue #5 lands.)
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";

export interface TraceExporter {
  shutdown(): Promise<void>;
}

export function startTraceExporter(
  _org: Organization,
  _config: Config,
  _log: Logger,
  _exporter?: SpanExporter,
): TraceExporter {
  return { shutdown: async () => undefined };
}
