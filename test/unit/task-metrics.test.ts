// The task families' label caps, checked on the exporter alone: each task whose role or type is
// refused counts once, however often the families are scraped.
import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { MetricsRegistry } from "../../src/exporters/metrics/registry.js";
import { registerTaskMetrics } from "../../src/exporters/metrics/tasks.js";
import { Organization } from "../../src/model/organization.js";
import type { ObservedTask } from "../../src/model/tasks/index.js";
import { pollResult, streamState } from "../helpers/jetstream-fixtures.js";
import { parseScrape } from "../helpers/metrics.js";

function task(role: string, seq: number, type: string): ObservedTask {
  return {
    message: {
      taskId: `${role}-${seq}`,
      type,
      parentTaskId: undefined,
      sla: { ackWithinSeconds: undefined, completeWithinMinutes: undefined },
      onCompletePublishTo: undefined,
    },
    traceparent: undefined,
    subject: `genbrain.agents.${role}.tasks`,
    role,
    stream: `AGENT_${role.toUpperCase()}_TASKS`,
    streamSequence: seq,
    storedMs: Date.now(),
  };
}

describe("task metrics", () => {
  it("counts a refused role or type once per task, not once per scrape", async () => {
    const org = new Organization(configWith({ "labels.max-values": 1 }));
    const metrics = new MetricsRegistry();
    registerTaskMetrics(metrics, org);
    const streams = ["cto", "qa"].map((role) => streamState(`AGENT_${role.toUpperCase()}_TASKS`, { role }));
    org.jetstream.applyPoll(pollResult(Date.now(), streams, []));
    const scrape = async () => parseScrape((await metrics.render(false)).body);
    const overflow = () => org.health.labelOverflow.get("orgwatch_tasks_published_total") ?? 0;

    await scrape();
    const m = await scrape();
    expect(m.series("orgwatch_tasks_overdue", { sla: "ack" }).map((s) => s.labels["role"])).toEqual([
      "cto",
      "other",
    ]);
    expect(overflow()).toBe(0);

    org.tasks.observePublished(task("cto", 1, "review"));
    org.tasks.observePublished(task("cto", 2, "review"));
    org.tasks.observePublished(task("qa", 1, "test"));
    await scrape();
    const after = await scrape();
    expect(after.value("orgwatch_tasks_published_total", { role: "cto", type: "review" })).toBe(2);
    expect(after.value("orgwatch_tasks_published_total", { role: "other", type: "other" })).toBe(1);
    // The qa task: its role and its type, one refusal each.
    expect(overflow()).toBe(2);
  });
});
