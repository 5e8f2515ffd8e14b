import { describe, expect, it } from "vitest";
import { parseStatusMessage } from "../../src/logic/status-message.js";
import { MAX_MESSAGE_BYTES, parseTimestamp } from "../../src/logic/message-parse.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const parse = (s: string) => parseStatusMessage(bytes(s));

describe("parseStatusMessage", () => {
  it("reads the four states, the task id and the timestamp; ignores unknown fields", () => {
    expect(parse('{"state":"busy","task_id":"task-1","ts":1700000000,"extra":[1]}')).toEqual({
      ok: true,
      value: { state: "busy", taskId: "task-1", tsMs: 1_700_000_000_000 },
    });
    for (const state of ["idle", "busy", "error", "offline"]) {
      expect(parse(JSON.stringify({ state }))).toEqual({
        ok: true,
        value: { state, taskId: undefined, tsMs: undefined },
      });
    }
    expect(parse('{"state":"IDLE","task_id":null}')).toMatchObject({ ok: true, value: { state: "idle" } });
  });

  it.each([
    ["not json", "invalid_json"],
    ["", "invalid_json"],
    ["[1,2]", "not_object"],
    ["null", "not_object"],
    ['"busy"', "not_object"],
    ["42", "not_object"],
    ["{}", "missing_field"],
    ['{"state":""}', "missing_field"],
    ['{"state":3}', "wrong_type"],
    ['{"state":"busy","task_id":7}', "wrong_type"],
    ['{"state":"busy","ts":true}', "wrong_type"],
    ['{"state":"busy","ts":"yesterday"}', "bad_timestamp"],
    ['{"state":"busy","ts":-5}', "bad_timestamp"],
    ['{"state":"sleeping"}', "unknown_state"],
  ])("refuses %j with reason %s", (text, reason) => {
    expect(parse(text)).toEqual({ ok: false, reason });
  });

  it("refuses payloads over the size limit before parsing them", () => {
    const padding = "x".repeat(MAX_MESSAGE_BYTES);
    expect(parse(`{"state":"idle","pad":"${padding}"}`)).toEqual({ ok: false, reason: "oversize" });
    const fits = `{"state":"idle","pad":"${"x".repeat(MAX_MESSAGE_BYTES - 40)}"}`;
    expect(parse(fits).ok).toBe(true);
  });

  it("refuses invalid UTF-8 and deep nesting without throwing", () => {
    expect(parseStatusMessage(new Uint8Array([0xff, 0xfe, 0x7b]))).toEqual({
      ok: false,
      reason: "invalid_json",
    });
    const deep = "[".repeat(30_000) + "]".repeat(30_000);
    expect(parse(deep).ok).toBe(false);
  });
});

describe("parseTimestamp", () => {
  it("takes epoch seconds, epoch milliseconds and RFC 3339", () => {
    expect(parseTimestamp(1_700_000_000.5)).toEqual({ ok: true, value: 1_700_000_000_500 });
    expect(parseTimestamp(1_700_000_000_123)).toEqual({ ok: true, value: 1_700_000_000_123 });
    expect(parseTimestamp("2024-05-01T10:00:00.250Z")).toEqual({
      ok: true,
      value: Date.parse("2024-05-01T10:00:00.250Z"),
    });
    expect(parseTimestamp(undefined)).toEqual({ ok: true, value: undefined });
    expect(parseTimestamp(Infinity)).toEqual({ ok: false, reason: "bad_timestamp" });
    expect(parseTimestamp("2024")).toEqual({ ok: false, reason: "bad_timestamp" });
    expect(parseTimestamp({})).toEqual({ ok: false, reason: "wrong_type" });
  });
});
