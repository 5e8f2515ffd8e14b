// The poller keeps each consumer's histories (status window, acks) from poll to poll in one map:
// a consumer deleted on the server must leave it at the next poll (no leak over a long run).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { silentLogger } from "../../src/log.js";
import { Organization } from "../../src/model/organization.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { startJetStreamPoller, type RunningPoller } from "../../src/sources/jetstream-poller.js";
import { testConfig } from "../helpers/daemon.js";
import { addTaskStream } from "../helpers/topology.js";

describe("the poller's kept consumer histories", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let poller: RunningPoller | undefined;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    await addTaskStream(jsm, "cto", {}, ["cto-worker", "cto-reviewer", "cto-audit"]);
  });
  afterAll(async () => {
    await poller?.stop();
    await nc?.close();
    await server?.stop();
  });

  it("keeps one per consumer the last poll saw, and drops a deleted consumer's at the next poll", async () => {
    const config = testConfig(server.url);
    const org = new Organization(config);
    org.health.natsConnected = true;
    const first = new Promise<void>((resolve) => org.jetstream.once("polled", () => resolve()));
    poller = startJetStreamPoller({ nc, jsm, js: jetstream(nc), config, org, log: silentLogger() });
    await first;
    expect(org.jetstream.current?.consumers.size).toBe(3);
    expect(poller.keptHistories).toBe(3);

    await poller.pollNow();
    expect(org.health.pollsCompleted).toBe(2);
    expect(poller.keptHistories).toBe(3);

    await jsm.consumers.delete("AGENT_CTO_TASKS", "cto-audit");
    await poller.pollNow();
    expect(org.health.pollsCompleted).toBe(3);
    expect([...org.jetstream.current!.consumers.keys()].sort()).toEqual([
      "AGENT_CTO_TASKS/cto-reviewer",
      "AGENT_CTO_TASKS/cto-worker",
    ]);
    expect(poller.keptHistories).toBe(2);
  });
});
