// Trace export configuration from the standard OTEL_* environment variables. orgwatch builds its
// spans itself (their ids come from task ids), so it reads the same variables the OpenTelemetry SDK
// does, with one deliberate difference: with nothing configured there is no export at all (the
// SDK's default would be OTLP to localhost:4318, which fails on every machine without a collector).
import type { SamplerConfig, SamplerKind } from "./task-trace.js";

export type TraceExporterKind = "none" | "otlp" | "console";
export type OtlpProtocol = "http/protobuf" | "http/json";

export interface OtelTraceSettings {
  readonly exporter: TraceExporterKind;
  readonly protocol: OtlpProtocol;
  readonly sampler: SamplerConfig;
  /** What was set but could not be honoured: logged as warnings. */
  readonly problems: readonly string[];
}

const SAMPLERS: readonly SamplerKind[] = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
];

type Env = Readonly<Record<string, string | undefined>>;

function get(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

export function otelTraceSettings(env: Env): OtelTraceSettings {
  const problems: string[] = [];

  let exporter: TraceExporterKind;
  const listed = get(env, "OTEL_TRACES_EXPORTER")
    ?.split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  const endpoint = get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? get(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (get(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") exporter = "none";
  else if (!listed || listed.length === 0) exporter = endpoint ? "otlp" : "none";
  else if (listed.includes("none")) exporter = "none";
  else if (listed.includes("otlp")) exporter = "otlp";
  else if (listed.includes("console")) exporter = "console";
  else {
    problems.push(`OTEL_TRACES_EXPORTER=${listed.join(",")}: only otlp, console and none are supported`);
    exporter = "none";
  }

  let protocol: OtlpProtocol = "http/protobuf";
  const asked = get(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? get(env, "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (asked === "http/json" || asked === "http/protobuf") protocol = asked;
  else if (asked !== undefined && exporter === "otlp") {
    problems.push(
      `OTLP protocol ${asked} is not supported (use http/protobuf or http/json); traces not exported`,
    );
    exporter = "none";
  }

  let kind: SamplerKind = "parentbased_always_on";
  const sampler = get(env, "OTEL_TRACES_SAMPLER")?.toLowerCase();
  if (sampler !== undefined) {
    if ((SAMPLERS as readonly string[]).includes(sampler)) kind = sampler as SamplerKind;
    else problems.push(`OTEL_TRACES_SAMPLER=${sampler} is not supported; using parentbased_always_on`);
  }
  let ratio = 1;
  const arg = get(env, "OTEL_TRACES_SAMPLER_ARG");
  if (arg !== undefined && kind.endsWith("traceidratio")) {
    const n = Number(arg);
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else problems.push(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio between 0 and 1; using 1`);
  }
  return { exporter, protocol, sampler: { kind, ratio }, problems };
}
