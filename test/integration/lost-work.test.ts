// Lost work against a real nats-server (DESIGN.md §7): every way a message leaves its stream before
// the consumer that owed it an ack acknowledged it, counted exactly per consumer and reason, the
// task ended `lost`, and what was acknowledged (in order or above the floor) never counted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiscardPolicy, type JsMsg } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { advisoriesDrained } from "../helpers/poison.js";
import { addTaskStream } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();
const LOST = "orgwatch_consumer_lost_messages_total";

function task(id: string): Uint8Array {
  return enc.encode(JSON.stringify({ task_id: id, type: "feature_implementation" }));
}

describe("lost work", () => {
  let org: TestOrg;

  beforeAll(async () => {
    org = await startTestOrg({ firstPoll: true, settings: { "chains.next-window": 1_000 } });
  });
  afterAll(async () => {
    await org?.stop();
  });

  async function publishTasks(subject: string, ids: string[]): Promise<number[]> {
    const seqs: number[] = [];
    for (const id of ids) seqs.push((await org.js.publish(subject, task(id))).seq);
    await waitFor(() => ids.every((id) => org.daemon.org.tasks.get(id) !== undefined), {
      what: "orgwatch to read the tasks",
    });
    return seqs;
  }

  async function pull(stream: string, consumer: string, n: number): Promise<JsMsg[]> {
    const c = await org.js.consumers.get(stream, consumer);
    const out: JsMsg[] = [];
    for await (const m of await c.fetch({ max_messages: n, expires: 2_000 })) {
      out.push(m);
      if (out.length === n) break;
    }
    return out;
  }

  /**
   * Polls until the count is `expected` (what is shown is what was saved: up to a second after the
   * poll), then once more: a later poll must not count the same messages again.
   */
  async function expectLost(labels: Record<string, string>, expected: number) {
    const read = async () => {
      await org.daemon.pollNow();
      const m = await scrape(org.daemon.url);
      return { m, value: m.value(LOST, labels) ?? 0 };
    };
    let last = 0;
    await waitFor(
      async () => {
        last = (await read()).value;
        return last >= expected;
      },
      { what: `${JSON.stringify(labels)} = ${expected} (last ${last})`, timeoutMs: 5_000 },
    );
    await org.daemon.org.tasks.whenSaved();
    const again = await read();
    expect(again.value).toBe(expected);
    return again.m;
  }

  it("counts tasks expired by max-age per consumer: never delivered, in progress, acked (in and out of order)", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "cto", { max_age: nanos(3_000) }, [
      "cto-worker",
      "cto-audit",
    ]);
    await org.daemon.pollNow();
    await publishTasks(subject, ["age-1", "age-2", "age-3", "age-4"]);
    // cto-worker: acks 1 (in order) and 3 (above the floor), holds 2 and 4. cto-audit: never pulls.
    const got = await pull(stream, "cto-worker", 4);
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    got[0]!.ack();
    got[2]!.ack();
    await org.nc.flush();
    await org.daemon.pollNow();
    const before = await scrape(org.daemon.url);
    // Present at 0 before the first loss, so that an alert sees it.
    expect(before.value(LOST, { stream, consumer: "cto-worker", reason: "max_age" })).toBe(0);

    await waitFor(async () => (await org.jsm.streams.info(stream)).state.messages === 0, {
      what: "the tasks to expire",
    });
    // The in-progress ones come as MSG_TERMINATED advisories: wait until they are handled.
    await waitFor(() => advisoriesDrained(org.jsm), { what: "advisories handled" });
    await org.daemon.pollNow();
    await expectLost({ stream, consumer: "cto-worker", reason: "max_age" }, 2);
    await expectLost({ stream, consumer: "cto-audit", reason: "max_age" }, 4);
    // Tasks: 1 acked, 3 acked above the floor: completed; 2 and 4 lost by both consumers.
    await org.daemon.pollNow();
    await waitFor(() => org.daemon.org.tasks.get("age-3")?.exported === true, { what: "age-3 ended" });
    const outcome = (id: string) => org.daemon.org.tasks.get(id)?.outcome;
    expect(["age-1", "age-2", "age-3", "age-4"].map(outcome)).toEqual([
      "completed",
      "lost",
      "completed",
      "lost",
    ]);
    expect(org.daemon.org.tasks.get("age-2")?.lostReason).toBe("max_age");
    const m = await scrape(org.daemon.url);
    expect(m.value("orgwatch_tasks_completed_total", { role: "cto", outcome: "lost" })).toBe(2);
    expect(m.value("orgwatch_stream_max_age_seconds", { stream })).toBe(3);
  });

  it("counts messages pushed out by max-msgs (discard old) as limits", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "qa", {
      max_msgs: 2,
      discard: DiscardPolicy.Old,
    });
    await org.daemon.pollNow();
    await publishTasks(subject, ["lim-1", "lim-2"]);
    await org.daemon.pollNow();
    await org.js.publish(subject, task("lim-3"));
    await org.js.publish(subject, task("lim-4"));
    await waitFor(() => org.daemon.org.tasks.get("lim-4") !== undefined, { what: "lim-4 read" });
    const m = await expectLost({ stream, consumer: "qa-worker", reason: "limits" }, 2);
    expect(m.series(LOST, { stream, reason: "max_age" })).toEqual([]);
    expect(org.daemon.org.tasks.get("lim-1")?.outcome).toBe("lost");
    expect(org.daemon.org.tasks.get("lim-3")?.outcome).toBeUndefined();
  });

  it("counts a purge, delivered and undelivered alike, and a delete", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "ops");
    await org.daemon.pollNow();
    await publishTasks(subject, ["p-1", "p-2", "p-3", "p-4"]);
    const got = await pull(stream, "ops-worker", 2);
    got[0]!.ack();
    await org.nc.flush();
    await org.daemon.pollNow();
    // Delete 4 (never delivered): one delete. Then purge the rest: 2 (in progress) and 3.
    await org.jsm.streams.deleteMessage(stream, 4);
    await org.daemon.pollNow();
    await expectLost({ stream, consumer: "ops-worker", reason: "delete" }, 1);
    await org.jsm.streams.purge(stream);
    await expectLost({ stream, consumer: "ops-worker", reason: "purge" }, 2);
    expect(["p-1", "p-2", "p-3", "p-4"].map((id) => org.daemon.org.tasks.get(id)?.outcome)).toEqual([
      "completed",
      "lost",
      "lost",
      "lost",
    ]);
  });

  it("counts a purge up to a sequence and a purge by subject, and max-bytes and max-msgs-per-subject as limits", async () => {
    // Purge up to a sequence: 1-2 go (never delivered), 3 stays.
    const upTo = await addTaskStream(org.jsm, "pa");
    await org.daemon.pollNow();
    await publishTasks(upTo.subject, ["pa-1", "pa-2", "pa-3"]);
    await org.daemon.pollNow();
    await org.jsm.streams.purge(upTo.stream, { seq: 3 });
    await expectLost({ stream: upTo.stream, consumer: "pa-worker", reason: "purge" }, 2);
    expect(org.daemon.org.tasks.get("pa-3")?.outcome).toBeUndefined();
    // Purge by subject (the stream's one subject), one delivered and unacknowledged.
    const bySubject = await addTaskStream(org.jsm, "pb");
    await org.daemon.pollNow();
    await publishTasks(bySubject.subject, ["pb-1", "pb-2"]);
    await pull(bySubject.stream, "pb-worker", 1);
    await org.daemon.pollNow();
    await org.jsm.streams.purge(bySubject.stream, { filter: bySubject.subject });
    await expectLost({ stream: bySubject.stream, consumer: "pb-worker", reason: "purge" }, 2);
    // Max bytes (discard old): the oldest pushed out to make room.
    const bytes = await addTaskStream(org.jsm, "pc", { max_bytes: 400, discard: DiscardPolicy.Old });
    await org.daemon.pollNow();
    await publishTasks(bytes.subject, ["pc-1", "pc-2"]);
    await org.daemon.pollNow();
    for (let i = 3; i <= 5; i++) await org.js.publish(bytes.subject, task(`pc-${i}`));
    const info = await org.jsm.streams.info(bytes.stream);
    const pushedOut = info.state.first_seq - 1;
    expect(pushedOut).toBeGreaterThan(0);
    await expectLost({ stream: bytes.stream, consumer: "pc-worker", reason: "limits" }, pushedOut);
    // Max messages per subject.
    const perSubject = await addTaskStream(org.jsm, "pd", { max_msgs_per_subject: 1 });
    await org.daemon.pollNow();
    await publishTasks(perSubject.subject, ["pd-1"]);
    await org.daemon.pollNow();
    await org.js.publish(perSubject.subject, task("pd-2"));
    await expectLost({ stream: perSubject.stream, consumer: "pd-worker", reason: "limits" }, 1);
    expect(org.daemon.org.tasks.get("pd-1")?.outcome).toBe("lost");
  });

  it("counts unrouted work: a task on a subject no stream stores", async () => {
    await org.daemon.pollNow();
    org.nc.publish("genbrain.agents.securty.tasks", task("typo-1"));
    await org.nc.flush();
    await waitFor(
      async () => {
        await org.daemon.pollNow();
        const m = await scrape(org.daemon.url);
        return m.value("orgwatch_unrouted_messages_total", { role: "securty", kind: "tasks" }) === 1;
      },
      { what: "the unrouted task counted" },
    );
    // A stored subject is not unrouted.
    const m = await scrape(org.daemon.url);
    expect(m.series("orgwatch_unrouted_messages_total", { role: "ops" })).toEqual([]);
  });

  it("with its tap on the task subjects, a js.publish to an unstored subject times out instead of failing at once", async () => {
    // The documented price of the tap (docs/lost-work.md): the publish still fails, later.
    const err = await org.js.publish("genbrain.agents.nobody.tasks", task("void-1"), { timeout: 500 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeDefined();
    expect(String(err?.message)).toMatch(/timeout/i);
  });

  it("counts broken chain links: unrouted target and a next step that never came", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "dev");
    await org.daemon.pollNow();
    const chained = (id: string, to: string) =>
      enc.encode(JSON.stringify({ task_id: id, type: "impl", on_complete: { publish_to: to } }));
    await org.js.publish(subject, chained("chain-typo", "genbrain.agents.securty.tasks"));
    await org.js.publish(subject, chained("chain-gap", "genbrain.agents.dev.tasks"));
    await waitFor(() => org.daemon.org.tasks.get("chain-gap") !== undefined, { what: "chain tasks read" });
    const got = await pull(stream, "dev-worker", 2);
    for (const m of got) m.ack();
    await org.nc.flush();
    let typo: number | undefined;
    let gap: number | undefined;
    await waitFor(
      async () => {
        // The server applies acks after it answers the flush: each try polls again until they show.
        await org.daemon.pollNow();
        org.daemon.org.tasks.tick(Date.now() + 2_000);
        const m = await scrape(org.daemon.url);
        typo = m.value("orgwatch_chain_links_broken_total", { role: "dev", reason: "unrouted_target" });
        gap = m.value("orgwatch_chain_links_broken_total", { role: "dev", reason: "next_missing" });
        return typo === 1 && gap === 1;
      },
      { what: () => `both broken links (last: unrouted_target ${typo}, next_missing ${gap})` },
    );
    expect(stream).toBe("AGENT_DEV_TASKS");
  });
});

describe("unrouted work without the tap", () => {
  let org: TestOrg;
  beforeAll(async () => {
    org = await startTestOrg({ firstPoll: true, settings: { "unrouted.subscribe": false } });
  });
  afterAll(async () => {
    await org?.stop();
  });

  it("leaves a publisher's immediate no-responders error alone, and counts nothing", async () => {
    const started = Date.now();
    const err = await org.js.publish("genbrain.agents.nobody.tasks", task("void-2"), { timeout: 5_000 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeDefined();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(String((err as { cause?: Error }).cause?.message ?? err?.message)).toMatch(/no responders|503/i);
    await org.daemon.pollNow();
    expect((await scrape(org.daemon.url)).series("orgwatch_unrouted_messages_total")).toEqual([]);
  });
});
