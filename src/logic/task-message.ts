// A task on {prefix}.agents.{role}.tasks, as agents publish it today:
// {"task_id":"task-1847","type":"feature_implementation","title":"...","parent_task_id"?:"...",
//  "sla":{"ack_within_seconds":60,"complete_within_minutes":60},
//  "on_complete":{"publish_to":"genbrain.agents.security.tasks","payload_template":"security_review"}}
// plus an optional W3C `traceparent` header. Unknown fields are ignored; anything else unusable is
// refused with a reason from the fixed vocabulary of message-parse.ts. Never throws.
import { invalid, optionalString, parseJsonObject, type Parsed } from "./message-parse.js";

/** Tasks carry payloads, so they may be larger than status or event messages (NATS' default max_payload). */
export const MAX_TASK_BYTES = 1024 * 1024;
/** Task ids are looked up, logged and persisted, never labels; still, a kilobyte is plenty. */
const MAX_TASK_ID_LENGTH = 1024;

export interface TaskSla {
  readonly ackWithinSeconds: number | undefined;
  readonly completeWithinMinutes: number | undefined;
}

export interface TaskMessage {
  readonly taskId: string;
  /** "" when the task names no type. */
  readonly type: string;
  readonly parentTaskId: string | undefined;
  readonly sla: TaskSla;
  /** The subject the task's on_complete publishes its follow-up to. */
  readonly onCompletePublishTo: string | undefined;
}

export interface TraceParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
}

function optionalPositiveNumber(value: unknown): Parsed<number | undefined> {
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) return invalid("wrong_type");
  return { ok: true, value };
}

function optionalObject(value: unknown): Parsed<Record<string, unknown> | undefined> {
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value !== "object" || Array.isArray(value)) return invalid("wrong_type");
  return { ok: true, value: value as Record<string, unknown> };
}

export function parseTaskMessage(data: Uint8Array): Parsed<TaskMessage> {
  const doc = parseJsonObject(data, MAX_TASK_BYTES);
  if (!doc.ok) return doc;
  const { task_id, type, parent_task_id, sla, on_complete } = doc.value;

  if (task_id === undefined || task_id === null || task_id === "") return invalid("missing_field");
  if (typeof task_id !== "string" || task_id.length > MAX_TASK_ID_LENGTH) return invalid("wrong_type");
  const typeValue = optionalString(type);
  if (!typeValue.ok) return typeValue;
  const parent = optionalString(parent_task_id);
  if (!parent.ok) return parent;
  if (parent.value !== undefined && parent.value.length > MAX_TASK_ID_LENGTH) return invalid("wrong_type");

  const slaObject = optionalObject(sla);
  if (!slaObject.ok) return slaObject;
  const ackWithin = optionalPositiveNumber(slaObject.value?.["ack_within_seconds"]);
  if (!ackWithin.ok) return ackWithin;
  const completeWithin = optionalPositiveNumber(slaObject.value?.["complete_within_minutes"]);
  if (!completeWithin.ok) return completeWithin;

  const onComplete = optionalObject(on_complete);
  if (!onComplete.ok) return onComplete;
  const publishTo = optionalString(onComplete.value?.["publish_to"]);
  if (!publishTo.ok) return publishTo;

  return {
    ok: true,
    value: {
      taskId: task_id,
      type: typeValue.value ?? "",
      // A task naming itself as its parent names no parent.
      parentTaskId: parent.value && parent.value !== task_id ? parent.value : undefined,
      sla: { ackWithinSeconds: ackWithin.value, completeWithinMinutes: completeWithin.value },
      onCompletePublishTo: publishTo.value || undefined,
    },
  };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A W3C trace context `traceparent` header; undefined when absent or malformed (an all-zero id,
 * version ff). Future versions may append fields after the flags: those are ignored.
 */
export function parseTraceparent(header: string | undefined): TraceParent | undefined {
  if (header === undefined) return undefined;
  const value = header.trim().toLowerCase();
  const m = TRACEPARENT.exec(value.length > 55 && value[55] === "-" ? value.slice(0, 55) : value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === "ff" || (version === "00" && value.length !== 55)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}
