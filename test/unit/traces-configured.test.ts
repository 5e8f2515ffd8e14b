// The OpenTelemetry SDK is loaded only when a variable can name a span export (exporters/traces.ts).
import { describe, expect, it } from "vitest";
import { ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base";
import { tracesConfigured } from "../../src/exporters/traces.js";

describe("whether traces are configured", () => {
  it("is not with no OTEL_* export variable, or only empty ones, or only other OTEL_* settings", () => {
    expect(tracesConfigured({})).toBe(false);
    expect(tracesConfigured({ OTEL_TRACES_EXPORTER: " ", OTEL_EXPORTER_OTLP_ENDPOINT: "" })).toBe(false);
    expect(tracesConfigured({ OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toBe(false);
  });

  it("is with an exporter named, an endpoint, a traces endpoint, or an exporter given", () => {
    expect(tracesConfigured({ OTEL_TRACES_EXPORTER: "console" })).toBe(true);
    // `none` too: the SDK's own rules (trace-sdk.ts) then say there is nothing to export.
    expect(tracesConfigured({ OTEL_TRACES_EXPORTER: "none" })).toBe(true);
    expect(tracesConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe(true);
    expect(tracesConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" })).toBe(true);
    expect(tracesConfigured({}, new ConsoleSpanExporter())).toBe(true);
  });
});
