// An organization event on {prefix}.org.events: {"type":"task.completed", "role"?, "task_id"?, "ts"?, ...}.
// Unknown fields are ignored. The type is free-form (it is capped where it becomes a label).
import { isValidRole } from "./classify.js";
import { invalid, optionalString, parseJsonObject, parseTimestamp, type Parsed } from "./message-parse.js";

export interface EventMessage {
  readonly type: string;
  /** "" when the event names no role. */
  readonly role: string;
  readonly taskId: string | undefined;
  /** The publisher's clock (epoch ms), when it sent one. */
  readonly tsMs: number | undefined;
}

/** Never throws. A role that could not be a subject token is refused rather than made a label. */
export function parseEventMessage(data: Uint8Array): Parsed<EventMessage> {
  const obj = parseJsonObject(data);
  if (!obj.ok) return obj;
  const { type, role, task_id, ts } = obj.value;
  if (type === undefined || type === null || type === "") return invalid("missing_field");
  if (typeof type !== "string") return invalid("wrong_type");
  const roleValue = optionalString(role);
  if (!roleValue.ok) return roleValue;
  if (roleValue.value !== undefined && roleValue.value !== "" && !isValidRole(roleValue.value))
    return invalid("bad_role");
  const taskId = optionalString(task_id);
  if (!taskId.ok) return taskId;
  const tsMs = parseTimestamp(ts);
  if (!tsMs.ok) return tsMs;
  return {
    ok: true,
    value: { type, role: roleValue.value ?? "", taskId: taskId.value || undefined, tsMs: tsMs.value },
  };
}

/** `task.completed` / `task.failed` are the explicit completion signals of chains. */
export function completionOutcome(type: string): "completed" | "failed" | undefined {
  if (type === "task.completed") return "completed";
  if (type === "task.failed") return "failed";
  return undefined;
}
