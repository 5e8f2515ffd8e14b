import { describe, expect, it } from "vitest";
import { completionOutcome, parseEventMessage } from "../../src/logic/event-message.js";

const parse = (s: string) => parseEventMessage(new TextEncoder().encode(s));

describe("parseEventMessage", () => {
  it("reads type, role, task id and timestamp; ignores unknown fields", () => {
    expect(
      parse(
        '{"type":"task.completed","role":"cto","task_id":"task-1847","ts":"2024-05-01T10:00:00Z","x":{}}',
      ),
    ).toEqual({
      ok: true,
      value: {
        type: "task.completed",
        role: "cto",
        taskId: "task-1847",
        tsMs: Date.parse("2024-05-01T10:00:00Z"),
        usage: undefined,
        badUsage: false,
      },
    });
    expect(parse('{"type":"agent.started"}')).toEqual({
      ok: true,
      value: {
        type: "agent.started",
        role: "",
        taskId: undefined,
        tsMs: undefined,
        usage: undefined,
        badUsage: false,
      },
    });
    // An empty task id is no task id.
    expect(parse('{"type":"task.completed","task_id":""}')).toMatchObject({
      ok: true,
      value: { taskId: undefined },
    });
  });

  it.each([
    ["{", "invalid_json"],
    ["[]", "not_object"],
    ['{"role":"cto"}', "missing_field"],
    ['{"type":""}', "missing_field"],
    ['{"type":["a"]}', "wrong_type"],
    ['{"type":"x","role":5}', "wrong_type"],
    ['{"type":"x","role":"has space"}', "bad_role"],
    ['{"type":"x","role":"a.b"}', "bad_role"],
    ['{"type":"x","task_id":{}}', "wrong_type"],
    ['{"type":"x","ts":"soon"}', "bad_timestamp"],
  ])("refuses %j with reason %s", (text, reason) => {
    expect(parse(text)).toEqual({ ok: false, reason });
  });

  it("knows the two completion signals", () => {
    expect(completionOutcome("task.completed")).toBe("completed");
    expect(completionOutcome("task.failed")).toBe("failed");
    expect(completionOutcome("task.started")).toBeUndefined();
  });
});
