// A three-node NATS cluster on loopback (routes, JetStream, every stream with 3 replicas), orgwatch
// given all three URLs. The node leading the agents' task streams is killed (SIGKILL): orgwatch
// reports the true values again within a bounded time, shows the disruption in its own metrics, and
// routes every dead letter exactly once, before and after the failover.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { OWN_CONSUMER_PREFIX } from "../../src/sources/source.js";
import { LEDGER_BUCKET } from "../../src/sources/deadletter-router.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { advisoriesDrained, failEverything, streamMessages } from "../helpers/poison.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();
const nanos = (ms: number) => ms * 1_000_000;
const NODES = ["n1", "n2", "n3"];
const ROLES = ["ceo", "cto", "qa"];
const DEADLETTER = "ORG_DEADLETTER";
/** How long orgwatch may take to tell the truth again after losing a node (election included). */
const RECOVERY_DEADLINE_MS = 30_000;

describe("three-node cluster: the leader of the agents' streams is killed", () => {
  const nodes = new Map<string, NatsServerProcess>();
  let urls: string[];
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let daemon: Daemon;

  beforeAll(async () => {
    const clusterPorts = await Promise.all(NODES.map(() => freePort()));
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(", ");
    await Promise.all(
      NODES.map(async (name, i) => {
        const node = await startNatsServer({
          name,
          config: `cluster { name: orgwatch-test, listen: 127.0.0.1:${clusterPorts[i]}, routes: [ ${routes} ] }`,
        });
        nodes.set(name, node);
      }),
    );
    urls = [...nodes.values()].map((n) => n.url);
    nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 2000 });
    js = jetstream(nc);
    await waitFor(() => jsm.getAccountInfo().then(() => true), {
      timeoutMs: 30_000,
      what: "a JetStream meta leader",
    });
    for (const role of ROLES) {
      const stream = `AGENT_${role.toUpperCase()}_TASKS`;
      await jsm.streams.add({
        name: stream,
        subjects: [`genbrain.agents.${role}.tasks`],
        storage: StorageType.File,
        num_replicas: 3,
      });
      await jsm.consumers.add(stream, {
        durable_name: `${role}-worker`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_deliver: 3,
        // qa fails its tasks quickly (the poison path); the others have the reference's 30 minutes.
        ack_wait: nanos(role === "qa" ? 300 : 30 * 60_000),
      });
    }
    await jsm.streams.add({ name: DEADLETTER, subjects: ["genbrain.org.deadletter"], num_replicas: 3 });

    // orgwatch creates its own stream and buckets, replicated like the rest (own-streams.replicas).
    daemon = await startTestDaemon(urls, {
      "poll-interval": 250,
      "advisories.ack-wait": 2000,
      "own-streams.replicas": 3,
    });
    await daemon.started;
    for (const own of ["ORGWATCH_ADVISORIES", `KV_${LEDGER_BUCKET}`, "KV_orgwatch_chains"])
      expect((await jsm.streams.info(own)).config.num_replicas, own).toBe(3);
  });
  afterAll(async () => {
    await daemon?.stop();
    await nc?.close();
    for (const node of nodes.values()) await node.stop();
  });

  async function deadLetter(): Promise<void> {
    // Right after the failover the dead-letter stream may still be electing its leader: its info
    // request times out until it has one (seen in CI).
    const before = await waitFor(() => streamMessages(jsm, DEADLETTER), {
      timeoutMs: 30_000,
      what: "the dead-letter stream answering",
    });
    await js.publish("genbrain.agents.qa.tasks", enc.encode('{"task_id":"poison"}'));
    await failEverything(js, "AGENT_QA_TASKS", "qa-worker", async () => {
      return (await streamMessages(jsm, DEADLETTER).catch(() => before)) > before;
    });
    await waitFor(() => advisoriesDrained(jsm), { timeoutMs: 20_000, what: "advisories handled" });
  }

  /** Lag of every agent consumer as JetStream reports it; undefined while a stream has no leader. */
  async function truth(): Promise<Map<string, number>> {
    const lag = new Map<string, number>();
    for (const role of ROLES) {
      const ci = await jsm.consumers.info(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
      lag.set(ci.name, ci.num_pending + ci.num_ack_pending);
    }
    return lag;
  }

  function matches(m: Scrape, lag: Map<string, number>): boolean {
    for (const [consumer, n] of lag)
      if (m.value("orgwatch_consumer_lag_messages", { consumer }) !== n) return false;
    return true;
  }

  it("reports the truth again within the deadline, shows the disruption, routes dead letters once", async () => {
    for (let i = 0; i < 6; i++)
      await js.publish("genbrain.agents.cto.tasks", enc.encode(`{"task_id":"t${i}"}`));
    const batch = await (
      await js.consumers.get("AGENT_CTO_TASKS", "cto-worker")
    ).fetch({
      max_messages: 2,
      expires: 2000,
    });
    let acked = false;
    for await (const m of batch) {
      if (!acked) m.ack();
      acked = true;
    }
    await deadLetter();
    await daemon.pollNow();
    let m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(5);
    expect(m.value("orgwatch_deadletter_messages_total", { consumer: "qa-worker" })).toBe(1);
    const errorsBefore = m.value("orgwatch_poll_errors_total")!;

    // Kill the node leading the agents' task streams.
    const leader = (await jsm.streams.info("AGENT_CTO_TASKS")).cluster?.leader;
    expect(leader).toBeDefined();
    const killedAt = Date.now();
    await nodes.get(leader!)!.kill();

    // Within the deadline, orgwatch's figures are JetStream's again (after a new leader is elected).
    let truthAtMs: number | undefined;
    /** cto-worker's lag at every scrape during the failover: never absent, never another number. */
    const seen: (number | undefined)[] = [];
    const watcher = setInterval(() => {
      void scrape(daemon.url)
        .then((s) => seen.push(s.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })))
        .catch(() => seen.push(-1));
    }, 200);
    await waitFor(
      async () => {
        const lag = await truth();
        truthAtMs ??= Date.now() - killedAt;
        await daemon.pollNow();
        const now = await scrape(daemon.url);
        seen.push(now.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" }));
        return matches(now, lag);
      },
      { timeoutMs: RECOVERY_DEADLINE_MS, intervalMs: 250, what: "orgwatch's lag matching JetStream's" },
    );
    const recoveredMs = Date.now() - killedAt;
    // A failover over at the first try leaves one scrape: the watcher goes on to ten or more, so
    // that the claim "never absent, never another number" rests on as many scrapes however fast
    // the election was (once in CI the truth matched at the first poll).
    await waitFor(() => seen.length > 10, { timeoutMs: 10_000, what: "more than ten scrapes" });
    clearInterval(watcher);
    expect(seen.length).toBeGreaterThan(10);
    expect(new Set(seen)).toEqual(new Set([5]));
    m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(5);
    // The test's own connection may still be finding its way (its request timed out once in CI
    // while orgwatch had already recovered): asked again until it answers.
    const newLeader = await waitFor(
      async () => (await jsm.streams.info("AGENT_CTO_TASKS").catch(() => undefined))?.cluster?.leader,
      { what: "the stream's leader, from the test's own connection" },
    );
    expect(newLeader).not.toBe(leader);

    // The disruption is visible in orgwatch's own metrics: polls that failed during the election,
    // or (when it was connected to the lost node) a reconnect.
    const errorsAfter = m.value("orgwatch_poll_errors_total")!;
    const reconnects = m.value("orgwatch_nats_reconnects_total")!;
    expect(errorsAfter - errorsBefore + reconnects).toBeGreaterThan(0);
    expect(m.value("orgwatch_nats_connected")).toBe(1);

    // Dead letters after the failover: routed, and the one before is not routed again.
    await deadLetter();
    await daemon.pollNow();
    m = await scrape(daemon.url);
    expect(await streamMessages(jsm, DEADLETTER)).toBe(2);
    expect(m.value("orgwatch_deadletter_messages_total", { consumer: "qa-worker" })).toBe(2);
    const own = m
      .series("orgwatch_consumer_lag_messages")
      .filter((s) => s.labels["consumer"]?.startsWith(OWN_CONSUMER_PREFIX));
    expect(own).toEqual([]);
    console.log(
      `cluster: killed ${leader}, new leader ${newLeader}; JetStream answering again after ${truthAtMs} ms, orgwatch's truth after ${recoveredMs} ms; ` +
        `poll errors +${errorsAfter - errorsBefore}, reconnects ${reconnects}`,
    );
  }, 85_000); // a slow CI machine: the file is ~20–40 s here
});
