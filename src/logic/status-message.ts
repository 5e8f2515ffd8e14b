// An agent's status message on {prefix}.agents.{role}.status:
// {"state":"idle|busy|error|offline", "task_id"?, "ts"?}. Unknown fields are ignored.
import { invalid, optionalString, parseJsonObject, parseTimestamp, type Parsed } from "./message-parse.js";

export const REPORTED_STATES = ["idle", "busy", "error", "offline"] as const;
export type ReportedState = (typeof REPORTED_STATES)[number];
/** `unknown`: never reported, silent past the staleness window, or a state orgwatch does not know. */
export const AGENT_STATES = [...REPORTED_STATES, "unknown"] as const;
export type AgentState = (typeof AGENT_STATES)[number];

export interface StatusMessage {
  readonly state: ReportedState;
  readonly taskId: string | undefined;
  /** The agent's own clock (epoch ms), when it sent one. */
  readonly tsMs: number | undefined;
}

function isReportedState(value: string): value is ReportedState {
  return (REPORTED_STATES as readonly string[]).includes(value);
}

/**
 * Never throws. A well-formed message whose state is not one of the four is refused with
 * `unknown_state` (checked last, so that reason means "only the state was wrong").
 */
export function parseStatusMessage(data: Uint8Array): Parsed<StatusMessage> {
  const obj = parseJsonObject(data);
  if (!obj.ok) return obj;
  const { state, task_id, ts } = obj.value;
  if (state === undefined || state === null || state === "") return invalid("missing_field");
  if (typeof state !== "string") return invalid("wrong_type");
  const taskId = optionalString(task_id);
  if (!taskId.ok) return taskId;
  const tsMs = parseTimestamp(ts);
  if (!tsMs.ok) return tsMs;
  const normalized = state.toLowerCase();
  if (!isReportedState(normalized)) return invalid("unknown_state");
  return { ok: true, value: { state: normalized, taskId: taskId.value, tsMs: tsMs.value } };
}
