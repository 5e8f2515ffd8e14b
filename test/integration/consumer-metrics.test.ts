// The JetStream poller against a real nats-server: a known workload on the reference topology, and
// the exact value of every consumer and stream metric of DESIGN.md §3.
import { get as httpGet, type IncomingHttpHeaders } from "node:http";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInbox, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Daemon } from "../../src/daemon.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { advisoriesDrained } from "../helpers/poison.js";
import { waitFor } from "../helpers/wait.js";

const NS_PER_MS = 1_000_000;
const WINDOW = 3;

interface Row {
  stream: string;
  consumer: string;
  role: string;
  kind: string;
}

/** Every series of a consumer family as `stream/consumer role kind = value`, sorted. */
function consumerSeries(m: Scrape, name: string): string[] {
  return m
    .series(name)
    .map(
      (s) =>
        `${s.labels["stream"]}/${s.labels["consumer"]} ${s.labels["role"]}|${s.labels["kind"]} = ${s.value}`,
    )
    .sort();
}

function streamSeries(m: Scrape, name: string): string[] {
  return m
    .series(name)
    .map((s) => `${s.labels["stream"]} ${s.labels["role"]}|${s.labels["kind"]} = ${s.value}`)
    .sort();
}

function expectedConsumerSeries(rows: (Row & { value: number | undefined })[]): string[] {
  return rows
    .filter((r) => r.value !== undefined)
    .map((r) => `${r.stream}/${r.consumer} ${r.role}|${r.kind} = ${r.value}`)
    .sort();
}

/** `last_active` of a sequence info, as the server reports it (RFC 3339), in epoch seconds. */
function lastActiveSeconds(seq: ConsumerInfo["delivered"]): number | undefined {
  const raw = (seq as { last_active?: unknown }).last_active;
  return typeof raw === "string" ? Date.parse(raw) / 1000 : undefined;
}

async function fetchN(js: JetStreamClient, stream: string, consumer: string, n: number): Promise<JsMsg[]> {
  const c = await js.consumers.get(stream, consumer);
  const out: JsMsg[] = [];
  for await (const m of await c.fetch({ max_messages: n, expires: 2000 })) out.push(m);
  return out;
}

async function storedMs(jsm: JetStreamManager, stream: string, seq: number): Promise<number> {
  const m = await jsm.streams.getMessage(stream, { seq });
  if (!m) throw new Error(`no message ${stream}#${seq}`);
  return m.time.getTime();
}

/** Scrapes and returns the scrape with the wall-clock interval it happened in. */
async function timedScrape(url: string): Promise<{ m: Scrape; before: number; after: number }> {
  const before = Date.now();
  const m = await scrape(url);
  return { m, before, after: Date.now() };
}

function expectAge(
  got: number | undefined,
  stored: number | undefined,
  when: { before: number; after: number },
): void {
  if (stored === undefined) {
    expect(got).toBe(0);
    return;
  }
  expect(got).toBeGreaterThanOrEqual((when.before - stored) / 1000);
  expect(got).toBeLessThanOrEqual((when.after - stored) / 1000);
}

function statusOf(m: Scrape, stream: string, consumer: string): string[] {
  return m
    .series("orgwatch_consumer_status", { stream, consumer })
    .filter((s) => s.value === 1)
    .map((s) => s.labels["status"]!);
}

/** One poll, which must succeed (a failed poll keeps the last values, and the test would read those). */
async function pollOk(daemon: Daemon): Promise<void> {
  const errors = daemon.org.health.pollErrors;
  await daemon.pollNow();
  expect(daemon.org.health.pollErrors, daemon.org.health.lastPollError).toBe(errors);
}

describe("consumer and stream metrics on the reference topology", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let daemon: Daemon;

  beforeAll(async () => {
    org = await startTestOrg({
      topology: { roles: ["ceo", "cto", "security"], broadcastRoles: ["ceo", "cto"] },
      prepare: async (jsm) => {
        await jsm.streams.add({ name: "AGENT_CTO_INBOX", subjects: ["genbrain.agents.cto.inbox"] });
        await jsm.consumers.add("AGENT_CTO_INBOX", {
          durable_name: "cto-inbox",
          ack_policy: AckPolicy.Explicit,
          ack_wait: 60_000 * NS_PER_MS,
          max_deliver: 5,
        });
        await jsm.streams.add({ name: "ORG_DEADLETTER", subjects: ["genbrain.org.deadletter"] });
        await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
        await jsm.consumers.add("ORDERS", {
          durable_name: "billing",
          ack_policy: AckPolicy.Explicit,
          ack_wait: 30_000 * NS_PER_MS,
        });
        // A consumer of orgwatch's own on an organization's stream: not part of the organization.
        await jsm.consumers.add("AGENT_CTO_TASKS", {
          durable_name: "orgwatch_tasks",
          ack_policy: AckPolicy.None,
        });
      },
      settings: { "consumer.status-window": WINDOW, "deadletter.route": false },
    });
    ({ nc, jsm, js, daemon } = org);
    // The first poll, before any work: every consumer's history starts empty-handed.
    await pollOk(daemon);
  });
  afterAll(() => org?.stop());

  it("exports every consumer and stream metric with exact values after a known workload", async () => {
    // CTO: 10 tasks; 4 fetched, 2 acked, 1 naked and redelivered, 1 held.
    for (let i = 1; i <= 10; i++)
      await js.publish("genbrain.agents.cto.tasks", JSON.stringify({ task_id: `t${i}` }));
    const first = await fetchN(js, "AGENT_CTO_TASKS", "cto-worker", 4);
    expect(first.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    await first[0]!.ackAck();
    await first[1]!.ackAck();
    first[2]!.nak();
    await nc.flush();
    const again = await fetchN(js, "AGENT_CTO_TASKS", "cto-worker", 1);
    expect(again.map((m) => [m.seq, m.info.deliveryCount])).toEqual([[3, 2]]);
    // Security: 3 tasks, all done.
    for (let i = 1; i <= 3; i++) await js.publish("genbrain.agents.security.tasks", `s${i}`);
    for (const m of await fetchN(js, "AGENT_SECURITY_TASKS", "security-worker", 3)) await m.ackAck();
    // CEO: nothing to do, two agents' pull requests waiting.
    // The server keeps a pull request only while someone listens on its reply subject.
    const inbox = createInbox();
    nc.subscribe(inbox);
    for (let i = 0; i < 2; i++) {
      nc.publish(
        "$JS.API.CONSUMER.MSG.NEXT.AGENT_CEO_TASKS.ceo-worker",
        JSON.stringify({ batch: 1, expires: 120_000 * NS_PER_MS }),
        { reply: inbox },
      );
    }
    await waitFor(async () => (await jsm.consumers.info("AGENT_CEO_TASKS", "ceo-worker")).num_waiting === 2, {
      what: "two waiting pulls",
    });
    // Broadcasts: two; the CEO acked both, the CTO has not fetched any.
    await js.publish("genbrain.org.broadcasts", "all hands");
    await js.publish("genbrain.org.broadcasts", "freeze");
    for (const m of await fetchN(js, "ORG_BROADCASTS", "ceo-broadcasts", 2)) await m.ackAck();
    // Inbox: one message not yet delivered. Orders: two, one in flight.
    await js.publish("genbrain.agents.cto.inbox", "hello");
    await js.publish("orders.new", "o1");
    await js.publish("orders.new", "o2");
    expect((await fetchN(js, "ORDERS", "billing", 1)).map((m) => m.seq)).toEqual([1]);

    await pollOk(daemon);
    const { m, before, after } = await timedScrape(daemon.url);
    // The cost of that poll: one stream list page, one consumer list page for each of the six
    // streams with consumers (not one request per consumer), and one message read for each of the
    // four consumers with unacknowledged work (cto-worker, cto-broadcasts, cto-inbox, billing).
    expect(daemon.org.jetstream.current!.requests).toBe(1 + 6 + 4);

    const infos = new Map<string, ConsumerInfo>();
    for (const [stream, consumer] of [
      ["AGENT_CEO_TASKS", "ceo-worker"],
      ["AGENT_CTO_TASKS", "cto-worker"],
      ["AGENT_SECURITY_TASKS", "security-worker"],
      ["ORG_BROADCASTS", "ceo-broadcasts"],
      ["ORG_BROADCASTS", "cto-broadcasts"],
      ["AGENT_CTO_INBOX", "cto-inbox"],
      ["ORDERS", "billing"],
    ] as const) {
      infos.set(`${stream}/${consumer}`, await jsm.consumers.info(stream, consumer));
    }
    const stored = {
      cto: await storedMs(jsm, "AGENT_CTO_TASKS", 3),
      ctoBroadcasts: await storedMs(jsm, "ORG_BROADCASTS", 1),
      inbox: await storedMs(jsm, "AGENT_CTO_INBOX", 1),
      billing: await storedMs(jsm, "ORDERS", 1),
    };

    type Expect = Row & {
      pending: number;
      ackPending: number;
      redelivered: number;
      waiting: number;
      delivered: number;
      floor: number;
      ackWait: number;
      maxDeliver: number;
      oldest: number | undefined;
      delivers: boolean;
      acks: boolean;
    };
    const rows: Expect[] = [
      // prettier-ignore
      { stream: "AGENT_CEO_TASKS", consumer: "ceo-worker", role: "ceo", kind: "tasks", pending: 0, ackPending: 0, redelivered: 0, waiting: 2, delivered: 0, floor: 0, ackWait: 1800, maxDeliver: 3, oldest: undefined, delivers: false, acks: false },
      // prettier-ignore
      { stream: "AGENT_CTO_TASKS", consumer: "cto-worker", role: "cto", kind: "tasks", pending: 6, ackPending: 2, redelivered: 1, waiting: 0, delivered: 4, floor: 2, ackWait: 1800, maxDeliver: 3, oldest: stored.cto, delivers: true, acks: true },
      // prettier-ignore
      { stream: "AGENT_SECURITY_TASKS", consumer: "security-worker", role: "security", kind: "tasks", pending: 0, ackPending: 0, redelivered: 0, waiting: 0, delivered: 3, floor: 3, ackWait: 1800, maxDeliver: 3, oldest: undefined, delivers: true, acks: true },
      // prettier-ignore
      { stream: "ORG_BROADCASTS", consumer: "ceo-broadcasts", role: "ceo", kind: "broadcasts", pending: 0, ackPending: 0, redelivered: 0, waiting: 0, delivered: 2, floor: 2, ackWait: 300, maxDeliver: -1, oldest: undefined, delivers: true, acks: true },
      // prettier-ignore
      { stream: "ORG_BROADCASTS", consumer: "cto-broadcasts", role: "cto", kind: "broadcasts", pending: 2, ackPending: 0, redelivered: 0, waiting: 0, delivered: 0, floor: 0, ackWait: 300, maxDeliver: -1, oldest: stored.ctoBroadcasts, delivers: false, acks: false },
      // prettier-ignore
      { stream: "AGENT_CTO_INBOX", consumer: "cto-inbox", role: "cto", kind: "inbox", pending: 1, ackPending: 0, redelivered: 0, waiting: 0, delivered: 0, floor: 0, ackWait: 60, maxDeliver: 5, oldest: stored.inbox, delivers: false, acks: false },
      // prettier-ignore
      { stream: "ORDERS", consumer: "billing", role: "", kind: "other", pending: 1, ackPending: 1, redelivered: 0, waiting: 0, delivered: 1, floor: 0, ackWait: 30, maxDeliver: -1, oldest: stored.billing, delivers: true, acks: false },
    ];
    const families: [string, (r: Expect) => number | undefined][] = [
      ["orgwatch_consumer_pending_messages", (r) => r.pending],
      ["orgwatch_consumer_ack_pending_messages", (r) => r.ackPending],
      ["orgwatch_consumer_lag_messages", (r) => r.pending + r.ackPending],
      ["orgwatch_consumer_redelivered_messages", (r) => r.redelivered],
      ["orgwatch_consumer_waiting_pulls", (r) => r.waiting],
      ["orgwatch_consumer_delivered_stream_sequence", (r) => r.delivered],
      ["orgwatch_consumer_ack_floor_stream_sequence", (r) => r.floor],
      ["orgwatch_consumer_ack_wait_seconds", (r) => r.ackWait],
      ["orgwatch_consumer_max_deliver", (r) => r.maxDeliver],
    ];
    for (const [name, value] of families) {
      expect(consumerSeries(m, name), name).toEqual(
        expectedConsumerSeries(rows.map((r) => ({ ...r, value: value(r) }))),
      );
    }

    // Server times of the last delivery and ack (nats-server 2.9.10 reports them); absent when none.
    for (const [family, field, has] of [
      ["orgwatch_consumer_last_delivery_timestamp_seconds", "delivered", (r: Expect) => r.delivers],
      ["orgwatch_consumer_last_ack_timestamp_seconds", "ack_floor", (r: Expect) => r.acks],
    ] as const) {
      const expected = rows.map((r) => {
        const info = infos.get(`${r.stream}/${r.consumer}`)!;
        const seconds = lastActiveSeconds(info[field]);
        if (has(r)) {
          expect(seconds, `${family} ${r.consumer}`).toBeGreaterThan(before / 1000 - 60);
          expect(seconds).toBeLessThanOrEqual(after / 1000 + 1);
        } else expect(seconds).toBeUndefined();
        return { ...r, value: seconds };
      });
      expect(consumerSeries(m, family), family).toEqual(expectedConsumerSeries(expected));
    }

    // The oldest unacknowledged message: exactly its stored time in the model, its age at scrape time.
    for (const r of rows) {
      const c = daemon.org.jetstream.current!.consumers.get(`${r.stream}/${r.consumer}`)!;
      expect(c.oldestUnackedMs, r.consumer).toBe(r.oldest);
      const labels = { stream: r.stream, consumer: r.consumer, role: r.role, kind: r.kind };
      expectAge(m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels), r.oldest, { before, after });
    }
    expect(m.series("orgwatch_consumer_oldest_unacked_age_seconds")).toHaveLength(rows.length);
    expect(
      daemon.org.jetstream.current!.consumers.get("AGENT_CTO_TASKS/cto-worker")!.oldestUnackedSequence,
    ).toBe(3);

    // Status, one-hot. Over the two polls, the CTO's lag went from 0 to 8 while its acks advanced:
    // working, not keeping up. Everything else is fine (the CTO's broadcasts wait for minutes yet).
    const statuses = m.series("orgwatch_consumer_status");
    expect(statuses).toHaveLength(rows.length * 4);
    for (const r of rows) {
      const labels = { stream: r.stream, consumer: r.consumer, role: r.role, kind: r.kind };
      const expected = r.consumer === "cto-worker" ? "lagging" : "ok";
      for (const status of ["ok", "lagging", "stalled", "stopped"]) {
        expect(m.value("orgwatch_consumer_status", { ...labels, status }), `${r.consumer} ${status}`).toBe(
          status === expected ? 1 : 0,
        );
      }
    }

    // Streams.
    const streamRows = [
      { stream: "AGENT_CEO_TASKS", role: "ceo", kind: "tasks", messages: 0, last: 0, consumers: 1 },
      { stream: "AGENT_CTO_TASKS", role: "cto", kind: "tasks", messages: 10, last: 10, consumers: 1 },
      { stream: "AGENT_SECURITY_TASKS", role: "security", kind: "tasks", messages: 3, last: 3, consumers: 1 },
      { stream: "ORG_BROADCASTS", role: "", kind: "broadcasts", messages: 2, last: 2, consumers: 2 },
      { stream: "AGENT_CTO_INBOX", role: "cto", kind: "inbox", messages: 1, last: 1, consumers: 1 },
      { stream: "ORDERS", role: "", kind: "other", messages: 2, last: 2, consumers: 1 },
      { stream: "ORG_DEADLETTER", role: "", kind: "deadletter", messages: 0, last: 0, consumers: 0 },
    ];
    const bytes = new Map<string, number>();
    for (const s of streamRows) bytes.set(s.stream, (await jsm.streams.info(s.stream)).state.bytes);
    for (const [name, value] of [
      ["orgwatch_stream_messages", (s: (typeof streamRows)[number]) => s.messages],
      ["orgwatch_stream_last_sequence", (s: (typeof streamRows)[number]) => s.last],
      ["orgwatch_stream_consumers", (s: (typeof streamRows)[number]) => s.consumers],
      ["orgwatch_stream_bytes", (s: (typeof streamRows)[number]) => bytes.get(s.stream)!],
    ] as const) {
      expect(streamSeries(m, name), name).toEqual(
        streamRows.map((s) => `${s.stream} ${s.role}|${s.kind} = ${value(s)}`).sort(),
      );
    }
    expect(bytes.get("AGENT_CTO_TASKS")).toBeGreaterThan(0);
    expect(bytes.get("ORG_DEADLETTER")).toBe(0);

    // The exporter's own view of the poll.
    expect(m.value("orgwatch_poll_errors_total")).toBe(0);
    expect(m.value("orgwatch_last_poll_success_timestamp_seconds")).toBeLessThanOrEqual(after / 1000);
    expect(m.value("orgwatch_last_poll_success_timestamp_seconds")).toBeGreaterThan(before / 1000 - 30);
    expect(m.value("orgwatch_poll_duration_seconds")).toBeGreaterThan(0);
  });

  it("ages the oldest unacknowledged message between scrapes without a new poll", async () => {
    const stored = await storedMs(jsm, "AGENT_CTO_TASKS", 3);
    const labels = { stream: "AGENT_CTO_TASKS", consumer: "cto-worker" };
    // A poll that finds the same ack floors reads no message again.
    await pollOk(daemon);
    expect(daemon.org.jetstream.current!.requests).toBe(1 + 6);
    const a = await timedScrape(daemon.url);
    await waitFor(() => Date.now() - a.after > 20, { what: "time to pass" });
    const b = await timedScrape(daemon.url);
    const ageA = a.m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)!;
    const ageB = b.m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)!;
    expectAge(ageA, stored, a);
    expectAge(ageB, stored, b);
    expect(ageB).toBeGreaterThan(ageA);
  });

  it("shows the last poll's values until the next poll", async () => {
    await pollOk(daemon);
    const one = (await scrape(daemon.url)).text;
    // A change on the server is not seen until the next poll.
    await js.publish("genbrain.agents.ceo.tasks", "not yet polled");
    await waitFor(async () => (await jsm.streams.info("AGENT_CEO_TASKS")).state.messages === 1);
    const two = (await scrape(daemon.url)).text;
    const fixed = (text: string) => text.split("\n").filter((l) => l.startsWith("orgwatch_stream_"));
    expect(fixed(two)).toEqual(fixed(one));
    await pollOk(daemon);
    const three = await scrape(daemon.url);
    expect(three.value("orgwatch_stream_messages", { stream: "AGENT_CEO_TASKS" })).toBe(1);
    // The same families in OpenMetrics, before its closing `# EOF`.
    const res = await fetch(daemon.url + "/metrics", { headers: { Accept: "application/openmetrics-text" } });
    expect(res.headers.get("content-type")).toMatch(/^application\/openmetrics-text/);
    const om = await res.text();
    expect(om.endsWith("\n# EOF\n")).toBe(true);
    expect(om.match(/^# EOF$/gm)).toHaveLength(1);
    expect(om).toContain('orgwatch_stream_messages{stream="AGENT_CEO_TASKS",role="ceo",kind="tasks"} 1\n');
  });

  it("gzips when asked: the same exposition, the part fixed until the next poll compressed once", async () => {
    await pollOk(daemon);
    const get = (encoding: string) =>
      new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        httpGet(`${daemon.url}/metrics`, { headers: { "Accept-Encoding": encoding } }, (res) => {
          const parts: Buffer[] = [];
          res.on("data", (d: Buffer) => parts.push(d));
          res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
        }).on("error", reject);
      });
    const plain = await get("identity");
    const zipped = await get("gzip, deflate");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers["vary"]).toBe("Accept-Encoding");
    expect(Number(zipped.headers["content-length"])).toBe(zipped.body.length);
    expect(zipped.body.length).toBeLessThan(plain.body.length / 3);
    // Several gzip members (what changes per scrape, and the poll's fixed part as encoded once).
    const members = (b: Buffer) => b.toString("latin1").split("\x1f\x8b\x08").length - 1;
    expect(members(zipped.body)).toBeGreaterThanOrEqual(2);
    // The same lines, but for what moves with time between the two scrapes.
    const moving = /^orgwatch_(\w+_age_seconds|process_|nodejs_|scrape_|agent_)/;
    const lines = (text: string) =>
      text
        .split("\n")
        .filter((l) => !moving.test(l) && !l.startsWith("#"))
        .sort();
    expect(lines(gunzipSync(zipped.body).toString("utf8"))).toEqual(lines(plain.body.toString("utf8")));
  });

  it("evaluates a consumer stalled once its ack floor is stuck past the ack wait, and ok once acked", async () => {
    const ackWaitMs = 1500;
    await createReferenceTopology(jsm, { roles: ["qa"], broadcastRoles: [], ackWaitMs });
    await js.publish("genbrain.agents.qa.tasks", "hard task");
    const [held] = await fetchN(js, "AGENT_QA_TASKS", "qa-worker", 1);
    const fetchedAt = Date.now();
    await pollOk(daemon);
    // The floor has been stuck for less than the ack wait: in flight, fine.
    if (Date.now() - fetchedAt < ackWaitMs) {
      expect(statusOf(await scrape(daemon.url), "AGENT_QA_TASKS", "qa-worker")).toEqual(["ok"]);
    }
    await waitFor(
      async () => {
        await pollOk(daemon);
        return statusOf(await scrape(daemon.url), "AGENT_QA_TASKS", "qa-worker")[0] === "stalled";
      },
      { what: "qa-worker stalled", intervalMs: 200 },
    );
    expect(Date.now() - fetchedAt).toBeGreaterThan(ackWaitMs);
    const m = await scrape(daemon.url);
    expect(statusOf(m, "AGENT_QA_TASKS", "qa-worker")).toEqual(["stalled"]);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "qa-worker" })).toBe(1);
    expect(m.value("orgwatch_consumer_ack_wait_seconds", { consumer: "qa-worker" })).toBe(1.5);
    // The agent finally acknowledges: the floor moves, nothing waits.
    await held!.ackAck();
    await pollOk(daemon);
    expect(statusOf(await scrape(daemon.url), "AGENT_QA_TASKS", "qa-worker")).toEqual(["ok"]);
  });

  it("evaluates a consumer nobody reads as stopped after a window of polls", async () => {
    await createReferenceTopology(jsm, { roles: ["ops"], broadcastRoles: [] });
    await js.publish("genbrain.agents.ops.tasks", "a");
    await js.publish("genbrain.agents.ops.tasks", "b");
    const seen: string[] = [];
    for (let i = 0; i < WINDOW; i++) {
      await pollOk(daemon);
      seen.push(...statusOf(await scrape(daemon.url), "AGENT_OPS_TASKS", "ops-worker"));
    }
    expect(seen).toEqual(["ok", "ok", "stopped"]);
    // An agent comes back and works one off: deliveries and acks again, lag shrinking.
    for (const m of await fetchN(js, "AGENT_OPS_TASKS", "ops-worker", 1)) await m.ackAck();
    await pollOk(daemon);
    expect(statusOf(await scrape(daemon.url), "AGENT_OPS_TASKS", "ops-worker")).toEqual(["ok"]);
  });

  it("evaluates a consumer whose acks advance while its lag does not shrink as lagging", async () => {
    await createReferenceTopology(jsm, { roles: ["dev"], broadcastRoles: [] });
    await js.publish("genbrain.agents.dev.tasks", "1");
    await js.publish("genbrain.agents.dev.tasks", "2");
    await pollOk(daemon);
    for (const m of await fetchN(js, "AGENT_DEV_TASKS", "dev-worker", 1)) await m.ackAck();
    await js.publish("genbrain.agents.dev.tasks", "3");
    await js.publish("genbrain.agents.dev.tasks", "4");
    await pollOk(daemon);
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "dev-worker" })).toBe(3);
    expect(statusOf(m, "AGENT_DEV_TASKS", "dev-worker")).toEqual(["lagging"]);
    for (const msg of await fetchN(js, "AGENT_DEV_TASKS", "dev-worker", 3)) await msg.ackAck();
    await pollOk(daemon);
    expect(statusOf(await scrape(daemon.url), "AGENT_DEV_TASKS", "dev-worker")).toEqual(["ok"]);
  });

  it("calls healthy a consumer whose only unacknowledged message is dead (nats-server 2.9 keeps its floor)", async () => {
    const ackWaitMs = 500;
    await createReferenceTopology(jsm, { roles: ["dl"], broadcastRoles: [], ackWaitMs, maxDeliver: 2 });
    await js.publish("genbrain.agents.dl.tasks", "poison");
    // Two deliveries, never acknowledged; then a pull after the ack wait lets the server give up.
    let deliveries = 0;
    await waitFor(
      async () => {
        deliveries += (await fetchN(js, "AGENT_DL_TASKS", "dl-worker", 1)).length;
        return deliveries === 2;
      },
      { what: "two deliveries" },
    );
    const info = await waitFor(
      async () => {
        await fetchN(js, "AGENT_DL_TASKS", "dl-worker", 1);
        const ci = await jsm.consumers.info("AGENT_DL_TASKS", "dl-worker");
        return ci.num_ack_pending === 0 ? ci : undefined;
      },
      { what: "the server to give up the message" },
    );
    // orgwatch learns of the dead letter from its max-deliveries advisory.
    await waitFor(() => advisoriesDrained(jsm), { what: "the dead letter handled" });
    await pollOk(daemon);
    const when = await timedScrape(daemon.url);
    const labels = { stream: "AGENT_DL_TASKS", consumer: "dl-worker" };
    expect(when.m.value("orgwatch_consumer_lag_messages", labels)).toBe(0);
    expect(when.m.value("orgwatch_consumer_delivered_stream_sequence", labels)).toBe(1);
    if (info.ack_floor.stream_seq < info.delivered.stream_seq) {
      // 2.9: lag 0 but the floor stays below the dead message until a later message is acked.
      // orgwatch knows that message is dead: nothing live waits, the consumer is healthy.
      expect(when.m.value("orgwatch_consumer_ack_floor_stream_sequence", labels)).toBe(0);
      expect(when.m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)).toBe(0);
      expect(when.m.value("orgwatch_consumer_redelivered_messages", labels)).toBe(0);
      expect(statusOf(when.m, "AGENT_DL_TASKS", "dl-worker")).toEqual(["ok"]);
      // A later message acknowledged moves the floor past it: healthy again.
      await js.publish("genbrain.agents.dl.tasks", "fine");
      for (const msg of await fetchN(js, "AGENT_DL_TASKS", "dl-worker", 1)) await msg.ackAck();
      await pollOk(daemon);
      const later = await scrape(daemon.url);
      expect(later.value("orgwatch_consumer_ack_floor_stream_sequence", labels)).toBe(2);
      expect(later.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)).toBe(0);
      expect(statusOf(later, "AGENT_DL_TASKS", "dl-worker")).toEqual(["ok"]);
    } else {
      // Newer servers move the floor past a message they gave up on.
      expect(statusOf(when.m, "AGENT_DL_TASKS", "dl-worker")).toEqual(["ok"]);
    }
  });

  it("removes the series of consumers and streams that disappear", async () => {
    await pollOk(daemon);
    let m = await scrape(daemon.url);
    expect(m.series("orgwatch_consumer_lag_messages", { consumer: "billing" })).toHaveLength(1);
    expect(m.series("orgwatch_consumer_lag_messages", { stream: "AGENT_QA_TASKS" })).toHaveLength(1);
    await jsm.consumers.delete("ORDERS", "billing");
    await jsm.streams.delete("AGENT_QA_TASKS");
    await pollOk(daemon);
    m = await scrape(daemon.url);
    const names = [
      ...new Set(
        m.text
          .split("\n")
          .filter((l) => !l.startsWith("#") && l !== "")
          .map((l) => l.split("{")[0]!),
      ),
    ];
    for (const name of names.filter((n) => n.startsWith("orgwatch_consumer_") && !n.endsWith("_total"))) {
      expect(m.series(name, { consumer: "billing" }), name).toEqual([]);
      expect(m.series(name, { stream: "AGENT_QA_TASKS" }), name).toEqual([]);
    }
    for (const name of names.filter((n) => n.startsWith("orgwatch_stream_"))) {
      expect(m.series(name, { stream: "AGENT_QA_TASKS" }), name).toEqual([]);
    }
    // The stream that lost its consumer is still there, with no consumer.
    expect(m.value("orgwatch_stream_consumers", { stream: "ORDERS" })).toBe(0);
    expect(m.value("orgwatch_stream_messages", { stream: "ORDERS" })).toBe(2);
    // Others are untouched.
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(8);
  });
});

describe("a stream holding several roles' tasks", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let daemon: Daemon;

  beforeAll(async () => {
    org = await startTestOrg({
      prepare: async (jsm, js) => {
        // Direct get on: the oldest unacknowledged messages are read with direct gets.
        await jsm.streams.add({
          name: "TEAM_TASKS",
          subjects: ["genbrain.agents.*.tasks"],
          allow_direct: true,
        });
        for (const role of ["ceo", "cto"]) {
          await jsm.consumers.add("TEAM_TASKS", {
            durable_name: `worker-${role}`,
            ack_policy: AckPolicy.Explicit,
            filter_subject: `genbrain.agents.${role}.tasks`,
          });
        }
        await jsm.consumers.add("TEAM_TASKS", { durable_name: "auditor", ack_policy: AckPolicy.Explicit });
        await jsm.streams.add({ name: "ORG_BROADCASTS", subjects: ["genbrain.org.broadcasts"] });
        await jsm.consumers.add("ORG_BROADCASTS", {
          durable_name: "bc-head-of-qa",
          ack_policy: AckPolicy.Explicit,
        });
        await jsm.consumers.add("ORG_BROADCASTS", {
          durable_name: "cto-broadcasts",
          ack_policy: AckPolicy.Explicit,
        });
        await js.publish("genbrain.agents.ceo.tasks", "c1");
        await js.publish("genbrain.agents.cto.tasks", "t1");
        await js.publish("genbrain.agents.cto.tasks", "t2");
      },
      settings: { "broadcast.role-pattern": "^bc-(.+)$" },
    });
    ({ nc, daemon } = org);
  });
  afterAll(() => org?.stop());

  it("takes each consumer's role from its filter subject, and broadcast roles from the configured pattern", async () => {
    await pollOk(daemon);
    const m = await scrape(daemon.url);
    expect(consumerSeries(m, "orgwatch_consumer_pending_messages")).toEqual(
      [
        "TEAM_TASKS/worker-ceo ceo|tasks = 1",
        "TEAM_TASKS/worker-cto cto|tasks = 2",
        "TEAM_TASKS/auditor |tasks = 3",
        "ORG_BROADCASTS/bc-head-of-qa head-of-qa|broadcasts = 0",
        "ORG_BROADCASTS/cto-broadcasts |broadcasts = 0",
      ].sort(),
    );
    expect(streamSeries(m, "orgwatch_stream_messages")).toEqual([
      "ORG_BROADCASTS |broadcasts = 0",
      "TEAM_TASKS |tasks = 3",
    ]);
    // The oldest unacknowledged message is the first after the floor on the consumer's own filter.
    const consumers = daemon.org.jetstream.current!.consumers;
    expect(consumers.get("TEAM_TASKS/worker-ceo")!.oldestUnackedSequence).toBe(1);
    expect(consumers.get("TEAM_TASKS/worker-cto")!.oldestUnackedSequence).toBe(2);
    expect(consumers.get("TEAM_TASKS/auditor")!.oldestUnackedSequence).toBe(1);
    expect(daemon.org.jetstream.current!.streams.get("TEAM_TASKS")!.allowDirect).toBe(true);
    const jsm = await jetstreamManager(nc);
    for (const [consumer, seq] of [
      ["worker-ceo", 1],
      ["worker-cto", 2],
    ] as const) {
      expect(consumers.get(`TEAM_TASKS/${consumer}`)!.oldestUnackedMs).toBe(
        await storedMs(jsm, "TEAM_TASKS", seq),
      );
    }
  });
});

describe("paged lists", () => {
  let org: TestOrg;
  let daemon: Daemon;
  const STREAMS = 300;
  const CONSUMERS = 300;

  beforeAll(async () => {
    org = await startTestOrg({
      prepare: async (jsm, js) => {
        // More than one page (256) of streams, and of consumers on one stream.
        const creations: Promise<unknown>[] = [];
        for (let i = 0; i < STREAMS; i++) {
          creations.push(
            jsm.streams.add({ name: `BULK_${i}`, subjects: [`bulk.${i}`], storage: StorageType.Memory }),
          );
        }
        await Promise.all(creations);
        await Promise.all(
          Array.from({ length: CONSUMERS }, (_, i) =>
            jsm.consumers.add("BULK_0", { durable_name: `c${i}`, ack_policy: AckPolicy.Explicit }),
          ),
        );
        await js.publish("bulk.0", "one");
      },
    });
    ({ daemon } = org);
  });
  afterAll(() => org?.stop());

  it("reads every page of streams and consumers", async () => {
    await pollOk(daemon);
    const poll = daemon.org.jetstream.current!;
    expect(poll.streams.size).toBe(STREAMS);
    expect(poll.consumers.size).toBe(CONSUMERS);
    // The message all 300 consumers wait for is read once.
    await pollOk(daemon);
    expect(daemon.org.jetstream.current!.requests).toBe(2 + 2);
    const m = await scrape(daemon.url);
    expect(m.series("orgwatch_stream_messages")).toHaveLength(STREAMS);
    expect(m.series("orgwatch_consumer_pending_messages", { stream: "BULK_0" }).map((s) => s.value)).toEqual(
      Array<number>(CONSUMERS).fill(1),
    );
    expect(m.value("orgwatch_stream_consumers", { stream: "BULK_0" })).toBe(CONSUMERS);
  });
});
