import { describe, expect, it } from "vitest";
import { otelTraceSettings } from "../../src/logic/otel-env.js";
import { chainTraceId, isSampled, taskSpanId } from "../../src/logic/task-trace.js";

describe("task span and trace ids", () => {
  it("are derived from the task id: stable, distinct, W3C-shaped", () => {
    expect(taskSpanId("task-1847")).toBe(taskSpanId("task-1847"));
    expect(taskSpanId("task-1847")).toMatch(/^[0-9a-f]{16}$/);
    expect(chainTraceId("task-1847")).toMatch(/^[0-9a-f]{32}$/);
    expect(taskSpanId("task-1847")).not.toBe(taskSpanId("task-1848"));
    expect(chainTraceId("task-1847")).not.toBe(chainTraceId("task-1848"));
    expect(chainTraceId("task-1847").slice(0, 16)).not.toBe(taskSpanId("task-1847"));
  });
});

describe("sampling", () => {
  const ids = Array.from({ length: 2000 }, (_, i) => chainTraceId(`t-${i}`));
  it("keeps a whole trace or none of it, at about the ratio asked", () => {
    const kept = ids.filter((id) => isSampled({ kind: "traceidratio", ratio: 0.25 }, id, undefined));
    expect(kept.length).toBeGreaterThan(400);
    expect(kept.length).toBeLessThan(600);
    for (const id of ids.slice(0, 50))
      expect(isSampled({ kind: "traceidratio", ratio: 0.25 }, id, undefined)).toBe(
        isSampled({ kind: "traceidratio", ratio: 0.25 }, id, undefined),
      );
  });
  it("follows the joined traceparent's flag when parent-based", () => {
    expect(isSampled({ kind: "parentbased_always_on", ratio: 1 }, ids[0]!, false)).toBe(false);
    expect(isSampled({ kind: "parentbased_always_on", ratio: 1 }, ids[0]!, undefined)).toBe(true);
    expect(isSampled({ kind: "parentbased_always_off", ratio: 1 }, ids[0]!, true)).toBe(true);
    expect(isSampled({ kind: "always_off", ratio: 1 }, ids[0]!, true)).toBe(false);
  });
});

describe("OTEL_* environment", () => {
  it("exports nothing when nothing is configured", () => {
    expect(otelTraceSettings({})).toEqual({
      exporter: "none",
      protocol: "http/protobuf",
      sampler: { kind: "parentbased_always_on", ratio: 1 },
      problems: [],
    });
  });
  it("exports OTLP when an endpoint is set, in the protocol asked", () => {
    expect(otelTraceSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:4318" }).exporter).toBe("otlp");
    expect(
      otelTraceSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://x:4318/v1/traces" }).exporter,
    ).toBe("otlp");
    expect(
      otelTraceSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })
        .protocol,
    ).toBe("http/json");
    expect(otelTraceSettings({ OTEL_TRACES_EXPORTER: "otlp" }).exporter).toBe("otlp");
    expect(otelTraceSettings({ OTEL_TRACES_EXPORTER: "console" }).exporter).toBe("console");
  });
  it("honours none and disabled", () => {
    expect(
      otelTraceSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_TRACES_EXPORTER: "none" }).exporter,
    ).toBe("none");
    expect(
      otelTraceSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_SDK_DISABLED: "true" }).exporter,
    ).toBe("none");
  });
  it("names what it cannot honour", () => {
    const grpc = otelTraceSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://x",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
    });
    expect(grpc.exporter).toBe("none");
    expect(grpc.problems[0]).toMatch(/grpc/);
    expect(otelTraceSettings({ OTEL_TRACES_EXPORTER: "zipkin" }).problems[0]).toMatch(/zipkin/);
    const ratio = otelTraceSettings({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" });
    expect(ratio.sampler).toEqual({ kind: "traceidratio", ratio: 0.1 });
    expect(
      otelTraceSettings({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "7" }).problems,
    ).toHaveLength(1);
  });
});
