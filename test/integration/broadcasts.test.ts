// Broadcast acknowledgements on a real nats-server. Three agents with a consumer on the broadcasts
// stream — ceo acks everything, cto acks some (out of order), security acks nothing — and qa, an
// agent of the roster (it has a task stream) with no broadcast consumer. A fourth consumer, dev's,
// has ack sampling on: its publish → ack times are the sampled acks' exact times. Every value is checked
// against the stored times of the broadcasts and the consumers' own state.
//
// What is counted with out-of-order acks: a broadcast counts as acknowledged by an agent when the
// agent's ack floor passes it (never before, never twice); the unacked gauge is the server's
// pending + ack pending, so a broadcast acked ahead of an earlier one is not unacked.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Daemon } from "../../src/daemon.js";
import type { AckObservation } from "../../src/model/broadcasts.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";

const STREAM = "ORG_BROADCASTS";
const BROADCASTS = 5;
const NS_PER_MS = 1_000_000;

describe("broadcast acknowledgements", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let daemon: Daemon;
  /** Stored time (epoch ms) by stream sequence, as the server keeps it. */
  const stored = new Map<number, number>();
  const delivered = new Map<string, JsMsg[]>();

  async function fetchAll(role: string): Promise<JsMsg[]> {
    const consumer = await js.consumers.get(STREAM, `${role}-broadcasts`);
    const msgs: JsMsg[] = [];
    const batch = await consumer.fetch({ max_messages: BROADCASTS, expires: 2000 });
    for await (const m of batch) {
      msgs.push(m);
      if (msgs.length === BROADCASTS) break;
    }
    expect(msgs.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    return msgs;
  }

  /** The consumer's last ack time as the server reports it: the ack time used where no sample says better. */
  async function lastAckMs(role: string): Promise<number> {
    const info = await jsm.consumers.info(STREAM, `${role}-broadcasts`);
    return Date.parse(info.ack_floor.last_active as unknown as string);
  }

  const ackHistogram = (m: Scrape, role: string) => m.histogram("orgwatch_broadcast_ack_seconds", { role });
  /** Seconds from each broadcast's stored time to `ackedMs`. */
  const ackSeconds = (seqs: number[], ackedMs: number) =>
    seqs.map((seq) => Math.max(0, ackedMs - stored.get(seq)!) / 1000);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  /** Polls once, waits until what the ack floors passed is observed, then checks the histogram counts. */
  async function pollAndScrape(counts: Record<string, number>): Promise<Scrape> {
    await daemon.pollNow();
    await waitFor(() => !daemon.org.broadcasts.observing, { what: "ack observations" });
    const m = await scrape(daemon.url);
    for (const [role, n] of Object.entries(counts)) expect(ackHistogram(m, role)?.count, role).toBe(n);
    return m;
  }

  beforeAll(async () => {
    org = await startTestOrg({
      topology: {
        roles: ["ceo", "cto", "security", "qa", "dev"],
        broadcastRoles: ["ceo", "cto", "security"],
      },
      prepare: async (jsm) => {
        await jsm.consumers.add(STREAM, {
          durable_name: "dev-broadcasts",
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: 5 * 60_000 * NS_PER_MS,
          sample_freq: "100%",
        });
      },
      // The baseline: what each consumer had acked before orgwatch watched is not observed.
      firstPoll: true,
    });
    ({ nc, jsm, js, daemon } = org);
  });
  afterAll(() => org?.stop());

  it("before any broadcast: nothing unacked, empty histograms, qa's consumer missing", async () => {
    const m = await scrape(daemon.url);
    for (const role of ["ceo", "cto", "security"]) {
      const labels = { role, consumer: `${role}-broadcasts` };
      expect(m.value("orgwatch_broadcast_unacked_messages", labels), role).toBe(0);
      expect(m.value("orgwatch_broadcast_oldest_unacked_age_seconds", labels), role).toBe(0);
      expect(ackHistogram(m, role)?.count, role).toBe(0);
      expect(m.value("orgwatch_broadcast_consumer_missing", { role }), role).toBe(0);
    }
    expect(m.value("orgwatch_broadcast_consumer_missing", { role: "qa" })).toBe(1);
    expect(m.series("orgwatch_broadcast_consumer_missing")).toHaveLength(5);
    expect(m.series("orgwatch_broadcast_unacked_messages")).toHaveLength(4);
  });

  it("counts unacked broadcasts, ages from stored times, and observes acks as floors pass them", async () => {
    for (let i = 1; i <= BROADCASTS; i++) {
      const ack = await js.publish("genbrain.org.broadcasts", JSON.stringify({ n: i }));
      expect(ack.seq).toBe(i);
      const msg = await jsm.streams.getMessage(STREAM, { seq: i });
      stored.set(i, msg!.time.getTime());
    }
    // ceo acks everything; cto acks 1, 2 and 4 (4 ahead of 3); security fetches nothing.
    const ceo = await fetchAll("ceo");
    for (const m of ceo) await m.ackAck();
    const cto = await fetchAll("cto");
    delivered.set("cto", cto);
    for (const i of [0, 1, 3]) await cto[i]!.ackAck();
    const ceoAckedMs = await lastAckMs("ceo");
    const ctoAckedMs = await lastAckMs("cto");

    const before = Date.now();
    const m = await pollAndScrape({ ceo: BROADCASTS, cto: 2, security: 0, dev: 0 });
    const after = Date.now();
    const unacked = (role: string) =>
      m.value("orgwatch_broadcast_unacked_messages", { role, consumer: `${role}-broadcasts` });
    const age = (role: string) =>
      m.value("orgwatch_broadcast_oldest_unacked_age_seconds", { role, consumer: `${role}-broadcasts` })!;
    expect(unacked("ceo")).toBe(0);
    expect(unacked("cto")).toBe(2); // 3 and 5; 4 is acked though the floor is below it
    expect(unacked("security")).toBe(BROADCASTS);

    // Oldest unacked: cto's is broadcast 3, security's broadcast 1, from their stored times.
    const model = new Map(daemon.org.broadcasts.consumers.map((c) => [c.role, c]));
    expect(model.get("cto")!.oldestUnackedMs).toBe(stored.get(3));
    expect(model.get("security")!.oldestUnackedMs).toBe(stored.get(1));
    expect(age("ceo")).toBe(0);
    for (const [role, seq] of [
      ["cto", 3],
      ["security", 1],
    ] as const) {
      expect(age(role), role).toBeGreaterThanOrEqual((before - stored.get(seq)!) / 1000);
      expect(age(role), role).toBeLessThanOrEqual((after - stored.get(seq)!) / 1000);
    }

    // Publish → ack: one observation per broadcast the floor passed, ack time the consumer's last ack.
    const ceoHist = ackHistogram(m, "ceo")!;
    expect(ceoHist.count).toBe(BROADCASTS);
    expect(ceoHist.sum).toBeCloseTo(sum(ackSeconds([1, 2, 3, 4, 5], ceoAckedMs)), 6);
    expect(ceoHist.buckets["+Inf"]).toBe(BROADCASTS);
    const ctoHist = ackHistogram(m, "cto")!;
    expect(ctoHist.count).toBe(2);
    expect(ctoHist.sum).toBeCloseTo(sum(ackSeconds([1, 2], ctoAckedMs)), 6);
    expect(ackHistogram(m, "security")!.count).toBe(0);
    // Buckets hold exactly the observations at or under their bound.
    const ceoObserved = ackSeconds([1, 2, 3, 4, 5], ceoAckedMs);
    for (const [le, n] of Object.entries(ceoHist.buckets)) {
      if (le === "+Inf") continue;
      expect(n, `le=${le}`).toBe(ceoObserved.filter((s) => s <= Number(le)).length);
    }

    expect(m.value("orgwatch_broadcast_consumer_missing", { role: "qa" })).toBe(1);
    expect(m.value("orgwatch_broadcast_consumer_missing", { role: "security" })).toBe(0);
  });

  it("counts an out-of-order ack once, when the floor passes it", async () => {
    // Another poll with nothing new: nothing observed twice.
    const again = await pollAndScrape({ ceo: BROADCASTS, cto: 2, security: 0 });
    const ctoSumBefore = ackHistogram(again, "cto")!.sum;

    // cto acks 3: its floor jumps past 3 and the already-acked 4.
    await delivered.get("cto")![2]!.ackAck();
    const ctoAckedMs = await lastAckMs("cto");
    const m = await pollAndScrape({ ceo: BROADCASTS, cto: 4, security: 0 });
    expect(ackHistogram(m, "cto")!.sum - ctoSumBefore).toBeCloseTo(sum(ackSeconds([3, 4], ctoAckedMs)), 6);
    expect(m.value("orgwatch_broadcast_unacked_messages", { role: "cto", consumer: "cto-broadcasts" })).toBe(
      1,
    );
    expect(daemon.org.broadcasts.consumers.find((c) => c.role === "cto")!.oldestUnackedMs).toBe(
      stored.get(5),
    );

    // Nothing moved: still 4, and security still has all five waiting since broadcast 1.
    const last = await pollAndScrape({ ceo: BROADCASTS, cto: 4, security: 0 });
    expect(ackHistogram(last, "cto")!.count).toBe(4);
    expect(
      last.value("orgwatch_broadcast_unacked_messages", {
        role: "security",
        consumer: "security-broadcasts",
      }),
    ).toBe(BROADCASTS);
    expect(daemon.org.broadcasts.consumers.find((c) => c.role === "security")!.oldestUnackedMs).toBe(
      stored.get(1),
    );
  });

  it("takes exact ack times from sampled acks, out of order included", async () => {
    const samples = new Map<number, number>();
    const sub = nc.subscribe(`$JS.EVENT.METRIC.CONSUMER.ACK.${STREAM}.dev-broadcasts`, {
      callback: (_err, msg) => {
        const doc = msg.json<{ stream_seq: number; timestamp: string }>();
        samples.set(doc.stream_seq, Date.parse(doc.timestamp));
      },
    });
    await nc.flush();
    const dev = await fetchAll("dev");
    // 2 before 1: the floor passes both only once 1 is acked; 3 after; 4 and 5 never.
    for (const i of [1, 0, 2]) await dev[i]!.ackAck();
    await waitFor(() => samples.size === 3, { what: "our copies of the ack samples" });
    sub.unsubscribe();
    await waitFor(() => daemon.org.broadcasts.pendingSamples === 3, { what: "orgwatch to hold 3 samples" });

    const observed: AckObservation[] = [];
    const onAcked = (o: AckObservation) => observed.push(o);
    daemon.org.broadcasts.on("acked", onAcked);
    const m = await pollAndScrape({ ceo: BROADCASTS, cto: 4, security: 0, dev: 3 });
    daemon.org.broadcasts.off("acked", onAcked);
    expect(observed.map((o) => [o.role, o.streamSequence, o.exact])).toEqual([
      ["dev", 1, true],
      ["dev", 2, true],
      ["dev", 3, true],
    ]);
    const exact = [1, 2, 3].map((seq) => (samples.get(seq)! - stored.get(seq)!) / 1000);
    expect(ackHistogram(m, "dev")!.sum).toBeCloseTo(sum(exact), 6);
    expect(daemon.org.broadcasts.pendingSamples).toBe(0);
    expect(m.value("orgwatch_broadcast_unacked_messages", { role: "dev", consumer: "dev-broadcasts" })).toBe(
      2,
    );
  });
});
