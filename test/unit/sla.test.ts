import { describe, expect, it } from "vitest";
import { isOverdue, isSlaBreached, slaDeadlineMs, type SlaSubject } from "../../src/logic/sla.js";

const task = (over: Partial<SlaSubject> = {}): SlaSubject => ({
  sla: { ackWithinSeconds: 60, completeWithinMinutes: 10 },
  publishedMs: 0,
  firstDeliveryMs: undefined,
  doneMs: undefined,
  ...over,
});

describe("SLA evaluation", () => {
  it("computes deadlines from the task's own fields", () => {
    expect(slaDeadlineMs(task(), "ack")).toBe(60_000);
    expect(slaDeadlineMs(task(), "complete")).toBe(600_000);
    expect(
      slaDeadlineMs(task({ sla: { ackWithinSeconds: undefined, completeWithinMinutes: undefined } }), "ack"),
    ).toBeUndefined();
  });

  it("ack: breached by a late first delivery or none by the deadline; overdue only while undelivered", () => {
    expect(isSlaBreached(task({ firstDeliveryMs: 60_000 }), "ack", 999_999)).toBe(false);
    expect(isSlaBreached(task({ firstDeliveryMs: 60_001 }), "ack", 60_001)).toBe(true);
    expect(isSlaBreached(task(), "ack", 60_000)).toBe(false);
    expect(isSlaBreached(task(), "ack", 60_001)).toBe(true);
    expect(isOverdue(task(), "ack", 60_001)).toBe(true);
    expect(isOverdue(task({ firstDeliveryMs: 70_000 }), "ack", 80_000)).toBe(false);
    // Ended with no delivery seen: it was delivered by its end at the latest.
    expect(isSlaBreached(task({ doneMs: 30_000 }), "ack", 999_999)).toBe(false);
  });

  it("complete: breached by a late end or none by the deadline; overdue only while open", () => {
    expect(isSlaBreached(task({ doneMs: 600_000 }), "complete", 999_999)).toBe(false);
    expect(isSlaBreached(task({ doneMs: 600_001 }), "complete", 600_001)).toBe(true);
    expect(isSlaBreached(task(), "complete", 600_001)).toBe(true);
    expect(isOverdue(task({ firstDeliveryMs: 1 }), "complete", 600_001)).toBe(true);
    expect(isOverdue(task({ doneMs: 700_000 }), "complete", 800_000)).toBe(false);
    expect(isOverdue(task(), "complete", 600_000)).toBe(false);
  });
});
