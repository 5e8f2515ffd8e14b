// Organization events on a real nats-server: orgwatch_events_total by type and role with the type
// label capped (the first --labels.max-values types are kept, later ones count as `other` and in
// orgwatch_label_overflow_total), completion signals handed to the task model, refused events counted.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Daemon } from "../../src/daemon.js";
import type { CompletionSignal } from "../../src/model/tasks/index.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";

const MAX_VALUES = 3;

describe("organization events", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let daemon: Daemon;
  const encoder = new TextEncoder();

  const publishEvent = (body: unknown) =>
    nc.publish(
      "genbrain.org.events",
      typeof body === "string" ? encoder.encode(body) : encoder.encode(JSON.stringify(body)),
    );
  const events = (m: Scrape, labels: Record<string, string>) =>
    m.series("orgwatch_events_total", labels).reduce((sum, s) => sum + s.value, 0);
  const invalid = (m: Scrape, reason?: string) =>
    m
      .series("orgwatch_invalid_messages_total", { source: "event", ...(reason ? { reason } : {}) })
      .reduce((sum, s) => sum + s.value, 0);
  const overflow = (m: Scrape) =>
    m.value("orgwatch_label_overflow_total", { metric: "orgwatch_events_total" }) ?? 0;

  /** Scrapes until every event published so far was counted, valid or invalid. */
  const scrapeCounted = (total: number) =>
    waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return events(m, {}) + invalid(m) === total ? m : undefined;
      },
      { what: `${total} events counted` },
    );

  beforeAll(async () => {
    org = await startTestOrg({
      topology: { roles: ["ceo", "cto"] },
      settings: { "labels.max-values": MAX_VALUES },
      firstPoll: true,
    });
    ({ nc, daemon } = org);
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await org?.stop();
  });

  it("counts events by type and role, capping types: the rest are `other` and overflow", async () => {
    // Types in order of first appearance: a, b, c are kept (the cap is 3); d and e are not.
    const plan: [type: string, role: string | undefined, times: number][] = [
      ["agent.started", "ceo", 2],
      ["agent.started", "cto", 1],
      ["task.assigned", "cto", 3],
      ["org.note", undefined, 1],
      ["deploy.finished", "cto", 2],
      ["budget.exceeded", undefined, 1],
      ["agent.started", undefined, 1],
    ];
    let total = 0;
    for (const [type, role, times] of plan) {
      for (let i = 0; i < times; i++) publishEvent(role ? { type, role } : { type });
      total += times;
    }
    await nc.flush();
    const m = await scrapeCounted(total);
    expect(m.value("orgwatch_events_total", { type: "agent.started", role: "ceo" })).toBe(2);
    expect(m.value("orgwatch_events_total", { type: "agent.started", role: "cto" })).toBe(1);
    expect(m.value("orgwatch_events_total", { type: "agent.started", role: "" })).toBe(1);
    expect(m.value("orgwatch_events_total", { type: "task.assigned", role: "cto" })).toBe(3);
    expect(m.value("orgwatch_events_total", { type: "org.note", role: "" })).toBe(1);
    expect(m.value("orgwatch_events_total", { type: "other", role: "cto" })).toBe(2);
    expect(m.value("orgwatch_events_total", { type: "other", role: "" })).toBe(1);
    expect(events(m, {})).toBe(11);
    // One per event whose type was refused a label.
    expect(overflow(m)).toBe(3);
    const types = new Set(m.series("orgwatch_events_total").map((s) => s.labels["type"]));
    expect([...types].sort()).toEqual(["agent.started", "org.note", "other", "task.assigned"]);
    expect(m.text).not.toContain("deploy.finished");
    expect(m.text).not.toContain("budget.exceeded");
    expect(invalid(m)).toBe(0);
  });

  it("caps roles named by events that orgwatch does not know", async () => {
    const base = await scrape(daemon.url);
    const baseTotal = events(base, {}) + invalid(base);
    // Known roles (task streams) are free; unknown ones share the cap of 3.
    for (const role of ["r1", "r2", "r3", "r4", "r5", "cto"]) publishEvent({ type: "agent.started", role });
    await nc.flush();
    const m = await scrapeCounted(baseTotal + 6);
    for (const role of ["r1", "r2", "r3"])
      expect(m.value("orgwatch_events_total", { type: "agent.started", role }), role).toBe(1);
    expect(m.value("orgwatch_events_total", { type: "agent.started", role: "other" })).toBe(2);
    expect(m.value("orgwatch_events_total", { type: "agent.started", role: "cto" })).toBe(2);
    expect(overflow(m) - overflow(base)).toBe(2);
    expect(m.text).not.toContain('role="r4"');
  });

  it("hands task.completed / task.failed with a task_id to the task model", async () => {
    const signals: CompletionSignal[] = [];
    const original = daemon.org.tasks.recordCompletionSignal.bind(daemon.org.tasks);
    vi.spyOn(daemon.org.tasks, "recordCompletionSignal").mockImplementation((signal) => {
      signals.push(signal);
      original(signal);
    });
    const base = await scrape(daemon.url);
    const baseTotal = events(base, {}) + invalid(base);
    const tsSeconds = 1_700_000_000;
    const before = Date.now();
    publishEvent({ type: "task.completed", role: "cto", task_id: "task-1847", ts: tsSeconds });
    publishEvent({ type: "task.failed", task_id: "task-1848" });
    publishEvent({ type: "task.completed" }); // no task id: counted, not a signal
    publishEvent({ type: "task.completed", task_id: "" }); // likewise
    publishEvent({ type: "task.started", task_id: "task-1849" }); // not a completion
    await nc.flush();
    await scrapeCounted(baseTotal + 5);
    const after = Date.now();
    expect(signals).toHaveLength(2);
    expect(signals[0]).toEqual({
      taskId: "task-1847",
      outcome: "completed",
      atMs: tsSeconds * 1000,
      role: "cto",
    });
    const failed = signals[1]!;
    expect(failed).toMatchObject({ taskId: "task-1848", outcome: "failed" });
    expect(failed.role).toBeUndefined();
    // No `ts`: the arrival time.
    expect(failed.atMs).toBeGreaterThanOrEqual(before);
    expect(failed.atMs).toBeLessThanOrEqual(after);
    // The task id never becomes a label.
    const m = await scrape(daemon.url);
    expect(m.text).not.toContain("task-18");
  });

  it("counts refused events by reason; none becomes a series", async () => {
    const base = await scrape(daemon.url);
    const baseEvents = events(base, {});
    const bodies: [unknown, string][] = [
      ["{not json", "invalid_json"],
      [[{ type: "x" }], "not_object"],
      ["42", "not_object"],
      [{ role: "cto" }, "missing_field"],
      [{ type: 5 }, "wrong_type"],
      [{ type: "x", task_id: 9 }, "wrong_type"],
      [{ type: "x", role: "no spaces allowed" }, "bad_role"],
      [{ type: "x", ts: "later" }, "bad_timestamp"],
      [{ type: "x", pad: "y".repeat(65 * 1024) }, "oversize"],
    ];
    for (const [body] of bodies) publishEvent(body);
    nc.publish("genbrain.org.events", new Uint8Array([0xff, 0x00, 0xfe]));
    await nc.flush();
    const m = await scrapeCounted(events(base, {}) + invalid(base) + bodies.length + 1);
    const expected = new Map<string, number>();
    for (const [, reason] of bodies) expected.set(reason, (expected.get(reason) ?? 0) + 1);
    expected.set("invalid_json", expected.get("invalid_json")! + 1);
    for (const [reason, n] of expected) expect(invalid(m, reason) - invalid(base, reason), reason).toBe(n);
    expect(events(m, {})).toBe(baseEvents);
    expect(m.text).not.toContain("no spaces allowed");
  });
});
