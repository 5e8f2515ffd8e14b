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
  /** Tokens and cost the agent reports for the work (task.completed / task.failed). */
  readonly usage: Usage | undefined;
  /** The usage was there but unusable (negative, not a number, absurd): counted invalid, never summed. */
  readonly badUsage: boolean;
}

export interface Usage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
  readonly model: string | undefined;
}

/** One event reports one piece of work: more than this is a bug, not a bill. */
const MAX_TOKENS = 1e9;
const MAX_COST_USD = 1e6;

/**
 * `usage: {input_tokens, output_tokens, cost_usd, model}`, or the OTel GenAI names
 * (`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.request.model`) in `usage` or
 * at the top level. undefined: none reported; "bad": reported and unusable.
 */
export function parseUsage(event: Record<string, unknown>): Usage | undefined | "bad" {
  const u = event["usage"];
  if (u !== undefined && (u === null || typeof u !== "object" || Array.isArray(u))) return "bad";
  const from = (u ?? {}) as Record<string, unknown>;
  const pick = (...keys: string[]) => {
    for (const k of keys) {
      if (from[k] !== undefined) return from[k];
      if (event[k] !== undefined) return event[k];
    }
    return undefined;
  };
  const input = pick("input_tokens", "gen_ai.usage.input_tokens");
  const output = pick("output_tokens", "gen_ai.usage.output_tokens");
  const cost = pick("cost_usd", "orgwatch.cost_usd");
  const model = pick("model", "gen_ai.request.model", "gen_ai.response.model");
  if (input === undefined && output === undefined && cost === undefined)
    return u === undefined ? undefined : "bad";
  const count = (v: unknown, max: number, integer: boolean) =>
    v === undefined
      ? 0
      : typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= max && (!integer || Number.isInteger(v))
        ? v
        : undefined;
  const inputTokens = count(input, MAX_TOKENS, true);
  const outputTokens = count(output, MAX_TOKENS, true);
  const costUsd = count(cost, MAX_COST_USD, false);
  if (inputTokens === undefined || outputTokens === undefined || costUsd === undefined) return "bad";
  if (model !== undefined && (typeof model !== "string" || model.length > 128)) return "bad";
  return { inputTokens, outputTokens, costUsd, model };
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
  const usage = completionOutcome(type) !== undefined ? parseUsage(obj.value) : undefined;
  return {
    ok: true,
    value: {
      type,
      role: roleValue.value ?? "",
      taskId: taskId.value || undefined,
      tsMs: tsMs.value,
      usage: usage === "bad" ? undefined : usage,
      badUsage: usage === "bad",
    },
  };
}

/** `task.completed` / `task.failed` are the explicit completion signals of chains. */
export function completionOutcome(type: string): "completed" | "failed" | undefined {
  if (type === "task.completed") return "completed";
  if (type === "task.failed") return "failed";
  return undefined;
}
