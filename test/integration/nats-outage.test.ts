// NATS absent when orgwatch starts, then up, then killed and restarted: orgwatch keeps answering
// /metrics throughout, says what it sees (orgwatch_nats_connected, poll errors, last success) and
// keeps the last values until a poll succeeds again.
import { afterAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const CTO = { stream: "AGENT_CTO_TASKS", consumer: "cto-worker", role: "cto", kind: "tasks" };

describe("NATS absent at start and restarted", () => {
  let server: NatsServerProcess | undefined;
  let nc: NatsConnection | undefined;
  let daemon: Daemon | undefined;

  afterAll(async () => {
    await daemon?.stop();
    await nc?.close();
    await server?.stop();
  });

  it("answers /metrics all along and recovers by itself", async () => {
    const port = await freePort();
    daemon = await startTestDaemon(`nats://127.0.0.1:${port}`, { "poll-interval": 200 });
    const url = daemon.url;

    // No NATS: the daemon is alive, not ready, and says it is not connected.
    let m = await scrape(url);
    expect(m.value("orgwatch_nats_connected")).toBe(0);
    expect(m.value("orgwatch_nats_reconnects_total")).toBe(0);
    // 0, never: `time() - orgwatch_last_poll_success_timestamp_seconds` alerts are already firing.
    expect(m.value("orgwatch_last_poll_success_timestamp_seconds")).toBe(0);
    expect(m.series("orgwatch_consumer_lag_messages")).toEqual([]);
    expect((await fetch(url + "/healthz")).status).toBe(200);
    expect((await fetch(url + "/readyz")).status).toBe(503);

    // NATS comes up: connected, polled, ready.
    server = await startNatsServer({ port });
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await createReferenceTopology(jsm, { roles: ["cto"] });
    await js.publish("genbrain.agents.cto.tasks", "one");
    await js.publish("genbrain.agents.cto.tasks", "two");
    m = await waitFor(
      async () => {
        const s = await scrape(url);
        return s.value("orgwatch_consumer_lag_messages", CTO) === 2 ? s : undefined;
      },
      { what: "the first poll after NATS came up" },
    );
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    expect(m.value("orgwatch_poll_errors_total")).toBe(0);
    expect((await fetch(url + "/readyz")).status).toBe(200);

    // NATS dies: still answering, disconnected, polls failing, the last values kept.
    await nc.close();
    nc = undefined;
    await server.kill();
    m = await waitFor(
      async () => {
        const s = await scrape(url);
        return s.value("orgwatch_nats_connected") === 0 && s.value("orgwatch_poll_errors_total")! >= 2
          ? s
          : undefined;
      },
      { what: "disconnection and failed polls" },
    );
    const lastSuccess = m.value("orgwatch_last_poll_success_timestamp_seconds")!;
    expect(lastSuccess).toBeGreaterThan(0);
    expect(m.value("orgwatch_consumer_lag_messages", CTO)).toBe(2);
    expect(m.value("orgwatch_stream_messages", { stream: "AGENT_CTO_TASKS" })).toBe(2);
    expect((await fetch(url + "/readyz")).status).toBe(503);
    const errorsDuringOutage = m.value("orgwatch_poll_errors_total")!;
    m = await waitFor(
      async () => {
        const s = await scrape(url);
        return s.value("orgwatch_poll_errors_total")! > errorsDuringOutage ? s : undefined;
      },
      { what: "more failed polls" },
    );
    expect(m.value("orgwatch_last_poll_success_timestamp_seconds")).toBe(lastSuccess);

    // NATS is back with its store: reconnected, polling again, new values.
    await server.restart();
    nc = await connect({ servers: server.url });
    await jetstream(nc).publish("genbrain.agents.cto.tasks", "three");
    m = await waitFor(
      async () => {
        const s = await scrape(url);
        return s.value("orgwatch_consumer_lag_messages", CTO) === 3 ? s : undefined;
      },
      { what: "a poll after the restart" },
    );
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    expect(m.value("orgwatch_nats_reconnects_total")).toBe(1);
    expect(m.value("orgwatch_last_poll_success_timestamp_seconds")).toBeGreaterThan(lastSuccess);
    expect((await fetch(url + "/readyz")).status).toBe(200);
  });
});
