// Trace and span ids of tasks, derived from the task id so they are the same whenever and by
// whichever orgwatch process they are computed: a parent and its child exported at different times,
// or on both sides of a restart, still connect.
import { createHash } from "node:crypto";

function digestHex(kind: string, taskId: string, hexChars: number): string {
  const hex = createHash("sha256")
    .update(`orgwatch/${kind}/`)
    .update(taskId)
    .digest("hex")
    .slice(0, hexChars);
  // An all-zero id is invalid in W3C trace context; astronomically unlikely, but never emit one.
  return /^0+$/.test(hex) ? "1".padStart(hexChars, "0") : hex;
}

/** The span id (16 hex) of a task's span. */
export function taskSpanId(taskId: string): string {
  return digestHex("span", taskId, 16);
}

/** The span id (16 hex) of the span summing up the chain whose first known task is `rootTaskId`. */
export function chainSpanId(rootTaskId: string): string {
  return digestHex("chain-span", rootTaskId, 16);
}

/** The trace id (32 hex) of a chain whose first known task is `rootTaskId`. */
export function chainTraceId(rootTaskId: string): string {
  return digestHex("trace", rootTaskId, 32);
}
