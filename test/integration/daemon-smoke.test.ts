import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";

describe("daemon skeleton", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let daemon: Daemon;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    await createReferenceTopology(await jetstreamManager(nc), { roles: ["ceo", "cto", "security"] });
    daemon = await startTestDaemon(server.url);
  });
  afterAll(async () => {
    await daemon?.stop();
    await nc?.close();
    await server?.stop();
  });

  it("connects, polls, and reports itself ready", async () => {
    await daemon.pollNow();
    expect(daemon.org.jetstream.current?.streams.size).toBe(4);
    expect(daemon.org.jetstream.current?.consumers.size).toBe(6);
    const res = await fetch(daemon.url + "/readyz");
    expect(res.status).toBe(200);
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    expect(m.value("orgwatch_poll_errors_total")).toBe(0);
  });

  it("refuses methods other than GET and HEAD", async () => {
    const res = await fetch(daemon.url + "/metrics", { method: "POST" });
    expect(res.status).toBe(405);
  });
});
