// A dead letter as stored on the dead-letter stream, read back for people: what it was, where it
// came from, its payload shown safely, and what a replay would publish where. Pure: the stored
// message comes in, plain data goes out (services/deadletters.ts reads and publishes).
import { createHash } from "node:crypto";
import { DEADLETTER_HEADERS as H, NATS_MSG_ID } from "./advisory.js";
import { classifySubject } from "./classify.js";
import { parseTraceparent } from "./task-message.js";

/** A dead letter as read by sequence from the dead-letter stream. */
export interface StoredDeadLetter {
  readonly seq: number;
  readonly subject: string;
  readonly storedMs: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly data: Uint8Array;
}

export interface DeadLetterSummary {
  /** Its sequence on the dead-letter stream: the id in the API and the console's URLs. */
  readonly id: number;
  readonly at: string;
  readonly role: string;
  readonly sourceStream: string | undefined;
  readonly sourceSequence: number | undefined;
  readonly consumer: string | undefined;
  /** The subject it was published to first: where a replay publishes it again. */
  readonly subject: string | undefined;
  readonly deliveries: number | undefined;
  readonly reason: string | undefined;
  readonly taskId: string | undefined;
  readonly traceId: string | undefined;
  /** orgwatch's identity of this death (the Nats-Msg-Id it was routed with). */
  readonly msgId: string | undefined;
  readonly missing: boolean;
  readonly payloadOmitted: boolean;
  readonly bytes: number;
}

export type PayloadView =
  | { readonly kind: "json"; readonly text: string }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "binary"; readonly base64: string; readonly hex: string };

/** Shown at most of a binary payload's bytes as hex (the base64 has them all). */
const HEX_PREVIEW_BYTES = 256;

function header(letter: StoredDeadLetter, name: string): string | undefined {
  const lower = name.toLowerCase();
  return letter.headers.find(([k]) => k.toLowerCase() === lower)?.[1];
}

function int(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Pretty JSON when it parses; text when it is valid UTF-8 without control characters; else bytes. */
export function payloadView(data: Uint8Array): PayloadView {
  let text: string | undefined;
  try {
    text = decoder.decode(data);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    try {
      return { kind: "json", text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {
      // not JSON
    }
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return { kind: "text", text };
  }
  const buf = Buffer.from(data);
  return {
    kind: "binary",
    base64: buf.toString("base64"),
    hex: buf.subarray(0, HEX_PREVIEW_BYTES).toString("hex").replace(/(..)/g, "$1 ").trim(),
  };
}

function taskIdOf(data: Uint8Array): string | undefined {
  try {
    const doc: unknown = JSON.parse(decoder.decode(data));
    const id = (doc as { task_id?: unknown } | null)?.task_id;
    return typeof id === "string" && id.length <= 256 ? id : undefined;
  } catch {
    return undefined;
  }
}

export function summarise(letter: StoredDeadLetter, prefix: string): DeadLetterSummary {
  const subject = header(letter, H.subject);
  const missing = header(letter, H.missing) === "true";
  return {
    id: letter.seq,
    at: new Date(letter.storedMs).toISOString(),
    role: subject !== undefined ? classifySubject(prefix, subject).role : "",
    sourceStream: header(letter, H.stream),
    sourceSequence: int(header(letter, H.sequence)),
    consumer: header(letter, H.consumer),
    subject,
    deliveries: int(header(letter, H.deliveries)),
    reason: header(letter, H.reason),
    taskId: missing ? undefined : taskIdOf(letter.data),
    traceId: parseTraceparent(header(letter, "traceparent"))?.traceId,
    msgId: header(letter, NATS_MSG_ID),
    missing,
    payloadOmitted: header(letter, H.payloadOmitted) !== undefined,
    bytes: letter.data.length,
  };
}

/** The header a replayed message carries: the dead letter it replays (its orgwatch identity). */
export const REPLAY_OF_HEADER = "Orgwatch-Replay-Of";

export interface ReplayPlan {
  /** The original subject. */
  readonly subject: string;
  /** The original's headers (traceparent kept), its first Nats-Msg-Id dropped, plus the replay's. */
  readonly headers: readonly (readonly [string, string])[];
  readonly data: Uint8Array;
  /** Derived from the dead letter: a second publish is dropped by the stream's duplicate window too. */
  readonly msgId: string;
  /** The key recording the replay for good (KV keys: [-/_=.a-zA-Z0-9]). */
  readonly recordKey: string;
  readonly replayOf: string;
}

/** What replaying this dead letter would publish, or why it can't be replayed. */
export function replayPlan(
  letter: StoredDeadLetter,
  deadLetterStream: string,
): { plan: ReplayPlan } | { refused: string } {
  const s = summarise(letter, "");
  if (s.subject === undefined)
    return { refused: "it does not say its original subject (not routed by orgwatch)" };
  if (s.missing)
    return { refused: "its original was already gone from its stream: there is no payload to replay" };
  if (s.payloadOmitted) return { refused: "its payload was too large to copy: there is nothing to replay" };
  const replayOf = s.msgId ?? `${deadLetterStream}:${letter.seq}`;
  const digest = createHash("sha256").update(replayOf).digest("hex").slice(0, 40);
  const headers: [string, string][] = [];
  for (const [k, v] of letter.headers) {
    const lower = k.toLowerCase();
    if (lower.startsWith("orgwatch-") || lower.startsWith("nats-")) continue;
    headers.push([k, v]);
  }
  const msgId = `orgwatch-replay:${digest}`;
  headers.push([NATS_MSG_ID, msgId], [REPLAY_OF_HEADER, replayOf]);
  return {
    plan: { subject: s.subject, headers, data: letter.data, msgId, recordKey: `replay.${digest}`, replayOf },
  };
}
