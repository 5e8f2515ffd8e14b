// SLA evaluation of one task against its own `sla` fields: `ack_within_seconds` against the first
// delivery (the agent picked it up), `complete_within_minutes` against its end (whatever the outcome).
import type { TaskSla } from "./task-message.js";

export type SlaKind = "ack" | "complete";
export const SLA_KINDS: readonly SlaKind[] = ["ack", "complete"];

export interface SlaSubject {
  readonly sla: TaskSla;
  readonly publishedMs: number;
  readonly firstDeliveryMs: number | undefined;
  /** When it ended (completed, failed, dead-lettered, timed out); undefined while open. */
  readonly doneMs: number | undefined;
}

export function slaDeadlineMs(task: SlaSubject, kind: SlaKind): number | undefined {
  if (kind === "ack") {
    const s = task.sla.ackWithinSeconds;
    return s === undefined ? undefined : task.publishedMs + s * 1000;
  }
  const m = task.sla.completeWithinMinutes;
  return m === undefined ? undefined : task.publishedMs + m * 60_000;
}

/** The moment that settles the SLA, when it happened: first delivery (ack) or the end (complete). */
function settledAtMs(task: SlaSubject, kind: SlaKind): number | undefined {
  if (kind === "complete") return task.doneMs;
  // Ended without a delivery ever being seen (delivered and acked between two polls): it was
  // delivered by the time it ended at the latest.
  return task.firstDeliveryMs ?? task.doneMs;
}

/** Breached: settled after the deadline, or not settled and the deadline has passed. */
export function isSlaBreached(task: SlaSubject, kind: SlaKind, nowMs: number): boolean {
  const deadline = slaDeadlineMs(task, kind);
  if (deadline === undefined) return false;
  const settled = settledAtMs(task, kind);
  return settled !== undefined ? settled > deadline : nowMs > deadline;
}

/** Overdue: still unsettled and already past the deadline (an alert can fire before the task ends). */
export function isOverdue(task: SlaSubject, kind: SlaKind, nowMs: number): boolean {
  const deadline = slaDeadlineMs(task, kind);
  return deadline !== undefined && settledAtMs(task, kind) === undefined && nowMs > deadline;
}
