import { describe, expect, it } from "vitest";
import { chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";

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
