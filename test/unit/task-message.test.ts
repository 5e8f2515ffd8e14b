import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MAX_MESSAGE_BYTES } from "../../src/logic/message-parse.js";
import { MAX_TASK_BYTES, parseTaskMessage, parseTraceparent } from "../../src/logic/task-message.js";

const parse = (s: string) => parseTaskMessage(new TextEncoder().encode(s));

describe("parseTaskMessage", () => {
  it("reads the reference organization's task", () => {
    expect(
      parse(
        JSON.stringify({
          task_id: "task-1847",
          type: "feature_implementation",
          title: "Implement...",
          sla: { ack_within_seconds: 60, complete_within_minutes: 60 },
          on_complete: { publish_to: "genbrain.agents.security.tasks", payload_template: "security_review" },
          extra: [1, 2],
        }),
      ),
    ).toEqual({
      ok: true,
      value: {
        taskId: "task-1847",
        type: "feature_implementation",
        parentTaskId: undefined,
        sla: { ackWithinSeconds: 60, completeWithinMinutes: 60 },
        onCompletePublishTo: "genbrain.agents.security.tasks",
      },
    });
  });

  it("reads a parent link and tolerates absent optional parts", () => {
    expect(parse('{"task_id":"b","parent_task_id":"a"}')).toMatchObject({
      ok: true,
      value: { taskId: "b", type: "", parentTaskId: "a", onCompletePublishTo: undefined },
    });
    // A task naming itself as parent names none.
    expect(parse('{"task_id":"a","parent_task_id":"a"}')).toMatchObject({
      value: { parentTaskId: undefined },
    });
    expect(parse('{"task_id":"a","sla":null,"on_complete":{}}')).toMatchObject({ ok: true });
  });

  it("refuses what it cannot use, with a reason", () => {
    expect(parse("nope")).toEqual({ ok: false, reason: "invalid_json" });
    expect(parse("[1]")).toEqual({ ok: false, reason: "not_object" });
    expect(parse("{}")).toEqual({ ok: false, reason: "missing_field" });
    expect(parse('{"task_id":""}')).toEqual({ ok: false, reason: "missing_field" });
    expect(parse('{"task_id":7}')).toEqual({ ok: false, reason: "wrong_type" });
    expect(parse('{"task_id":"a","type":3}')).toEqual({ ok: false, reason: "wrong_type" });
    expect(parse('{"task_id":"a","sla":{"ack_within_seconds":"60"}}')).toEqual({
      ok: false,
      reason: "wrong_type",
    });
    expect(parse('{"task_id":"a","sla":{"complete_within_minutes":-1}}')).toEqual({
      ok: false,
      reason: "wrong_type",
    });
    expect(parse('{"task_id":"a","on_complete":{"publish_to":1}}')).toEqual({
      ok: false,
      reason: "wrong_type",
    });
    expect(parse('{"task_id":"a","on_complete":"x"}')).toEqual({ ok: false, reason: "wrong_type" });
    expect(parseTaskMessage(new Uint8Array(MAX_TASK_BYTES + 1))).toEqual({ ok: false, reason: "oversize" });
  });

  it("takes tasks larger than a status message, up to its own limit", () => {
    const payload = "x".repeat(MAX_MESSAGE_BYTES);
    const task = parse(JSON.stringify({ task_id: "task-big", type: "report", payload }));
    expect(task).toMatchObject({ ok: true, value: { taskId: "task-big", type: "report" } });
  });

  it("never throws on arbitrary bytes or JSON", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(typeof parseTaskMessage(bytes).ok).toBe("boolean");
      }),
    );
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(typeof parse(JSON.stringify(v)).ok).toBe("boolean");
      }),
    );
  });
});

describe("parseTraceparent", () => {
  it("reads a W3C traceparent", () => {
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      sampled: true,
    });
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled).toBe(false);
    // A later version may append fields.
    expect(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")?.traceId).toBe(
      "4bf92f3577b34da6a3ce929d0e0e4736",
    );
  });

  it("ignores malformed ones", () => {
    expect(parseTraceparent(undefined)).toBeUndefined();
    expect(parseTraceparent("")).toBeUndefined();
    expect(parseTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeUndefined();
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")).toBeUndefined();
    expect(parseTraceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBeUndefined();
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")).toBeUndefined();
    expect(parseTraceparent("00-xyz-00f067aa0ba902b7-01")).toBeUndefined();
  });
});
