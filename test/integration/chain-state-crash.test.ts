// Chain state when orgwatch dies between reading a task and saving it. The KV bucket is left
// exactly as such a crash leaves it (write-ahead: a stream's read position is never saved past a
// task whose record is not saved), then a new orgwatch must still put every chain in one trace
// and send every span that was not sent.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { InMemorySpanExporter, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
import { cursorKey, taskKey } from "../../src/sources/chain-store.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/wait.js";

/** An exporter whose every export fails (the collector is down when orgwatch dies). */
class FailingExporter implements SpanExporter {
  attempts = 0;
  export(_spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.attempts++;
    done({ code: ExportResultCode.FAILED, error: new Error("collector down") });
  }
  async shutdown(): Promise<void> {}
}

describe("chain state across an orgwatch crash", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    for (const role of ["plan", "build", "review", "history", "report"]) {
      await jsm.streams.add({ name: streamOf(role), subjects: [`genbrain.agents.${role}.tasks`] });
      await jsm.consumers.add(streamOf(role), {
        durable_name: `${role}-worker`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
    }
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    await nc?.close();
    await server?.stop();
  });

  const streamOf = (role: string) => `AGENT_${role.toUpperCase()}_TASKS`;

  async function start(bucket: string, spanExporter: SpanExporter): Promise<Daemon> {
    const daemon = await startTestDaemon(server.url, { "chains.kv-bucket": bucket }, { spanExporter });
    daemons.push(daemon);
    await daemon.started;
    await daemon.pollNow();
    return daemon;
  }

  async function stop(daemon: Daemon): Promise<void> {
    daemons.splice(daemons.indexOf(daemon), 1);
    await daemon.stop();
  }

  async function publish(role: string, task: Record<string, unknown>): Promise<number> {
    return (await js.publish(`genbrain.agents.${role}.tasks`, JSON.stringify(task))).seq;
  }

  /** The agent `role` takes its next task (it must be `taskId`) and acknowledges it. */
  async function complete(role: string, taskId: string): Promise<void> {
    const consumer = await js.consumers.get(streamOf(role), `${role}-worker`);
    const m = await consumer.next({ expires: 5000 });
    if (!m) throw new Error(`${role}: no task`);
    expect(m.json<{ task_id: string }>().task_id).toBe(taskId);
    await m.ackAck();
  }

  function spanOf(spans: InMemorySpanExporter, taskId: string): ReadableSpan | undefined {
    return spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === taskId);
  }

  async function waitForSpans(daemon: Daemon, spans: InMemorySpanExporter, ...ids: string[]) {
    return waitFor(
      async () => {
        await daemon.pollNow();
        const found = ids.map((id) => spanOf(spans, id));
        return found.every((s) => s !== undefined) ? (found as ReadableSpan[]) : undefined;
      },
      { what: `spans of ${ids.join(", ")}`, intervalMs: 100 },
    );
  }

  async function savedCursor(kv: KV, stream: string): Promise<number | undefined> {
    const entry = await kv.get(cursorKey(stream));
    return entry && entry.length > 0 ? entry.json<{ seq: number }>().seq : undefined;
  }

  it("a parent read but not saved before the crash: its child, saved, still joins the chain's trace", async () => {
    const bucket = "orgwatch_crash_parent";
    const first = await start(bucket, new InMemorySpanExporter());
    // Work before the chain on the parent's stream: the position saved for it is past that.
    await publish("build", { task_id: "c-0" });
    await complete("build", "c-0");
    await publish("plan", { task_id: "c-1", on_complete: { publish_to: "genbrain.agents.build.tasks" } });
    await complete("plan", "c-1");
    const parentSeq = await publish("build", {
      task_id: "c-2",
      parent_task_id: "c-1",
      on_complete: { publish_to: "genbrain.agents.review.tasks" },
    });
    await publish("review", { task_id: "c-3", parent_task_id: "c-2" });
    await waitFor(
      async () => {
        await first.pollNow();
        const t = first.org.tasks;
        return t.get("c-1")?.exported === true && t.get("c-3") !== undefined;
      },
      { what: "the first orgwatch reading the chain" },
    );
    await stop(first);

    // What a crash right after reading c-2 (and c-3) leaves: c-2's record and the build stream's
    // position past it were not written; c-3's were (the review stream's reader saved first).
    const kv = await new Kvm(nc).open(bucket);
    await kv.purge(taskKey("c-2"));
    await kv.put(
      cursorKey(streamOf("build")),
      JSON.stringify({ stream: streamOf("build"), seq: parentSeq - 1 }),
    );
    expect((await kv.get(taskKey("c-3")))?.json<{ exported: boolean }>().exported).toBe(false);

    // While no orgwatch runs, the chain finishes.
    await complete("build", "c-2");
    await complete("review", "c-3");

    // The next orgwatch learns c-3 completed from its first poll, before it has read the build
    // stream again: c-3 must wait for its parent rather than start a trace of its own.
    const spans = new InMemorySpanExporter();
    const second = await start(bucket, spans);
    const [p, c] = await waitForSpans(second, spans, "c-2", "c-3");
    const trace = chainTraceId("c-1");
    expect(p!.spanContext().traceId).toBe(trace);
    expect(p!.parentSpanContext?.spanId).toBe(taskSpanId("c-1"));
    expect(c!.spanContext().traceId).toBe(trace);
    expect(c!.parentSpanContext?.spanId).toBe(taskSpanId("c-2"));
    await stop(second);
  });

  it("saves a reader's first position before it reads, so a crash never moves the next start past it", async () => {
    const bucket = "orgwatch_crash_start";
    // History the agents acknowledged before orgwatch ever ran: orgwatch starts after it.
    await publish("history", { task_id: "h-1" });
    await publish("history", { task_id: "h-2" });
    await complete("history", "h-1");
    await complete("history", "h-2");
    const daemon = await start(bucket, new InMemorySpanExporter());
    const kv = await new Kvm(nc).open(bucket);
    // Saved before anything was read (nothing is left to read): a crash now, then the agents
    // acknowledging h-3 while no orgwatch runs, and the next one still reads h-3.
    expect(await waitFor(() => savedCursor(kv, streamOf("history")), { what: "the saved position" })).toBe(2);
    expect(daemon.org.tasks.size).toBe(0);
    await stop(daemon);
  });

  it("sends again, with the same ids, a span exported but not sent when orgwatch died", async () => {
    const bucket = "orgwatch_crash_unsent";
    const failing = new FailingExporter();
    const first = await start(bucket, failing);
    await publish("report", { task_id: "u-1", on_complete: { publish_to: "genbrain.agents.report.tasks" } });
    await complete("report", "u-1");
    await publish("report", { task_id: "u-2", parent_task_id: "u-1" });
    await complete("report", "u-2");
    await waitFor(
      async () => {
        await first.pollNow();
        return failing.attempts >= 2 && first.org.tasks.get("u-2")?.exported === true;
      },
      { what: "both spans exported (and not sent)" },
    );
    expect(first.org.tasks.get("u-2")?.spanSent).toBe(false);
    await stop(first);

    const spans = new InMemorySpanExporter();
    const second = await start(bucket, spans);
    const [a, b] = await waitForSpans(second, spans, "u-1", "u-2");
    expect(a!.spanContext()).toMatchObject({ traceId: chainTraceId("u-1"), spanId: taskSpanId("u-1") });
    expect(b!.spanContext()).toMatchObject({ traceId: chainTraceId("u-1"), spanId: taskSpanId("u-2") });
    expect(b!.parentSpanContext?.spanId).toBe(taskSpanId("u-1"));
    // Sent now: a third orgwatch sends nothing again.
    await waitFor(() => second.org.tasks.get("u-2")?.spanSent === true, { what: "u-2 sent" });
    await stop(second);
    const again = new InMemorySpanExporter();
    const third = await start(bucket, again);
    expect(third.org.tasks.get("u-2")?.exported).toBe(true);
    expect(again.getFinishedSpans()).toEqual([]);
    await stop(third);
  });
});
