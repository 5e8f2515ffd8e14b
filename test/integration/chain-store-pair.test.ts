// The chain store of a pair's replica (src/sources/chain-store.ts) against a real nats-server, its
// connection through a TCP proxy the test cuts: what the 3-node failover test showed (a holder that
// lost the lease because NATS did not answer, the spans it had sent not on record, sent again by
// the other replica; its watch of the other's records failed once and never tried again).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { configWith } from "../../src/config/load.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { Organization } from "../../src/model/organization.js";
import type { TaskRecord } from "../../src/model/tasks/index.js";
import { cursorKey, openChainStore, taskKey, type ChainStore } from "../../src/sources/chain-store.js";
import { createSourceContext } from "../../src/sources/source.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { observeJoinedTask } from "../helpers/task-observations.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";

describe("the chain store of a pair's replica, cut off from NATS", () => {
  let server: NatsServerProcess;
  let proxy: TcpProxy;
  /** The other replica's connection (and the test's), never cut. */
  let direct: NatsConnection;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    proxy = await startTcpProxy("127.0.0.1", server.port);
    direct = await connect({ servers: server.url });
  });
  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await direct?.close();
    await proxy?.close();
    await server?.stop();
  });

  async function replica(
    name: string,
    bucket: string,
  ): Promise<{ org: Organization; store: ChainStore; log: CapturedLog; kv: KV }> {
    const nc = await connect({ servers: proxy.address, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    connections.push(nc);
    const config = configWith({ "pair.replica": name, "chains.kv-bucket": bucket });
    const org = new Organization(config);
    // As with a trace exporter: a span is sent once its collector answered (confirmSpanSent).
    org.tasks.confirmsSpans = true;
    const log = captureLog("debug");
    const store = await openChainStore(await createSourceContext(nc, config, org, log.log));
    if (!store) throw new Error("no chain store");
    await store.load(org);
    return { org, store, log, kv: await new Kvm(direct).open(bucket) };
  }

  function publishAndEnd(org: Organization, taskIds: string[]): void {
    const now = Date.now();
    for (const [seq, taskId] of taskIds.entries()) {
      observeJoinedTask(org.tasks, taskId, seq + 1, now - 1000);
      org.tasks.recordCompletionSignal({ taskId, outcome: "completed", atMs: now });
    }
    org.tasks.tick();
  }

  const stored = async (kv: KV, taskId: string) => {
    const entry = await kv.get(taskKey(taskId));
    return entry ? { revision: entry.revision, record: entry.json<TaskRecord>() } : undefined;
  };

  it("puts on record, once NATS answers, the spans it sent as the holder, except where the record says sent", async () => {
    const { org, store, log, kv } = await replica("a", "orgwatch_chains_owed");
    org.lease.acquire(Infinity);
    publishAndEnd(org, ["sent-1", "sent-2", "not-sent"]);
    expect(await store.flush(org)).toBe(true);
    expect((await stored(kv, "sent-1"))?.record.spanSent).toBe(false);

    // Cut off: its collector answers for two spans, the lease is lost (the renewal failed too).
    await proxy.cut();
    org.tasks.confirmSpanSent("sent-1");
    org.tasks.confirmSpanSent("sent-2");
    org.lease.lose("renewal failed");
    expect(await store.flush(org)).toBe(true); // a follower's changes are let go: "saved"
    // Meanwhile the other replica, holding the lease, wrote the second as sent by itself.
    const other: TaskRecord = { ...org.tasks.get("sent-2")!, spanSent: true, ids: undefined };
    const otherRevision = await kv.put(taskKey("sent-2"), JSON.stringify(other));
    const notSentBefore = await stored(kv, "not-sent");

    await proxy.mend();
    await waitFor(async () => (await stored(kv, "sent-1"))?.record.spanSent === true, {
      what: "the first span on record as sent",
    });
    expect((await stored(kv, "sent-1"))?.record.ids).toEqual(org.tasks.get("sent-1")!.ids);
    // The other's record says sent: left as it is. The span not sent: nothing owed.
    expect(await stored(kv, "sent-2")).toEqual({ revision: otherRevision, record: other });
    expect(await stored(kv, "not-sent")).toEqual(notSentBefore);
    expect(
      log.messages("spans sent before the lease was lost now on record").map((m) => m["written"]),
    ).toEqual([1]);
  }, 30_000);

  it("follows the other replica's records again after a failed start, with nothing written meanwhile missed", async () => {
    const { org, store, log, kv } = await replica("b", "orgwatch_chains_follow");
    publishAndEnd(org, ["before", "during", "after"]);
    const record = (taskId: string): TaskRecord => ({ ...org.tasks.get(taskId)!, spanSent: true });
    await kv.put(taskKey("before"), JSON.stringify(record("before")));

    // Starts following while cut off (NATS does not answer: the holder's records not followed).
    await proxy.cut();
    const followed: string[] = [];
    const stop = store.watchRecords((r) => followed.push(r.taskId));
    try {
      await waitFor(() => log.messages("the lease holder's span exports not followed").length > 0, {
        timeoutMs: 20_000,
        what: "the watch failing",
      });
      await kv.put(taskKey("during"), JSON.stringify(record("during")));
      await proxy.mend();
      await waitFor(() => followed.includes("during"), {
        timeoutMs: 20_000,
        what: "the record written meanwhile",
      });
      await kv.put(taskKey("after"), JSON.stringify(record("after")));
      await waitFor(() => followed.includes("after"), { what: "a record written since" });
      // Every record written since its load (where it follows from), once each, in order.
      expect(followed).toEqual(["before", "during", "after"]);
      expect(log.messages("the lease holder's span exports followed again")).toHaveLength(1);
    } finally {
      stop();
    }
  }, 45_000);

  it("writes nothing between acquiring the lease and taking over: no cursor past records not written", async () => {
    // What the pair test's second kill showed: a replica acquired the lease, and before it took over
    // (the last holder's records read), a flush wrote the task stream's cursor that its reads as a
    // follower had advanced, without those tasks' records (a follower's changes are let go). The
    // replica restarted meanwhile restored that cursor and never read the tasks: their spans lost.
    const { org, store, kv } = await replica("c", "orgwatch_chains_takeover");
    publishAndEnd(org, ["read-as-follower-1", "read-as-follower-2"]);
    expect(await store.flush(org)).toBe(true); // a follower: let go
    org.lease.acquire(Infinity);
    org.tasks.prepareTakeOver();
    observeJoinedTask(org.tasks, "read-while-taking-over", 3, Date.now());
    await store.flush(org);
    expect(await kv.get(cursorKey("AGENT_CTO_TASKS"))).toBeNull();
    expect(await stored(kv, "read-as-follower-1")).toBeUndefined();

    org.tasks.takeOver([]);
    expect(await store.flush(org)).toBe(true);
    expect((await kv.get(cursorKey("AGENT_CTO_TASKS")))?.json()).toEqual({
      stream: "AGENT_CTO_TASKS",
      seq: 3,
    });
    for (const id of ["read-as-follower-1", "read-as-follower-2", "read-while-taking-over"])
      expect((await stored(kv, id))?.record.taskId).toBe(id);
  }, 30_000);
});
