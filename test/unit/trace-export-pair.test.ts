// The span exporter of a pair's replica (exporters/trace-sdk.ts, the real OpenTelemetry SDK with an
// in-memory exporter): it sends only while this replica holds the lease, and never a span whose
// task this replica ended, or whose chain it closed, after the last holder had sent it
// (TasksModel.followHolder).
import { afterEach, describe, expect, it } from "vitest";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { configWith } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { Organization } from "../../src/model/organization.js";
import { startTraceExporter, type TraceExporter } from "../../src/exporters/traces.js";
import { taskSpanId } from "../../src/logic/task-trace.js";
import type { TaskRecord } from "../../src/model/tasks/index.js";
import { observeJoinedTask } from "../helpers/task-observations.js";

describe("span export in a pair", () => {
  let traces: TraceExporter | undefined;
  afterEach(async () => traces?.shutdown());

  it("sends the task and chain spans of what this replica ends while it holds the lease, except what the holder sent", async () => {
    const config = configWith({ "pair.replica": "b" });
    const org = new Organization(config);
    const exporter = new InMemorySpanExporter();
    traces = await startTraceExporter(org, config, silentLogger(), exporter);
    const now = Date.now();
    const ids = Object.fromEntries(["follower", "sent-by-holder", "own"].map((id) => [id, taskSpanId(id)]));
    for (const [seq, taskId] of ["follower", "sent-by-holder", "own"].entries())
      observeJoinedTask(org.tasks, taskId, seq + 1, now - 1000);
    const end = (taskId: string) => {
      org.tasks.recordCompletionSignal({ taskId, outcome: "completed", atMs: now });
      org.tasks.tick();
    };
    // Ended while following: the holder sends it, not this replica.
    end("follower");
    // The holder's record: sent, and its chain (this one task) closed, before this replica ended it.
    const record: TaskRecord = {
      ...org.tasks.get("sent-by-holder")!,
      exported: true,
      spanSent: true,
      chainChecked: true,
      chainClosed: true,
    };
    org.tasks.followHolder(record);

    org.lease.acquire(Infinity);
    end("sent-by-holder");
    end("own");
    await traces.flush();
    // A task's span has its task's span id; a chain's span names its first task.
    const sent = exporter
      .getFinishedSpans()
      .map((s) =>
        s.name === "chain"
          ? `chain of ${String(s.attributes["orgwatch.chain.first_task_id"])}`
          : `task ${Object.entries(ids).find(([, id]) => id === s.spanContext().spanId)?.[0]}`,
      )
      .sort();
    expect(sent).toEqual(["chain of own", "task own"]);
    expect(org.tasks.get("sent-by-holder")?.spanSent).toBe(true);
  });
});
