// Refused messages: every one counted, logged at debug level at most once per interval per source.
import { afterEach, describe, expect, it, vi } from "vitest";
import { ExporterHealth } from "../../src/model/exporter-health.js";
import { invalidReporter } from "../../src/sources/invalid-input.js";
import { captureLog } from "../helpers/log-capture.js";

describe("invalidReporter", () => {
  afterEach(() => vi.useRealTimers());

  it("counts every refusal and logs one debug line per 10 s with the number refused since", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const health = new ExporterHealth();
    const captured = captureLog("debug");
    const refuse = invalidReporter(health, captured.log, "status");
    for (let i = 0; i < 1000; i++) refuse("invalid_json", "genbrain.agents.cto.status");
    refuse("oversize", "genbrain.agents.cto.status");
    expect(health.invalidMessages.get("status\u0000invalid_json")).toBe(1000);
    expect(health.invalidMessages.get("status\u0000oversize")).toBe(1);
    let lines = captured.messages("invalid message skipped");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 20, source: "status", reason: "invalid_json", refused: 1 });

    vi.advanceTimersByTime(9_999);
    refuse("invalid_json", "x");
    expect(captured.messages("invalid message skipped")).toHaveLength(1);
    vi.advanceTimersByTime(1);
    refuse("wrong_type", "y".repeat(1000));
    lines = captured.messages("invalid message skipped");
    expect(lines).toHaveLength(2);
    // 1000 + 1 + 1 since the first line, and this one.
    expect(lines[1]).toMatchObject({ reason: "wrong_type", refused: 1002 });
    expect((lines[1]!["subject"] as string).length).toBe(200);
  });

  it("writes nothing above debug level, and still counts", () => {
    const health = new ExporterHealth();
    const captured = captureLog("info");
    const refuse = invalidReporter(health, captured.log, "event");
    refuse("not_object", "genbrain.org.events");
    expect(captured.lines).toHaveLength(0);
    expect(health.invalidMessages.get("event\u0000not_object")).toBe(1);
  });
});
