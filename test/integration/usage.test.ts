// Tokens and cost (DESIGN.md §8) against a real nats-server: the usage agents report on their
// completion events summed exactly by role, direction and outcome, work spent twice, the span's
// gen_ai.usage.* attributes, and unusable usage counted invalid and never summed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { addTaskStream } from "../helpers/topology.js";
import { chainSpanId, chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();

describe("tokens and cost", () => {
  let org: TestOrg;
  const spans = new InMemorySpanExporter();
  beforeAll(async () => {
    org = await startTestOrg({
      firstPoll: true,
      prepare: async (jsm) => void (await addTaskStream(jsm, "cto")),
      daemon: { spanExporter: spans },
    });
  });
  afterAll(async () => {
    await org?.stop();
  });

  it("sums reported usage exactly, counts work spent twice, and refuses what cannot be a bill", async () => {
    const event = (body: unknown) => org.nc.publish("genbrain.org.events", enc.encode(JSON.stringify(body)));
    await org.js.publish(
      "genbrain.agents.cto.tasks",
      enc.encode(JSON.stringify({ task_id: "t-usage-1", type: "feature_implementation" })),
    );
    await waitFor(() => org.daemon.org.tasks.get("t-usage-1") !== undefined, { what: "task read" });
    event({
      type: "task.completed",
      role: "cto",
      task_id: "t-usage-1",
      usage: { input_tokens: 1200, output_tokens: 300, cost_usd: 0.045, model: "claude-x" },
    });
    // The OTel GenAI names, at the top level.
    event({
      type: "task.completed",
      role: "cto",
      "gen_ai.usage.input_tokens": 800,
      "gen_ai.usage.output_tokens": 200,
    });
    // A failure: its tokens were spent for nothing.
    event({
      type: "task.failed",
      role: "cto",
      usage: { input_tokens: 500, output_tokens: 50, cost_usd: 0.01 },
    });
    // Unusable: negative, not a number, a string, absurd. Counted invalid, never summed.
    event({ type: "task.completed", role: "cto", usage: { input_tokens: -5 } });
    event({ type: "task.completed", role: "cto", usage: { input_tokens: "many" } });
    event({ type: "task.completed", role: "cto", usage: "lots" });
    event({ type: "task.completed", role: "cto", usage: { output_tokens: 1e12 } });
    await org.nc.flush();
    const m = await waitFor(
      async () => {
        const s = await scrape(org.daemon.url);
        return (s.value("orgwatch_invalid_messages_total", { source: "event", reason: "bad_usage" }) ?? 0) ===
          4
          ? s
          : undefined;
      },
      { what: "the four unusable usages counted" },
    );
    const tokens = (direction: string, outcome: string) =>
      m.value("orgwatch_tokens_total", { role: "cto", direction, outcome });
    expect(tokens("input", "completed")).toBe(2000);
    expect(tokens("output", "completed")).toBe(500);
    expect(tokens("input", "failed")).toBe(500);
    expect(tokens("output", "failed")).toBe(50);
    expect(m.value("orgwatch_cost_usd_total", { role: "cto", outcome: "completed" })).toBeCloseTo(0.045, 10);
    expect(m.value("orgwatch_cost_usd_total", { role: "cto", outcome: "failed" })).toBeCloseTo(0.01, 10);
    expect(m.value("orgwatch_redelivered_tokens_total", { role: "cto" })).toBe(550);
    // The task's span carries its usage.
    await org.daemon.pollNow();
    const span = await waitFor(
      () => spans.getFinishedSpans().find((s) => s.attributes["messaging.message.id"] === "t-usage-1"),
      { what: "the task's span" },
    );
    expect(span.attributes).toMatchObject({
      "gen_ai.usage.input_tokens": 1200,
      "gen_ai.usage.output_tokens": 300,
      "gen_ai.request.model": "claude-x",
      "orgwatch.cost_usd": 0.045,
    });
  });

  it("totals a chain's reported cost when the chain ends", async () => {
    const publish = (body: unknown) =>
      org.js.publish("genbrain.agents.cto.tasks", enc.encode(JSON.stringify(body)));
    await publish({ task_id: "c-1", type: "impl", on_complete: { publish_to: "genbrain.agents.cto.tasks" } });
    await publish({ task_id: "c-2", type: "review", parent_task_id: "c-1" });
    await waitFor(() => org.daemon.org.tasks.get("c-2") !== undefined, { what: "chain read" });
    for (const [id, cost] of [
      ["c-1", 0.25],
      ["c-2", 0.5],
    ] as const)
      org.nc.publish(
        "genbrain.org.events",
        enc.encode(
          JSON.stringify({
            type: "task.completed",
            role: "cto",
            task_id: id,
            usage: { input_tokens: 10, output_tokens: 5, cost_usd: cost },
          }),
        ),
      );
    await org.nc.flush();
    const h = await waitFor(
      async () => {
        await org.daemon.pollNow();
        const s = await scrape(org.daemon.url);
        const hist = s.histogram("orgwatch_chain_cost_usd");
        return hist && hist.count >= 2 ? hist : undefined;
      },
      { what: "the chain's cost observed" },
    );
    // Two chains: the first test's one-task chain ($0.045) and this one ($0.25 + $0.50).
    expect(h.count).toBe(2);
    expect(h.sum).toBeCloseTo(0.795, 10);
    // The chain's span, a child of its first task's span, carries the totals.
    const chainSpan = await waitFor(
      () =>
        spans
          .getFinishedSpans()
          .find((s) => s.name === "chain" && s.attributes["orgwatch.chain.first_task_id"] === "c-1"),
      { what: "the chain's span" },
    );
    expect(chainSpan.spanContext().spanId).toBe(chainSpanId("c-1"));
    expect(chainSpan.spanContext().traceId).toBe(chainTraceId("c-1"));
    expect(chainSpan.parentSpanContext?.spanId).toBe(taskSpanId("c-1"));
    expect(chainSpan.attributes).toMatchObject({
      "orgwatch.chain.last_task_id": "c-2",
      "orgwatch.chain.steps": 2,
      "gen_ai.usage.input_tokens": 20,
      "gen_ai.usage.output_tokens": 10,
    });
    expect(chainSpan.attributes["orgwatch.cost_usd"]).toBeCloseTo(0.75, 10);
  });
});
