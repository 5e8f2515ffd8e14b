// Pure parsing of the JetStream advisories and metrics orgwatch reads, and the naming of what it
// routes to the dead-letter subject. Tolerant: unknown fields are ignored, anything unusable is an
// invalid message with a reason from a fixed vocabulary (a label of orgwatch_invalid_messages_total).

/** Advisories captured in orgwatch's own stream. */
export const MAX_DELIVERIES_SUBJECT = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>";
export const NAK_SUBJECT = "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.>";
export const TERMINATED_SUBJECT = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>";
export const CONSUMER_ADVISORY_SUBJECTS = [MAX_DELIVERIES_SUBJECT, NAK_SUBJECT, TERMINATED_SUBJECT] as const;
/** Sampled acks, published for consumers whose `sample_freq` is set. */
export const ACK_SAMPLE_SUBJECT = "$JS.EVENT.METRIC.CONSUMER.ACK.>";

export type AdvisoryKind = "max_deliveries" | "nak" | "terminated";

const KIND_BY_TYPE: Record<string, AdvisoryKind> = {
  "io.nats.jetstream.advisory.v1.max_deliver": "max_deliveries",
  "io.nats.jetstream.advisory.v1.nak": "nak",
  "io.nats.jetstream.advisory.v1.terminated": "terminated",
};
const ACK_SAMPLE_TYPE = "io.nats.jetstream.metric.v1.consumer_ack";

export interface ConsumerAdvisory {
  readonly kind: AdvisoryKind;
  /** The server's unique id of this advisory: the same on every replay of it. */
  readonly id: string;
  readonly stream: string;
  readonly consumer: string;
  readonly streamSequence: number;
  /** How many times the message had been delivered. */
  readonly deliveries: number;
  /** The server's timestamp as sent (RFC 3339, nanoseconds), and as epoch milliseconds. */
  readonly timestamp: string;
  readonly atMs: number;
  /** The reason an agent gave with `term(reason)` (servers ≥ 2.11), sanitised for a header. */
  readonly reason?: string;
}

export interface AckSample {
  readonly id: string;
  readonly stream: string;
  readonly consumer: string;
  readonly streamSequence: number;
  readonly deliveries: number;
  /** Last delivery → ack, in seconds. */
  readonly ackSeconds: number;
  readonly atMs: number;
}

export type InvalidReason =
  "oversize" | "not_json" | "not_object" | "unknown_type" | "missing_field" | "bad_field";

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: InvalidReason };

/** Advisories are a few hundred bytes; anything far bigger is not one. */
export const MAX_ADVISORY_BYTES = 64 * 1024;

/** A JetStream stream or consumer name as it can appear in a subject token and a label. */
const NAME = /^[\x21-\x7e]{1,255}$/;
const NAME_FORBIDDEN = /[.*>]/;

export function isValidJetStreamName(name: string): boolean {
  return NAME.test(name) && !NAME_FORBIDDEN.test(name);
}

class Invalid extends Error {
  constructor(readonly reason: InvalidReason) {
    super(reason);
  }
}

function parseObject(data: Uint8Array): Record<string, unknown> {
  if (data.length > MAX_ADVISORY_BYTES) throw new Invalid("oversize");
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new Invalid("not_json");
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new Invalid("not_object");
  return doc as Record<string, unknown>;
}

function name(doc: Record<string, unknown>, field: string): string {
  const v = doc[field];
  if (v === undefined) throw new Invalid("missing_field");
  if (typeof v !== "string" || !isValidJetStreamName(v)) throw new Invalid("bad_field");
  return v;
}

function count(doc: Record<string, unknown>, field: string, min: number): number {
  const v = doc[field];
  if (v === undefined) throw new Invalid("missing_field");
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new Invalid("bad_field");
  return v;
}

function timestamp(doc: Record<string, unknown>, receivedMs: number): { timestamp: string; atMs: number } {
  const v = doc["timestamp"];
  if (typeof v === "string") {
    const ms = Date.parse(v);
    if (Number.isFinite(ms) && ms > 0) return { timestamp: v, atMs: ms };
  }
  return { timestamp: new Date(receivedMs).toISOString(), atMs: receivedMs };
}

function optionalId(doc: Record<string, unknown>): string {
  const v = doc["id"];
  return typeof v === "string" && v.length > 0 && v.length <= 128 ? v : "";
}

/** Header-safe: printable, one line, bounded. */
export function sanitiseHeaderValue(value: string, max = 256): string {
  return value
    .replace(/[^\x20-\x7e]/g, " ")
    .trim()
    .slice(0, max);
}

/** A max-deliveries, nak or terminated advisory. */
export function parseConsumerAdvisory(data: Uint8Array, receivedMs: number): Parsed<ConsumerAdvisory> {
  try {
    const doc = parseObject(data);
    const kind = typeof doc["type"] === "string" ? KIND_BY_TYPE[doc["type"]] : undefined;
    if (kind === undefined) return { ok: false, reason: "unknown_type" };
    const reason = typeof doc["reason"] === "string" ? sanitiseHeaderValue(doc["reason"]) : "";
    return {
      ok: true,
      value: {
        kind,
        id: optionalId(doc),
        stream: name(doc, "stream"),
        consumer: name(doc, "consumer"),
        streamSequence: count(doc, "stream_seq", 1),
        deliveries: count(doc, "deliveries", 0),
        ...timestamp(doc, receivedMs),
        ...(reason ? { reason } : {}),
      },
    };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.reason };
    throw err;
  }
}

/** A sampled ack (`io.nats.jetstream.metric.v1.consumer_ack`); `ack_time` is in nanoseconds. */
export function parseAckSample(data: Uint8Array, receivedMs: number): Parsed<AckSample> {
  try {
    const doc = parseObject(data);
    if (doc["type"] !== ACK_SAMPLE_TYPE) return { ok: false, reason: "unknown_type" };
    const ackNanos = doc["ack_time"];
    if (ackNanos === undefined) return { ok: false, reason: "missing_field" };
    if (typeof ackNanos !== "number" || !Number.isFinite(ackNanos) || ackNanos < 0)
      return { ok: false, reason: "bad_field" };
    return {
      ok: true,
      value: {
        id: optionalId(doc),
        stream: name(doc, "stream"),
        consumer: name(doc, "consumer"),
        streamSequence: count(doc, "stream_seq", 1),
        deliveries: count(doc, "deliveries", 0),
        ackSeconds: ackNanos / 1e9,
        atMs: timestamp(doc, receivedMs).atMs,
      },
    };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.reason };
    throw err;
  }
}

// ---- What orgwatch routes to the dead-letter subject -------------------------------------------

/** Headers orgwatch adds to every dead letter (documented in docs/deadletters.md). */
export const DEADLETTER_HEADERS = {
  stream: "Orgwatch-Source-Stream",
  consumer: "Orgwatch-Source-Consumer",
  sequence: "Orgwatch-Source-Sequence",
  subject: "Orgwatch-Source-Subject",
  storedTime: "Orgwatch-Source-Time",
  sourceMsgId: "Orgwatch-Source-Msg-Id",
  deliveries: "Orgwatch-Deliveries",
  reason: "Orgwatch-Deadletter-Reason",
  time: "Orgwatch-Deadletter-Time",
  terminatedReason: "Orgwatch-Terminated-Reason",
  missing: "Orgwatch-Message-Missing",
  payloadOmitted: "Orgwatch-Payload-Omitted",
} as const;

export const NATS_MSG_ID = "Nats-Msg-Id";

/** The original message as read back from its stream by sequence. */
export interface OriginalMessage {
  readonly subject: string;
  /** Stored time as the server gave it (RFC 3339). */
  readonly time: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly data: Uint8Array;
}

export interface DeadLetter {
  /** The same for every replay of the same death: the `Nats-Msg-Id` and the ledger key derive from it. */
  readonly msgId: string;
  readonly ledgerKey: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly data: Uint8Array;
}

/** KV keys allow `[-/_=.a-zA-Z0-9]`; names with other characters are base64url-encoded behind a `=`. */
function keyToken(name: string): string {
  if (/^[-_A-Za-z0-9]+$/.test(name)) return name;
  return "=" + Buffer.from(name, "utf8").toString("base64url");
}

/**
 * Identity of one message's death on one consumer. The stored time tells a message apart from a later
 * one with the same sequence in a re-created stream; a message already gone has none ("gone").
 */
export function deadLetterIdentity(
  advisory: Pick<ConsumerAdvisory, "stream" | "consumer" | "streamSequence">,
  storedTime: string | undefined,
): { msgId: string; ledgerKey: string } {
  const stamp = storedTime === undefined ? "gone" : "t" + storedTime.replace(/\D/g, "");
  const { stream, consumer, streamSequence: seq } = advisory;
  return {
    msgId: `orgwatch-dl:${stream}:${consumer}:${seq}:${stamp}`,
    ledgerKey: `${keyToken(stream)}.${keyToken(consumer)}.${seq}.${stamp}`,
  };
}

/** Headers of the original that would change what JetStream does with the copy (dedupe, expectations, rollups, TTL). */
function isJetStreamControlHeader(name: string): boolean {
  return name.toLowerCase().startsWith("nats-");
}

/**
 * The dead letter for an advisory: the original's headers (traceparent included) minus JetStream
 * control headers, plus orgwatch's; or, when the original is gone, a small JSON record of it.
 */
export function buildDeadLetter(
  advisory: ConsumerAdvisory,
  original: OriginalMessage | undefined,
): DeadLetter {
  const H = DEADLETTER_HEADERS;
  const { msgId, ledgerKey } = deadLetterIdentity(advisory, original?.time);
  const headers: [string, string][] = [];
  if (original) {
    for (const [k, v] of original.headers) {
      if (k.toLowerCase() === NATS_MSG_ID.toLowerCase()) headers.push([H.sourceMsgId, v]);
      else if (!isJetStreamControlHeader(k) && !k.toLowerCase().startsWith("orgwatch-")) headers.push([k, v]);
    }
  }
  headers.push(
    [NATS_MSG_ID, msgId],
    [H.stream, advisory.stream],
    [H.consumer, advisory.consumer],
    [H.sequence, String(advisory.streamSequence)],
    [H.deliveries, String(advisory.deliveries)],
    [H.reason, advisory.kind],
    [H.time, advisory.timestamp],
  );
  if (advisory.reason) headers.push([H.terminatedReason, advisory.reason]);
  if (original) {
    headers.push([H.subject, original.subject], [H.storedTime, original.time]);
    return { msgId, ledgerKey, headers, data: original.data };
  }
  headers.push([H.missing, "true"]);
  const record = {
    stream: advisory.stream,
    consumer: advisory.consumer,
    stream_seq: advisory.streamSequence,
    deliveries: advisory.deliveries,
    reason: advisory.kind,
    deadletter_time: advisory.timestamp,
    missing: "the message is no longer in its stream (expired, deleted or purged)",
  };
  return { msgId, ledgerKey, headers, data: new TextEncoder().encode(JSON.stringify(record)) };
}

/** Bytes of a dead letter on the wire (payload and headers, roughly as NATS counts them). */
export function deadLetterSize(letter: DeadLetter): number {
  let size = letter.data.length + "NATS/1.0\r\n\r\n".length;
  for (const [k, v] of letter.headers) size += k.length + v.length + 4;
  return size;
}

/**
 * The same dead letter without its payload, for an original too large to copy with orgwatch's
 * headers added (the server's max_payload): headers and identity stay, so it is still routed once.
 */
export function withoutPayload(letter: DeadLetter, originalBytes: number): DeadLetter {
  return {
    ...letter,
    headers: [...letter.headers, [DEADLETTER_HEADERS.payloadOmitted, `too large (${originalBytes} bytes)`]],
    data: new Uint8Array(0),
  };
}
