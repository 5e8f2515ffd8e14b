import { describe, expect, it } from "vitest";
import {
  buildDeadLetter,
  deadLetterIdentity,
  deadLetterSize,
  parseAckSample,
  parseConsumerAdvisory,
  withoutPayload,
  type ConsumerAdvisory,
} from "../../src/logic/advisory.js";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const RECEIVED = Date.parse("2026-01-01T00:00:00Z");

// As nats-server 2.9.10 publishes them.
const MAX_DELIVER = {
  type: "io.nats.jetstream.advisory.v1.max_deliver",
  id: "mCWg19cRdr5pgNIT06YnrF",
  timestamp: "2026-11-23T23:11:59.334909333Z",
  stream: "AGENT_CTO_TASKS",
  consumer: "cto",
  stream_seq: 7,
  deliveries: 3,
};

describe("parseConsumerAdvisory", () => {
  it("reads a max-deliveries advisory", () => {
    expect(parseConsumerAdvisory(enc(MAX_DELIVER), RECEIVED)).toEqual({
      ok: true,
      value: {
        kind: "max_deliveries",
        id: "mCWg19cRdr5pgNIT06YnrF",
        stream: "AGENT_CTO_TASKS",
        consumer: "cto",
        streamSequence: 7,
        deliveries: 3,
        timestamp: "2026-11-23T23:11:59.334909333Z",
        atMs: Date.parse("2026-11-23T23:11:59.334Z"),
      },
    });
  });

  it("reads naks and terms, with a term's reason made header-safe", () => {
    const nak = { ...MAX_DELIVER, type: "io.nats.jetstream.advisory.v1.nak", consumer_seq: 9 };
    expect(parseConsumerAdvisory(enc(nak), RECEIVED)).toMatchObject({ ok: true, value: { kind: "nak" } });
    const term = { ...MAX_DELIVER, type: "io.nats.jetstream.advisory.v1.terminated", reason: "bad\r\ninput" };
    expect(parseConsumerAdvisory(enc(term), RECEIVED)).toMatchObject({
      ok: true,
      value: { kind: "terminated", reason: "bad  input" },
    });
  });

  it("falls back to the arrival time when the timestamp is missing or bad", () => {
    const noTime: Record<string, unknown> = { ...MAX_DELIVER };
    delete noTime["timestamp"];
    expect(parseConsumerAdvisory(enc(noTime), RECEIVED)).toMatchObject({
      ok: true,
      value: { atMs: RECEIVED },
    });
    expect(parseConsumerAdvisory(enc({ ...MAX_DELIVER, timestamp: "yesterday" }), RECEIVED)).toMatchObject({
      ok: true,
      value: { atMs: RECEIVED },
    });
  });

  it("refuses what is not a usable advisory, with a reason", () => {
    const reason = (v: unknown) => {
      const r = parseConsumerAdvisory(enc(v), RECEIVED);
      return r.ok ? "ok" : r.reason;
    };
    expect(reason("not json")).toBe("not_json");
    expect(reason([1])).toBe("not_object");
    expect(reason({ ...MAX_DELIVER, type: "io.nats.jetstream.advisory.v1.api_audit" })).toBe("unknown_type");
    const noStream: Record<string, unknown> = { ...MAX_DELIVER };
    delete noStream["stream"];
    expect(reason(noStream)).toBe("missing_field");
    expect(reason({ ...MAX_DELIVER, stream: "A.B" })).toBe("bad_field");
    expect(reason({ ...MAX_DELIVER, consumer: 5 })).toBe("bad_field");
    expect(reason({ ...MAX_DELIVER, stream_seq: 0 })).toBe("bad_field");
    expect(reason({ ...MAX_DELIVER, deliveries: 1.5 })).toBe("bad_field");
    expect(parseConsumerAdvisory(new Uint8Array(70 * 1024), RECEIVED)).toEqual({
      ok: false,
      reason: "oversize",
    });
  });
});

describe("parseAckSample", () => {
  const SAMPLE = {
    type: "io.nats.jetstream.metric.v1.consumer_ack",
    id: "x1",
    timestamp: "2026-11-23T23:12:00Z",
    stream: "AGENT_CTO_TASKS",
    consumer: "cto",
    consumer_seq: 4,
    stream_seq: 4,
    ack_time: 1_500_000_000,
    deliveries: 1,
  };

  it("reads the delivery → ack time in seconds", () => {
    expect(parseAckSample(enc(SAMPLE), RECEIVED)).toEqual({
      ok: true,
      value: {
        id: "x1",
        stream: "AGENT_CTO_TASKS",
        consumer: "cto",
        streamSequence: 4,
        deliveries: 1,
        ackSeconds: 1.5,
        atMs: Date.parse("2026-11-23T23:12:00Z"),
      },
    });
  });

  it("refuses other metrics and bad ack times", () => {
    expect(parseAckSample(enc({ ...SAMPLE, type: "x" }), RECEIVED)).toEqual({
      ok: false,
      reason: "unknown_type",
    });
    expect(parseAckSample(enc({ ...SAMPLE, ack_time: -1 }), RECEIVED)).toEqual({
      ok: false,
      reason: "bad_field",
    });
    const noAck: Record<string, unknown> = { ...SAMPLE };
    delete noAck["ack_time"];
    expect(parseAckSample(enc(noAck), RECEIVED)).toEqual({ ok: false, reason: "missing_field" });
  });
});

describe("dead letters", () => {
  const advisory = (parseConsumerAdvisory(enc(MAX_DELIVER), RECEIVED) as { value: ConsumerAdvisory }).value;
  const original = {
    subject: "genbrain.agents.cto.tasks",
    time: "2026-11-23T23:11:56.123456789Z",
    headers: [
      ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
      ["Nats-Msg-Id", "task-1847"],
      ["Nats-Expected-Stream", "AGENT_CTO_TASKS"],
      ["Orgwatch-Source-Stream", "forged"],
      ["X-Custom", "a"],
      ["X-Custom", "b"],
    ] as [string, string][],
    data: enc("payload"),
  };

  it("identifies one message's death on one consumer the same way on every replay", () => {
    const a = deadLetterIdentity(advisory, original.time);
    expect(a).toEqual({
      msgId: "orgwatch-dl:AGENT_CTO_TASKS:cto:7:t20261123231156123456789",
      ledgerKey: "AGENT_CTO_TASKS.cto.7.t20261123231156123456789",
    });
    expect(deadLetterIdentity({ ...advisory }, original.time)).toEqual(a);
    // Another consumer, another sequence, a re-created stream (another stored time): another death.
    expect(deadLetterIdentity({ ...advisory, consumer: "cto2" }, original.time)).not.toEqual(a);
    expect(deadLetterIdentity({ ...advisory, streamSequence: 8 }, original.time)).not.toEqual(a);
    expect(deadLetterIdentity(advisory, "2026-11-24T00:00:00Z")).not.toEqual(a);
    expect(deadLetterIdentity(advisory, undefined).ledgerKey).toBe("AGENT_CTO_TASKS.cto.7.gone");
  });

  it("encodes names that are not KV key characters", () => {
    const { ledgerKey } = deadLetterIdentity({ ...advisory, consumer: "cto+worker" }, undefined);
    expect(ledgerKey).toMatch(/^AGENT_CTO_TASKS\.=[-_A-Za-z0-9]+\.7\.gone$/);
  });

  it("copies the original with its headers, minus JetStream control headers, plus orgwatch's", () => {
    const letter = buildDeadLetter(advisory, original);
    expect(new TextDecoder().decode(letter.data)).toBe("payload");
    expect(letter.headers).toEqual([
      ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
      ["Orgwatch-Source-Msg-Id", "task-1847"],
      ["X-Custom", "a"],
      ["X-Custom", "b"],
      ["Nats-Msg-Id", "orgwatch-dl:AGENT_CTO_TASKS:cto:7:t20261123231156123456789"],
      ["Orgwatch-Source-Stream", "AGENT_CTO_TASKS"],
      ["Orgwatch-Source-Consumer", "cto"],
      ["Orgwatch-Source-Sequence", "7"],
      ["Orgwatch-Deliveries", "3"],
      ["Orgwatch-Deadletter-Reason", "max_deliveries"],
      ["Orgwatch-Deadletter-Time", "2026-11-23T23:11:59.334909333Z"],
      ["Orgwatch-Source-Subject", "genbrain.agents.cto.tasks"],
      ["Orgwatch-Source-Time", "2026-11-23T23:11:56.123456789Z"],
    ]);
  });

  it("routes a small record of a message already gone", () => {
    const letter = buildDeadLetter(advisory, undefined);
    expect(letter.headers).toContainEqual(["Orgwatch-Message-Missing", "true"]);
    expect(JSON.parse(new TextDecoder().decode(letter.data))).toMatchObject({
      stream: "AGENT_CTO_TASKS",
      consumer: "cto",
      stream_seq: 7,
      deliveries: 3,
      reason: "max_deliveries",
    });
  });

  it("drops the payload of one too large to copy, keeping its identity", () => {
    const big = buildDeadLetter(advisory, { ...original, data: new Uint8Array(2048) });
    expect(deadLetterSize(big)).toBeGreaterThan(2048);
    const small = withoutPayload(big, big.data.length);
    expect(small.data.length).toBe(0);
    expect(small.msgId).toBe(big.msgId);
    expect(small.headers).toContainEqual(["Orgwatch-Payload-Omitted", "too large (2048 bytes)"]);
  });
});
