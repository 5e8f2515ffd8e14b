// Tokens and cost agents report on task.completed / task.failed (DESIGN.md §8), summed by role and
// outcome; work spent twice is the usage of tasks that did not complete, or that were delivered more
// than once. Written by sources/org-events.ts; read by exporters/metrics/backpressure.ts.
import type { Usage } from "../logic/event-message.js";

export interface UsageTotals {
  readonly role: string;
  readonly outcome: "completed" | "failed";
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export class UsageModel {
  private readonly totals = new Map<string, UsageTotals>();
  private readonly spentTwice = new Map<string, number>();

  /**
   * One report. `deliveries`: how often the task was delivered, when orgwatch knows it; a task
   * delivered more than once, or one that failed, spent its tokens on work done again.
   */
  record(role: string, outcome: "completed" | "failed", usage: Usage, deliveries: number | undefined): void {
    const key = `${role}\u0000${outcome}`;
    let t = this.totals.get(key);
    if (!t) this.totals.set(key, (t = { role, outcome, inputTokens: 0, outputTokens: 0, costUsd: 0 }));
    t.inputTokens += usage.inputTokens;
    t.outputTokens += usage.outputTokens;
    t.costUsd += usage.costUsd;
    if (outcome !== "completed" || (deliveries ?? 1) > 1)
      this.spentTwice.set(role, (this.spentTwice.get(role) ?? 0) + usage.inputTokens + usage.outputTokens);
  }

  all(): IterableIterator<UsageTotals> {
    return this.totals.values();
  }

  /** Tokens of work done again, by role. */
  redelivered(): IterableIterator<[string, number]> {
    return this.spentTwice.entries();
  }
}
