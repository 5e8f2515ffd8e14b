// Span export (trace-sdk.ts), loaded only when traces are configured: the OpenTelemetry SDK for Node
// with its three OTLP exporters is ~20 MB resident (measured: 41 MB for bare Node, 66 MB with
// @opentelemetry/sdk-node imported), which a daemon exporting no traces does without. The gate is
// coarse on purpose: any OTEL_* variable that can name an export loads the SDK, and the SDK's own
// rules (trace-sdk.ts: `none`, OTEL_SDK_DISABLED, the default protocol) decide from there.
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";

export interface TraceExporter {
  /** Sends what is recorded now (while this process still holds the lease). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export const NO_TRACE_EXPORT: TraceExporter = {
  flush: async () => undefined,
  shutdown: async () => undefined,
};

/** The variables that can turn an export on (with none of them set, the SDK would export nothing either). */
const EXPORT_VARIABLES = [
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
] as const;

/** Whether span export may be configured: `exporter` given (tests), or a variable above set. */
export function tracesConfigured(env: NodeJS.ProcessEnv, exporter?: SpanExporter): boolean {
  return exporter !== undefined || EXPORT_VARIABLES.some((name) => (env[name] ?? "").trim() !== "");
}

export async function startTraceExporter(
  org: Organization,
  config: Config,
  log: Logger,
  exporter?: SpanExporter,
): Promise<TraceExporter> {
  if (!tracesConfigured(process.env, exporter)) return NO_TRACE_EXPORT;
  const { startSdkTraceExporter } = await import("./trace-sdk.js");
  return startSdkTraceExporter(org, config, log, exporter);
}
