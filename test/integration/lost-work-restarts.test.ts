// Lost work across restarts (DESIGN.md §7): messages that expire while nats-server is down (2.9.10
// removes them while the stream recovers, without any advisory), and while orgwatch is down between
// the removal and its next poll. Each counted once, the tasks ended `lost`.
import { afterEach, describe, expect, it } from "vitest";
import type { JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon, startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { addTaskStream } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();
const LOST = "orgwatch_consumer_lost_messages_total";
const STREAM = "AGENT_CTO_TASKS";
const SUBJECT = "genbrain.agents.cto.tasks";
const MAX_AGE_MS = 2_000;

async function setUp(jsm: JetStreamManager): Promise<void> {
  await addTaskStream(jsm, "cto", { max_age: nanos(MAX_AGE_MS) });
}

async function publishAndRead(org: TestOrg, daemon: Daemon, ids: string[]): Promise<void> {
  for (const id of ids)
    await org.js.publish(SUBJECT, enc.encode(JSON.stringify({ task_id: id, type: "impl" })));
  await waitFor(() => ids.every((id) => daemon.org.tasks.get(id) !== undefined), { what: "tasks read" });
}

async function pullOne(org: TestOrg): Promise<JsMsg> {
  const c = await org.js.consumers.get(STREAM, "cto-worker");
  for await (const m of await c.fetch({ max_messages: 1, expires: 2_000 })) return m;
  throw new Error("nothing delivered");
}

/** Polls until the count is `expected`, then once more: it must stay there. */
async function expectLost(daemon: Daemon, expected: number): Promise<void> {
  const value = async () => {
    await daemon.pollNow();
    return (
      (await scrape(daemon.url)).value(LOST, { stream: STREAM, consumer: "cto-worker", reason: "max_age" }) ??
      0
    );
  };
  let last = 0;
  await waitFor(async () => (last = await value()) >= expected, {
    what: `lost = ${expected} (last ${last})`,
    timeoutMs: 10_000,
  });
  await daemon.org.tasks.whenSaved();
  expect(await value()).toBe(expected);
}

describe("lost work across restarts", () => {
  let org: TestOrg | undefined;
  let second: Daemon | undefined;
  afterEach(async () => {
    await second?.stop();
    second = undefined;
    await org?.stop();
    org = undefined;
  });

  it("counts tasks that expired while nats-server was down, delivered ones included", async () => {
    org = await startTestOrg({ prepare: setUp, firstPoll: true });
    const daemon = org.daemon;
    await publishAndRead(org, daemon, ["r-1", "r-2", "r-3"]);
    const inProgress = await pullOne(org);
    expect(inProgress.seq).toBe(1);
    await daemon.pollNow();
    await daemon.org.tasks.whenSaved();
    await org.server.kill();
    // Down for longer than the max age: the store holds expired messages when it comes back.
    const downSince = Date.now();
    await waitFor(() => Date.now() - downSince > MAX_AGE_MS + 500, {
      what: "the max age to pass",
      intervalMs: 100,
    });
    await org.server.restart();
    await waitFor(() => daemon.org.health.natsConnected, { what: "orgwatch reconnected" });
    await waitFor(async () => (await org!.jsm.streams.info(STREAM)).state.messages === 0, {
      what: "the stream recovered empty",
    });
    await expectLost(daemon, 3);
    await waitFor(() => ["r-1", "r-2", "r-3"].every((id) => daemon.org.tasks.get(id)?.outcome === "lost"), {
      what: "the three tasks lost",
    });
  });

  it("counts removals that happened while orgwatch was down, once, after it restarts", async () => {
    org = await startTestOrg({ prepare: setUp, firstPoll: true });
    await publishAndRead(org, org.daemon, ["o-1", "o-2", "o-3"]);
    await org.daemon.pollNow();
    await org.daemon.org.tasks.whenSaved();
    await org.daemon.stop();
    await waitFor(async () => (await org!.jsm.streams.info(STREAM)).state.messages === 0, {
      what: "the tasks to expire while orgwatch is down",
    });
    second = await startTestDaemon(org.server.url);
    await second.started;
    await expectLost(second, 3);
    await waitFor(() => ["o-1", "o-2", "o-3"].every((id) => second!.org.tasks.get(id)?.outcome === "lost"), {
      what: "the three tasks lost",
    });
    // A third orgwatch with the state the second saved counts nothing again.
    await second.stop();
    second = await startTestDaemon(org.server.url);
    await second.started;
    await second.pollNow();
    await second.pollNow();
    expect(
      (await scrape(second.url)).value(LOST, { stream: STREAM, consumer: "cto-worker", reason: "max_age" }),
    ).toBe(3);
  });
});
