// NATS killed (SIGKILL) under a running orgwatch and started again on the same port and storage:
// orgwatch keeps answering /metrics and says it is disconnected, reconnects (one reconnect counted),
// its subscriptions and advisory consumer resume, counters carry on without double counting, and the
// next poll matches what JetStream itself reports.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { OWN_CONSUMER_PREFIX } from "../../src/sources/source.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import {
  advisoriesDrained,
  createPoisonableConsumer,
  failEverything,
  streamMessages,
} from "../helpers/poison.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();
const DEADLETTER = "ORG_DEADLETTER";

describe("NATS restarted under a running orgwatch", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let daemon: Daemon;
  let captured: CapturedLog;
  let poison: { stream: string; subject: string };

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await createReferenceTopology(jsm, { roles: ["ceo", "cto"] });
    await jsm.streams.add({ name: DEADLETTER, subjects: ["genbrain.org.deadletter"] });
    poison = await createPoisonableConsumer(jsm, { role: "qa", consumer: "qa-worker", ackWaitMs: 300 });
    captured = captureLog("debug");
    daemon = await startTestDaemon(
      server.url,
      { "poll-interval": 1000, "advisories.ack-wait": 2000 },
      { log: captured.log },
    );
    await daemon.started;
  });
  afterAll(async () => {
    await daemon?.stop();
    await nc?.close();
    await server?.stop();
  });

  const events = (n: number) => {
    for (let i = 0; i < n; i++)
      nc.publish("genbrain.org.events", enc.encode(JSON.stringify({ type: "task.completed", role: "cto" })));
  };
  const status = (role: string, state: string) =>
    nc.publish(`genbrain.agents.${role}.status`, enc.encode(JSON.stringify({ state })));
  const publishTasks = async (n: number) => {
    for (let i = 0; i < n; i++)
      await js.publish("genbrain.agents.cto.tasks", enc.encode(`{"task_id":"t${i}"}`));
  };
  /** One poison task for qa, failed until it is in the dead-letter stream. */
  const deadLetter = async () => {
    const before = await streamMessages(jsm, DEADLETTER);
    await js.publish(poison.subject, enc.encode('{"task_id":"poison"}'));
    await failEverything(js, poison.stream, "qa-worker", async () => {
      return (await streamMessages(jsm, DEADLETTER)) > before;
    });
    await waitFor(() => advisoriesDrained(jsm), { what: "advisories handled" });
  };

  /** orgwatch's lag for every consumer of the organization equals JetStream's own figure. */
  async function expectLagIsTruth(m: Scrape): Promise<void> {
    let consumers = 0;
    for (const stream of ["AGENT_CEO_TASKS", "AGENT_CTO_TASKS", "ORG_BROADCASTS", poison.stream]) {
      for await (const ci of jsm.consumers.list(stream)) {
        if (ci.name.startsWith(OWN_CONSUMER_PREFIX)) continue;
        consumers++;
        expect(m.value("orgwatch_consumer_lag_messages", { stream, consumer: ci.name }), ci.name).toBe(
          ci.num_pending + ci.num_ack_pending,
        );
      }
    }
    expect(m.series("orgwatch_consumer_lag_messages")).toHaveLength(consumers);
  }

  it("reconnects, resumes its subscriptions and advisory consumer, and tells the truth again", async () => {
    // Before: known work, events, a status, one dead letter.
    await publishTasks(5);
    const worker = await js.consumers.get("AGENT_CTO_TASKS", "cto-worker");
    const batch = await worker.fetch({ max_messages: 2, expires: 2000 });
    let acked = false;
    for await (const m of batch) {
      if (!acked) m.ack();
      acked = true;
    }
    events(3);
    status("ceo", "busy");
    await deadLetter();
    await waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return (
          m.value("orgwatch_events_total", { type: "task.completed", role: "cto" }) === 3 &&
          m.value("orgwatch_agent_state", { role: "ceo", state: "busy" }) === 1
        );
      },
      { what: "events and status before the restart" },
    );
    await daemon.pollNow();
    let m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(4);
    expect(m.value("orgwatch_deadletter_messages_total", { consumer: "qa-worker" })).toBe(1);
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    const errorsBefore = m.value("orgwatch_poll_errors_total")!;

    // The crash: orgwatch notices, keeps answering, keeps the last values, and keeps trying.
    const killedAt = Date.now();
    await server.kill();
    await waitFor(async () => (await scrape(daemon.url)).value("orgwatch_nats_connected") === 0, {
      what: "orgwatch_nats_connected 0",
    });
    await waitFor(() => captured.messages("reconnecting to NATS").length >= 3, {
      what: "three reconnection attempts (NATS down for a few seconds)",
    });
    await waitFor(
      async () => (await scrape(daemon.url)).value("orgwatch_poll_errors_total")! > errorsBefore,
      {
        what: "a failed poll, visible",
      },
    );
    m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(4);
    expect(m.value("orgwatch_events_total", { type: "task.completed", role: "cto" })).toBe(3);
    expect((await fetch(daemon.url + "/readyz")).status).toBe(503);

    // Back on the same port and storage.
    const downMs = Date.now() - killedAt;
    const restartedAt = Date.now();
    await server.restart();
    await waitFor(async () => (await scrape(daemon.url)).value("orgwatch_nats_connected") === 1, {
      timeoutMs: 20_000,
      what: "orgwatch_nats_connected 1",
    });
    const reconnectMs = Date.now() - restartedAt;
    await waitFor(() => !nc.isClosed() && nc.info !== undefined && jsm.getAccountInfo().then(() => true), {
      timeoutMs: 20_000,
      what: "the test's own connection back",
    });

    // Subscriptions resumed: new events and status are counted on top, not from zero, not twice.
    events(2);
    status("cto", "idle");
    await waitFor(
      async () => {
        const s = await scrape(daemon.url);
        return (
          s.value("orgwatch_events_total", { type: "task.completed", role: "cto" }) === 5 &&
          s.value("orgwatch_agent_state", { role: "cto", state: "idle" }) === 1
        );
      },
      { what: "events and status after the restart" },
    );
    // The advisory consumer resumed: a second dead letter is routed and counted once; the first is
    // not counted again even if its advisory's ack was lost in the crash.
    await deadLetter();
    await publishTasks(3);

    // Within two polls (here: one asked for, after the timer's own), the truth again.
    await daemon.pollNow();
    m = await scrape(daemon.url);
    await expectLagIsTruth(m);
    expect(m.value("orgwatch_deadletter_messages_total", { consumer: "qa-worker" })).toBe(2);
    expect(await streamMessages(jsm, DEADLETTER)).toBe(2);
    expect(m.value("orgwatch_events_total", { type: "task.completed", role: "cto" })).toBe(5);
    expect(m.value("orgwatch_nats_reconnects_total")).toBe(1);
    expect(m.value("orgwatch_stream_messages", { stream: "AGENT_CTO_TASKS" })).toBe(8);
    expect((await fetch(daemon.url + "/readyz")).status).toBe(200);
    console.log(
      `restart: NATS down ${downMs} ms; orgwatch connected again ${reconnectMs} ms after the restart`,
    );
  });
});
