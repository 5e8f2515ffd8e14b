// Chains as traces, on a real nats-server with an in-memory span exporter: agents fetch and ack
// tasks through their durable consumers exactly as the reference organization does, and orgwatch
// must reconstruct each chain from what crossed JetStream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { SpanStatusCode } from "@opentelemetry/api";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const NS_PER_MS = 1_000_000;
const ROLES = ["ceo", "cto", "security"];
const DAEMON_SETTINGS = { "chains.infer-window": 60_000 };

describe("task traces across on_complete chains", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let spans: InMemorySpanExporter;
  let daemon: Daemon;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await createReferenceTopology(jsm, { roles: ROLES });
    // Agents with a short ack wait: redeliveries and dead letters within a test's time.
    for (const [role, maxDeliver] of [
      ["flaky", 3],
      ["poison", 2],
      ["ops", 3],
      ["sampled", 3],
    ] as const) {
      await jsm.streams.add({
        name: `AGENT_${role.toUpperCase()}_TASKS`,
        subjects: [`genbrain.agents.${role}.tasks`],
      });
      await jsm.consumers.add(`AGENT_${role.toUpperCase()}_TASKS`, {
        durable_name: `${role}-worker`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_deliver: maxDeliver,
        ack_wait: 1000 * NS_PER_MS,
        ...(role === "sampled" ? { sample_freq: "100%" } : {}),
      });
    }
    spans = new InMemorySpanExporter();
    daemon = await startTestDaemon(server.url, DAEMON_SETTINGS, { spanExporter: spans });
    await daemon.started;
    await daemon.pollNow();
  });
  afterAll(async () => {
    await daemon?.stop();
    await nc?.close();
    await server?.stop();
  });

  async function publish(role: string, task: Record<string, unknown>, traceparent?: string): Promise<void> {
    const h = natsHeaders();
    if (traceparent) h.set("traceparent", traceparent);
    await js.publish(`genbrain.agents.${role}.tasks`, JSON.stringify(task), { headers: h });
  }

  /** The agent `role` takes its next task (it must be `taskId`). */
  async function take(role: string, taskId: string): Promise<JsMsg> {
    const consumer = await js.consumers.get(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
    const m = await consumer.next({ expires: 5000 });
    if (!m) throw new Error(`${role}: no task`);
    expect((m.json() as { task_id: string }).task_id).toBe(taskId);
    return m;
  }

  async function done(m: JsMsg): Promise<void> {
    await m.ackAck();
  }

  function spanOf(taskId: string): ReadableSpan | undefined {
    return spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === taskId);
  }

  async function waitForSpans(...taskIds: string[]): Promise<ReadableSpan[]> {
    return waitFor(
      async () => {
        await daemon.pollNow();
        const found = taskIds.map(spanOf);
        return found.every((s) => s !== undefined) ? (found as ReadableSpan[]) : undefined;
      },
      { what: `spans of ${taskIds.join(", ")}`, intervalMs: 100 },
    );
  }

  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
  const traceOf = (s: ReadableSpan) => s.spanContext().traceId;
  const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;

  async function openMetrics(): Promise<string> {
    const res = await fetch(daemon.url + "/metrics", { headers: { accept: "application/openmetrics-text" } });
    return res.text();
  }

  it("a three-step chain linked only by parent_task_id is one trace shaped like a staircase", async () => {
    const before = await scrape(daemon.url);
    await publish("ceo", {
      task_id: "stair-1",
      type: "planning",
      on_complete: { publish_to: "genbrain.agents.cto.tasks" },
    });
    const a = await take("ceo", "stair-1");
    await publish("cto", {
      task_id: "stair-2",
      type: "feature_implementation",
      parent_task_id: "stair-1",
      sla: { ack_within_seconds: 600, complete_within_minutes: 60 },
      on_complete: { publish_to: "genbrain.agents.security.tasks", payload_template: "security_review" },
    });
    await done(a);
    await daemon.pollNow();
    const b = await take("cto", "stair-2");
    await publish("security", { task_id: "stair-3", type: "security_review", parent_task_id: "stair-2" });
    await done(b);
    await daemon.pollNow();
    const c = await take("security", "stair-3");
    await done(c);

    const [s1, s2, s3] = await waitForSpans("stair-1", "stair-2", "stair-3");
    expect(traceOf(s1!)).toBe(chainTraceId("stair-1"));
    expect(traceOf(s2!)).toBe(traceOf(s1!));
    expect(traceOf(s3!)).toBe(traceOf(s1!));
    expect(parentOf(s1!)).toBeUndefined();
    expect(parentOf(s2!)).toBe(s1!.spanContext().spanId);
    expect(parentOf(s3!)).toBe(s2!.spanContext().spanId);
    expect(s1!.spanContext().spanId).toBe(taskSpanId("stair-1"));
    // A staircase: each step starts after the one before it started, and no earlier than it ended
    // minus the publish-then-ack overlap of on_complete.
    expect(ms(s2!.startTime)).toBeGreaterThanOrEqual(ms(s1!.startTime));
    expect(ms(s3!.startTime)).toBeGreaterThanOrEqual(ms(s2!.startTime));
    expect(ms(s3!.endTime)).toBeGreaterThanOrEqual(ms(s3!.startTime));
    expect(s1!.attributes["orgwatch.link"]).toBeUndefined();
    expect(s2!.attributes["orgwatch.link"]).toBe("parent_task_id");
    expect(s2!.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": "genbrain.agents.cto.tasks",
      "messaging.message.id": "stair-2",
      "messaging.consumer.group.name": "cto-worker",
      "messaging.nats.stream": "AGENT_CTO_TASKS",
      "messaging.nats.delivery_count": 1,
      "gen_ai.agent.name": "cto",
      "orgwatch.task.type": "feature_implementation",
      "orgwatch.sla.ack_within_seconds": 600,
      "orgwatch.sla.complete_within_minutes": 60,
      "orgwatch.task.outcome": "completed",
    });
    expect(typeof s2!.attributes["messaging.nats.sequence"]).toBe("number");
    expect(s2!.events.map((e) => e.name)).toEqual(["delivery"]);
    expect(s2!.status.code).toBe(SpanStatusCode.UNSET);

    // Metrics: 3 published, 3 completed, one chain of 3 steps with the trace id as exemplar.
    const after = await waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return (m.histogram("orgwatch_chain_steps")?.count ?? 0) >
          (before.histogram("orgwatch_chain_steps")?.count ?? 0)
          ? m
          : undefined;
      },
      { what: "the chain's metrics" },
    );
    const delta = (m: Scrape, name: string, labels: Record<string, string>) =>
      (m.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
    expect(
      delta(after, "orgwatch_tasks_published_total", { role: "cto", type: "feature_implementation" }),
    ).toBe(1);
    expect(
      delta(after, "orgwatch_tasks_completed_total", {
        role: "security",
        type: "security_review",
        outcome: "completed",
      }),
    ).toBe(1);
    const steps = after.histogram("orgwatch_chain_steps")!;
    const stepsBefore = before.histogram("orgwatch_chain_steps");
    expect(steps.count - (stepsBefore?.count ?? 0)).toBe(1);
    expect(steps.sum - (stepsBefore?.sum ?? 0)).toBe(3);
    expect(
      after.histogram("orgwatch_task_queue_seconds", { role: "security" })?.count,
    ).toBeGreaterThanOrEqual(1);
    const om = await openMetrics();
    expect(om).toContain(`orgwatch_chain_steps_bucket{le="3"}`);
    expect(om).toMatch(
      new RegExp(`orgwatch_chain_steps_bucket\\{le="3"\\} \\d+ # \\{trace_id="${traceOf(s1!)}"\\} 3`),
    );
    expect(om).toMatch(
      new RegExp(
        `orgwatch_task_duration_seconds_bucket\\{le="[^"]+",role="security"\\} \\d+ # \\{trace_id="${traceOf(s1!)}"\\}`,
      ),
    );
  });

  it("a chain linked by traceparent joins the publisher's trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const publisherSpan = "00f067aa0ba902b7";
    await publish(
      "cto",
      { task_id: "tp-1", type: "feature_implementation" },
      `00-${traceId}-${publisherSpan}-01`,
    );
    const m1 = await take("cto", "tp-1");
    await publish("security", { task_id: "tp-2", type: "security_review", parent_task_id: "tp-1" });
    await done(m1);
    await daemon.pollNow();
    await done(await take("security", "tp-2"));
    const [t1, t2] = await waitForSpans("tp-1", "tp-2");
    expect(traceOf(t1!)).toBe(traceId);
    expect(parentOf(t1!)).toBe(publisherSpan);
    expect(t1!.parentSpanContext?.isRemote).toBe(true);
    expect(t1!.attributes["orgwatch.link"]).toBe("traceparent");
    expect(traceOf(t2!)).toBe(traceId);
    expect(parentOf(t2!)).toBe(t1!.spanContext().spanId);
  });

  it("infers a link from on_complete.publish_to when exactly one parent fits", async () => {
    await publish("ceo", {
      task_id: "inf-1",
      type: "planning",
      on_complete: { publish_to: "genbrain.agents.cto.tasks" },
    });
    const p = await take("ceo", "inf-1");
    // The follow-up carries no link at all, as on_complete publishes it today.
    await publish("cto", { task_id: "inf-2", type: "feature_implementation" });
    await done(p);
    await daemon.pollNow();
    await done(await take("cto", "inf-2"));
    const [i1, i2] = await waitForSpans("inf-1", "inf-2");
    expect(traceOf(i2!)).toBe(traceOf(i1!));
    expect(parentOf(i2!)).toBe(i1!.spanContext().spanId);
    expect(i2!.attributes["orgwatch.link"]).toBe("inferred");
    expect(i2!.attributes["orgwatch.task.parent_id"]).toBe("inf-1");
  });

  it("never crosses two chains running at once", async () => {
    // Explicit links, interleaved: A1, A2, then B2 before B1.
    await publish("ceo", { task_id: "x-a1", on_complete: { publish_to: "genbrain.agents.cto.tasks" } });
    await publish("ceo", { task_id: "y-a2", on_complete: { publish_to: "genbrain.agents.cto.tasks" } });
    const a1 = await take("ceo", "x-a1");
    const a2 = await take("ceo", "y-a2");
    await publish("cto", { task_id: "y-b2", parent_task_id: "y-a2" });
    await publish("cto", { task_id: "x-b1", parent_task_id: "x-a1" });
    await done(a2);
    await done(a1);
    await daemon.pollNow();
    const b2 = await take("cto", "y-b2");
    const b1 = await take("cto", "x-b1");
    await done(b1);
    await done(b2);
    const [sa1, sa2, sb1, sb2] = await waitForSpans("x-a1", "y-a2", "x-b1", "y-b2");
    expect(traceOf(sb1!)).toBe(traceOf(sa1!));
    expect(traceOf(sb2!)).toBe(traceOf(sa2!));
    expect(traceOf(sa1!)).not.toBe(traceOf(sa2!));
    expect(parentOf(sb1!)).toBe(sa1!.spanContext().spanId);
    expect(parentOf(sb2!)).toBe(sa2!.spanContext().spanId);

    // Unlinked follow-ups of two parents that both publish to the same subject and complete
    // together: either could be either's parent, so neither is linked (no guessing).
    await publish("ceo", { task_id: "x-p1", on_complete: { publish_to: "genbrain.agents.security.tasks" } });
    await publish("ceo", { task_id: "y-p2", on_complete: { publish_to: "genbrain.agents.security.tasks" } });
    const p1 = await take("ceo", "x-p1");
    const p2 = await take("ceo", "y-p2");
    await publish("security", { task_id: "x-q1" });
    await publish("security", { task_id: "y-q2" });
    await done(p1);
    await done(p2);
    await daemon.pollNow();
    await done(await take("security", "x-q1"));
    await done(await take("security", "y-q2"));
    const [sp1, sp2, sq1, sq2] = await waitForSpans("x-p1", "y-p2", "x-q1", "y-q2");
    for (const q of [sq1!, sq2!]) {
      expect(parentOf(q)).toBeUndefined();
      expect(q.attributes["orgwatch.link"]).toBeUndefined();
      expect([traceOf(sp1!), traceOf(sp2!)]).not.toContain(traceOf(q));
    }
    // Every span of a trace belongs to one chain: trace ids of chain x never hold a y task.
    const byTrace = new Map<string, Set<string>>();
    for (const s of spans.getFinishedSpans()) {
      const id = String(s.attributes["messaging.message.id"]);
      if (!/^[xy]-/.test(id)) continue;
      const set = byTrace.get(traceOf(s)) ?? new Set<string>();
      set.add(id[0]!);
      byTrace.set(traceOf(s), set);
    }
    for (const letters of byTrace.values()) expect(letters.size).toBe(1);
  });

  it("records deliveries and redeliveries of a redelivered task as span events", async () => {
    await publish("flaky", { task_id: "redo-1", type: "flaky_work" });
    await take("flaky", "redo-1");
    await daemon.pollNow();
    // Not acked: after the 1 s ack wait it comes again (delivery 2); the agent naks it (delivery 3)
    // and finally acks.
    const second = await take("flaky", "redo-1");
    expect(second.info.deliveryCount).toBe(2);
    await daemon.pollNow();
    second.nak();
    const third = await take("flaky", "redo-1");
    expect(third.info.deliveryCount).toBe(3);
    await daemon.pollNow();
    await done(third);
    const [s] = await waitForSpans("redo-1");
    const deliveries = s!.events.filter((e) => e.name === "delivery" || e.name === "redelivery");
    expect(deliveries.map((e) => [e.name, e.attributes?.["messaging.nats.delivery_count"]])).toEqual([
      ["delivery", 1],
      ["redelivery", 2],
      ["redelivery", 3],
    ]);
    expect(s!.attributes["messaging.nats.delivery_count"]).toBe(3);
    expect(s!.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("ends a dead-lettered task in ERROR", async () => {
    await publish("poison", { task_id: "dead-1", type: "poison" });
    await take("poison", "dead-1");
    await daemon.pollNow();
    const again = await take("poison", "dead-1");
    expect(again.info.deliveryCount).toBe(2);
    await daemon.pollNow();
    // nats-server 2.9 sends the max-deliveries advisory on the consumer's next pull.
    const consumer = await js.consumers.get("AGENT_POISON_TASKS", "poison-worker");
    await waitFor(
      async () => {
        await consumer.next({ expires: 1000 });
        await daemon.pollNow();
        return spanOf("dead-1");
      },
      { what: "the dead-lettered task's span", timeoutMs: 20_000 },
    );
    const s = spanOf("dead-1")!;
    expect(s.status.code).toBe(SpanStatusCode.ERROR);
    expect(s.attributes["orgwatch.task.outcome"]).toBe("dead_letter");
    expect(s.events.map((e) => e.name)).toContain("dead_letter");
    const m = await scrape(daemon.url);
    expect(
      m.value("orgwatch_tasks_completed_total", { role: "poison", type: "poison", outcome: "dead_letter" }),
    ).toBe(1);
  });

  it("ends a task reported by a task.failed event in ERROR, and a task.completed event ends one too", async () => {
    await publish("ops", { task_id: "fail-1", type: "report" });
    await publish("ops", { task_id: "ok-1", type: "report" });
    const failing = await take("ops", "fail-1");
    nc.publish(
      "genbrain.org.events",
      JSON.stringify({ type: "task.failed", role: "ops", task_id: "fail-1" }),
    );
    await done(failing);
    await take("ops", "ok-1"); // not acked: only the event says it is done
    nc.publish(
      "genbrain.org.events",
      JSON.stringify({ type: "task.completed", role: "ops", task_id: "ok-1" }),
    );
    const [f, ok] = await waitForSpans("fail-1", "ok-1");
    expect(f!.status.code).toBe(SpanStatusCode.ERROR);
    expect(f!.attributes["orgwatch.task.outcome"]).toBe("failed");
    expect(ok!.status.code).toBe(SpanStatusCode.UNSET);
    expect(ok!.attributes["orgwatch.task.outcome"]).toBe("completed");
    expect(ok!.events.map((e) => e.name)).toContain("completed");
    // The agent acks it after all (the ack wait is 1 s: it may come again first).
    await waitFor(
      async () => {
        const consumer = await js.consumers.get("AGENT_OPS_TASKS", "ops-worker");
        const m = await consumer.next({ expires: 2000 });
        if (m) await m.ackAck();
        await daemon.pollNow();
        const c = daemon.org.jetstream.current?.consumers.get("AGENT_OPS_TASKS/ops-worker");
        return c !== undefined && c.ackPending === 0 && c.pending === 0;
      },
      { what: "ops drained" },
    );
  });

  it("completes a task from its sampled ack, without waiting for a poll", async () => {
    await daemon.pollNow(); // the stream is known as a task stream
    await publish("sampled", { task_id: "smp-1", type: "quick" });
    await waitFor(() => daemon.org.tasks.get("smp-1"), { what: "the task observed" });
    const m = await take("sampled", "smp-1");
    await done(m);
    const s = await waitFor(() => spanOf("smp-1"), { what: "the span, from the sampled ack alone" });
    expect(s.attributes["orgwatch.task.outcome"]).toBe("completed");
    expect(s.attributes["messaging.nats.delivery_count"]).toBe(1);
    expect(s.attributes["messaging.consumer.group.name"]).toBe("sampled-worker");
  });

  it("counts an SLA breach and shows the task overdue before it completes", async () => {
    // ack within 1 s, complete within 0.03 min (1.8 s).
    await publish("ops", {
      task_id: "late-1",
      type: "report",
      sla: { ack_within_seconds: 1, complete_within_minutes: 0.03 },
    });
    const overdue = await waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return m.value("orgwatch_tasks_overdue", { role: "ops", sla: "complete" }) === 1 ? m : undefined;
      },
      { what: "the task overdue", intervalMs: 200 },
    );
    expect(overdue.value("orgwatch_tasks_overdue", { role: "ops", sla: "ack" })).toBe(1);
    await waitFor(
      async () =>
        (await scrape(daemon.url)).value("orgwatch_task_sla_breaches_total", {
          role: "ops",
          sla: "complete",
        }) === 1,
      { what: "the complete breach counted", intervalMs: 200 },
    );
    expect(spanOf("late-1")).toBeUndefined();
    await done(await take("ops", "late-1"));
    await waitForSpans("late-1");
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_tasks_overdue", { role: "ops", sla: "ack" })).toBe(0);
    expect(m.value("orgwatch_tasks_overdue", { role: "ops", sla: "complete" })).toBe(0);
    expect(m.value("orgwatch_task_sla_breaches_total", { role: "ops", sla: "ack" })).toBe(1);
    expect(m.value("orgwatch_task_sla_breaches_total", { role: "ops", sla: "complete" })).toBe(1);
    expect(m.value("orgwatch_task_sla_breaches_total", { role: "cto", sla: "ack" })).toBe(0);
    expect(spanOf("late-1")!.attributes["orgwatch.sla.breached"]).toEqual(["ack", "complete"]);
  });

  it("counts invalid task messages and carries on", async () => {
    const before =
      (await scrape(daemon.url)).value("orgwatch_invalid_messages_total", {
        source: "task",
        reason: "invalid_json",
      }) ?? 0;
    await js.publish("genbrain.agents.ops.tasks", "{not json");
    await publish("ops", { task_id: "after-bad" });
    await waitFor(() => daemon.org.tasks.get("after-bad"), { what: "the next task observed" });
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_invalid_messages_total", { source: "task", reason: "invalid_json" })).toBe(
      before + 1,
    );
    // Drain: the agent takes both (the bad one is acked away like any agent would).
    const consumer = await js.consumers.get("AGENT_OPS_TASKS", "ops-worker");
    (await consumer.next({ expires: 2000 }))?.term();
    await done(await take("ops", "after-bad"));
  });

  it("keeps a child the child of its parent across an orgwatch restart", async () => {
    // Grandparent → parent before the restart; the child after it. The child's trace id is only
    // right if the chain state survived (it is the grandparent's, not derivable from the parent).
    await publish("ceo", { task_id: "rs-1", on_complete: { publish_to: "genbrain.agents.cto.tasks" } });
    const g = await take("ceo", "rs-1");
    await publish("cto", {
      task_id: "rs-2",
      parent_task_id: "rs-1",
      on_complete: { publish_to: "genbrain.agents.security.tasks" },
    });
    await done(g);
    await daemon.pollNow();
    const p = await take("cto", "rs-2");
    // on_complete of rs-2 publishes an unlinked follow-up: inferred after the restart from the
    // persisted completion of rs-2.
    await publish("security", { task_id: "rs-3" });
    await done(p);
    const [g1, p1] = await waitForSpans("rs-1", "rs-2");
    expect(traceOf(p1!)).toBe(traceOf(g1!));

    await daemon.stop();
    spans = new InMemorySpanExporter();
    daemon = await startTestDaemon(server.url, DAEMON_SETTINGS, { spanExporter: spans });
    await daemon.started;
    await done(await take("security", "rs-3"));
    const [c] = await waitForSpans("rs-3");
    expect(traceOf(c!)).toBe(traceOf(g1!));
    expect(parentOf(c!)).toBe(p1!.spanContext().spanId);
    expect(c!.attributes["orgwatch.link"]).toBe("inferred");
    // Nothing exported before the restart is exported again.
    // (the other span is the chain's, ending with rs-3)
    expect(
      spans
        .getFinishedSpans()
        .filter((s) => s.name !== "chain")
        .map((s) => s.attributes["messaging.message.id"]),
    ).toEqual(["rs-3"]);
    // The chain ended with its third step (the exemplar of bucket 3 is this chain's trace).
    await waitFor(
      async () => {
        const om = await openMetrics();
        return om.includes(`# {trace_id="${traceOf(g1!)}"} 3`) ? om : undefined;
      },
      { what: "the chain's steps with its exemplar" },
    );
  });
});
