// The poller's synchronous work runs in jobs of a time slicer: in order, with its results and errors,
// and giving the event loop a turn once a job has used up the budget.
import { describe, expect, it } from "vitest";
import { createTimeSlicer } from "../../src/sources/time-slicer.js";

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe("time slicer", () => {
  it("runs jobs in order with their results and errors", async () => {
    const slicer = createTimeSlicer(10);
    const order: number[] = [];
    const results = await Promise.allSettled([
      slicer.run(() => (order.push(1), "one")),
      slicer.run(() => {
        order.push(2);
        throw new Error("two failed");
      }),
      slicer.run(() => (order.push(3), 3)),
    ]);
    expect(order).toEqual([1, 2, 3]);
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([
      "one",
      "two failed",
      3,
    ]);
  });

  it("lets the event loop turn between jobs once the budget is used, not before", async () => {
    const slicer = createTimeSlicer(10);
    const events: string[] = [];
    // Queued together, as replies arriving in one burst would queue them.
    const jobs = Array.from({ length: 6 }, (_, i) =>
      slicer.run(() => {
        events.push(`job${i}`);
        busy(i % 2 === 0 ? 1 : 12);
      }),
    );
    // A macrotask queued after the jobs: it runs as soon as a job has used up the budget.
    setImmediate(() => events.push("turn"));
    await Promise.all(jobs);
    // Jobs 0 and 1 fit one turn (1 + 12 ms crosses the 10 ms budget after job 1), then the loop turns.
    expect(events.slice(0, 3)).toEqual(["job0", "job1", "turn"]);
    expect(events.filter((e) => e.startsWith("job"))).toEqual([
      "job0",
      "job1",
      "job2",
      "job3",
      "job4",
      "job5",
    ]);
  });
});
