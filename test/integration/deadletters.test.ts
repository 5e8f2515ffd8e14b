// Dead letters on a real nats-server: routing exactly once with the original payload and headers,
// counters, naks and terms, ack sampling, a message already gone, a core dead-letter subject.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";
import {
  advisoriesDrained,
  createPoisonableConsumer,
  failEverything,
  readStream,
  streamMessages,
} from "../helpers/poison.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A nats-server of the suite's own and a client of it: started before the suite's tests, stopped after. */
function natsPerSuite() {
  const nats = {} as {
    server: NatsServerProcess;
    nc: NatsConnection;
    jsm: JetStreamManager;
    js: JetStreamClient;
  };
  beforeAll(async () => {
    nats.server = await startNatsServer();
    nats.nc = await connect({ servers: nats.server.url });
    nats.jsm = await jetstreamManager(nats.nc);
    nats.js = jetstream(nats.nc);
  });
  afterAll(async () => {
    await nats.nc?.close();
    await nats.server?.stop();
  });
  return nats;
}

describe("dead letters routed to a dead-letter stream", () => {
  const nats = natsPerSuite();
  let daemon: Daemon;

  beforeAll(async () => {
    await nats.jsm.streams.add({ name: "DEADLETTER", subjects: ["genbrain.org.deadletter"] });
    daemon = await startTestDaemon(nats.server.url, { "advisories.ack-wait": 2_000 });
    await daemon.started;
  });
  // After hooks run last-registered first: the daemon stops before its server.
  afterAll(async () => {
    await daemon?.stop();
  });

  it("routes a poison message exactly once, with its payload and traceparent, and counts it once", async () => {
    const { stream, subject } = await createPoisonableConsumer(nats.jsm, { role: "cto", consumer: "cto" });
    // A healthy consumer elsewhere: its dead-letter counter must exist at 0.
    await createPoisonableConsumer(nats.jsm, { role: "qa", consumer: "qa" });
    const h = headers();
    h.set("traceparent", TRACEPARENT);
    h.set("Nats-Msg-Id", "task-1847");
    const payload = JSON.stringify({ task_id: "task-1847", type: "feature_implementation" });
    const pub = await nats.js.publish(subject, enc.encode(payload), { headers: h });

    const deliveries = await failEverything(
      nats.js,
      stream,
      "cto",
      async () => (await streamMessages(nats.jsm, "DEADLETTER")) >= 1,
    );
    expect(deliveries.get(pub.seq)).toHaveLength(3);
    // Keep pulling (on 2.9 every pull is a chance for another advisory) until orgwatch has handled
    // every advisory captured, then look: still one.
    await failEverything(nats.js, stream, "cto", () => advisoriesDrained(nats.jsm));

    const letters = await readStream(nats.jsm, "DEADLETTER");
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(dec.decode(letter.data)).toBe(payload);
    expect(letter.header.get("traceparent")).toBe(TRACEPARENT);
    expect(letter.header.get("Orgwatch-Source-Stream")).toBe(stream);
    expect(letter.header.get("Orgwatch-Source-Consumer")).toBe("cto");
    expect(letter.header.get("Orgwatch-Source-Sequence")).toBe(String(pub.seq));
    expect(letter.header.get("Orgwatch-Deliveries")).toBe("3");
    expect(letter.header.get("Orgwatch-Source-Subject")).toBe(subject);
    expect(letter.header.get("Orgwatch-Source-Msg-Id")).toBe("task-1847");
    expect(Date.parse(letter.header.get("Orgwatch-Deadletter-Time"))).toBeGreaterThan(0);
    expect(letter.header.get("Nats-Msg-Id")).toMatch(/^orgwatch-dl:AGENT_CTO_TASKS:cto:1:t\d+$/);

    await daemon.pollNow();
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_deadletter_messages_total", { stream, consumer: "cto", role: "cto" })).toBe(1);
    expect(
      m.value("orgwatch_deadletter_messages_total", { stream: "AGENT_QA_TASKS", consumer: "qa", role: "qa" }),
    ).toBe(0);
    // orgwatch's own streams are not the organization's consumers.
    expect(m.series("orgwatch_deadletter_messages_total", { stream: "ORGWATCH_ADVISORIES" })).toEqual([]);
  });

  it("describes only live work after a dead letter: status ok, redelivered 0 (2.9 keeps both stuck)", async () => {
    const labels = { stream: "AGENT_CTO_TASKS", consumer: "cto" };
    // Within two polls of the dead letter being handled, once the server itself no longer counts
    // the message as waiting for its ack. Under load a 2.9 server was seen still counting it 15 s
    // after its advisory with nobody pulling: the agent keeps pulling (and failing) meanwhile, as a
    // real one would, since on 2.9 a pull is what lets the server give a message up.
    let serverLag = "";
    await failEverything(
      nats.js,
      "AGENT_CTO_TASKS",
      "cto",
      async () => {
        const ci = await nats.jsm.consumers.info("AGENT_CTO_TASKS", "cto");
        serverLag = `num_pending ${ci.num_pending}, num_ack_pending ${ci.num_ack_pending}, redelivered ${ci.num_redelivered}`;
        return ci.num_pending + ci.num_ack_pending === 0 && (await advisoriesDrained(nats.jsm));
      },
      { timeoutMs: 30_000 },
    ).catch((err: unknown) => {
      throw new Error(`the server's own lag of cto not at 0 (${serverLag}): ${String(err)}`);
    });
    await daemon.pollNow();
    await daemon.pollNow();
    const m = await scrape(daemon.url);
    const info = await nats.jsm.consumers.info("AGENT_CTO_TASKS", "cto");
    expect(m.value("orgwatch_consumer_status", { ...labels, status: "ok" })).toBe(1);
    expect(m.value("orgwatch_consumer_redelivered_messages", labels)).toBe(0);
    expect(m.value("orgwatch_consumer_lag_messages", labels)).toBe(0);
    expect(m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)).toBe(0);
    // The server's own counters (2.9.10): the dead message still counted as redelivered, the floor
    // below it; orgwatch reports the raw floor as it is.
    expect(m.value("orgwatch_consumer_ack_floor_stream_sequence", labels)).toBe(info.ack_floor.stream_seq);
    if (nats.nc.info?.version.startsWith("2.9.")) {
      expect(info.num_redelivered).toBe(1);
      expect(info.ack_floor.stream_seq).toBe(0);
    }
  });

  it("routes a small record of a message already gone from its stream, and counts it", async () => {
    const { stream, subject } = await createPoisonableConsumer(nats.jsm, { role: "ops", consumer: "ops" });
    const pub = await nats.js.publish(subject, enc.encode("{}"));
    // orgwatch is down while the message dies and is deleted (on 2.9 a message deleted before the
    // server gives up on it ends with a terminated advisory instead, so it dies first).
    await daemon.stop();
    const advisory = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.ops`;
    await failEverything(nats.js, stream, "ops", async () => {
      const captured = await nats.jsm.streams.getMessage("ORGWATCH_ADVISORIES", { last_by_subj: advisory });
      return captured !== null;
    });
    expect(await nats.jsm.streams.deleteMessage(stream, pub.seq)).toBe(true);
    const before = await streamMessages(nats.jsm, "DEADLETTER");
    daemon = await startTestDaemon(nats.server.url, { "advisories.ack-wait": 2_000 });
    await daemon.started;
    await waitFor(
      async () => (await streamMessages(nats.jsm, "DEADLETTER")) > before && advisoriesDrained(nats.jsm),
      {
        what: "the dead letter of a deleted message",
      },
    );

    const letters = (await readStream(nats.jsm, "DEADLETTER")).filter(
      (l) => l.header.get("Orgwatch-Source-Stream") === stream,
    );
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(letter.header.get("Orgwatch-Message-Missing")).toBe("true");
    expect(JSON.parse(dec.decode(letter.data))).toMatchObject({
      stream,
      consumer: "ops",
      stream_seq: pub.seq,
      deliveries: 3,
      reason: "max_deliveries",
    });
    await daemon.pollNow();
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_deadletter_messages_total", { stream, consumer: "ops", role: "ops" })).toBe(1);
  });

  it("counts naks and terms per consumer, and nothing dead-lettered for them", async () => {
    const { stream, subject } = await createPoisonableConsumer(nats.jsm, {
      role: "dev",
      consumer: "dev",
      ackWaitMs: 30_000,
    });
    for (let i = 0; i < 4; i++)
      await nats.js.publish(subject, enc.encode(JSON.stringify({ task_id: `t${i}` })));
    const c = await nats.js.consumers.get(stream, "dev");
    // 1st: nak twice then ack; 2nd: term; 3rd and 4th: ack.
    const naked = new Map<number, number>();
    let handled = 0;
    while (handled < 4) {
      const m = await c.next({ expires: 2_000 });
      if (!m) continue;
      if (m.seq === 1 && (naked.get(1) ?? 0) < 2) {
        naked.set(1, (naked.get(1) ?? 0) + 1);
        m.nak();
        continue;
      }
      // Without a reason: nats-server 2.9 ignores a term that carries one.
      if (m.seq === 2) m.term();
      else await m.ackAck();
      handled++;
    }
    const m = await waitFor(
      async () => {
        if (!(await advisoriesDrained(nats.jsm))) return undefined;
        const s = await scrape(daemon.url);
        return s.value("orgwatch_consumer_terminated_total", { stream, consumer: "dev" }) === 1
          ? s
          : undefined;
      },
      { what: "the term to be counted" },
    );
    expect(m.value("orgwatch_consumer_naks_total", { stream, consumer: "dev", role: "dev" })).toBe(2);
    expect(m.value("orgwatch_consumer_terminated_total", { stream, consumer: "dev", role: "dev" })).toBe(1);
    await daemon.pollNow();
    const after = await scrape(daemon.url);
    expect(after.value("orgwatch_deadletter_messages_total", { stream, consumer: "dev", role: "dev" })).toBe(
      0,
    );
  });

  it("observes sampled acks as task processing times of the consumer's role", async () => {
    const { stream, subject } = await createPoisonableConsumer(nats.jsm, {
      role: "security",
      consumer: "security-worker",
      ackWaitMs: 30_000,
      sampleFreq: "100%",
    });
    for (let i = 0; i < 3; i++)
      await nats.js.publish(subject, enc.encode(JSON.stringify({ task_id: `s${i}` })));
    const c = await nats.js.consumers.get(stream, "security-worker");
    for (let acked = 0; acked < 3;) {
      const m = await c.next({ expires: 2_000 });
      if (m) {
        await m.ackAck();
        acked++;
      }
    }
    const m = await waitFor(
      async () => {
        const s = await scrape(daemon.url);
        return s.histogram("orgwatch_task_processing_seconds", { role: "security" })?.count === 3
          ? s
          : undefined;
      },
      { what: "three processing observations for role security" },
    );
    const h = m.histogram("orgwatch_task_processing_seconds", { role: "security" })!;
    expect(h.sum).toBeGreaterThanOrEqual(0);
    expect(h.sum).toBeLessThan(30);
    // No other role observed anything: the other consumers here do not sample acks.
    const roles = m
      .series("orgwatch_task_processing_seconds_count")
      .map((s) => s.labels["role"])
      .filter((r) => r !== "security");
    expect(roles).toEqual([]);
  });
  it("counts and skips advisories and ack samples that are not valid, and moves on", async () => {
    nats.nc.publish("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.AGENT_X.x", enc.encode("not json"));
    nats.nc.publish(
      "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.AGENT_X.x",
      enc.encode('{"type":"io.nats.jetstream.advisory.v1.nak"}'),
    );
    nats.nc.publish("$JS.EVENT.METRIC.CONSUMER.ACK.AGENT_X.x", enc.encode("[]"));
    await nats.nc.flush();
    const m = await waitFor(
      async () => {
        if (!(await advisoriesDrained(nats.jsm))) return undefined;
        const s = await scrape(daemon.url);
        return s.value("orgwatch_invalid_messages_total", { source: "ack_sample", reason: "not_object" }) ===
          1
          ? s
          : undefined;
      },
      { what: "the invalid input counted" },
    );
    expect(m.value("orgwatch_invalid_messages_total", { source: "advisory", reason: "not_json" })).toBe(1);
    expect(m.value("orgwatch_invalid_messages_total", { source: "advisory", reason: "missing_field" })).toBe(
      1,
    );
    expect(m.series("orgwatch_consumer_naks_total", { stream: "AGENT_X" })).toEqual([]);
  });
});

describe("dead letters routed to a core subject", () => {
  const nats = natsPerSuite();

  it("publishes it once, also when a restarted orgwatch sees the advisory again", async () => {
    const received: { data: string; traceparent: string }[] = [];
    const sub = nats.nc.subscribe("genbrain.org.deadletter", {
      callback: (_err, m) => {
        received.push({ data: dec.decode(m.data), traceparent: m.headers?.get("traceparent") ?? "" });
      },
    });
    await nats.nc.flush();
    const { stream, subject } = await createPoisonableConsumer(nats.jsm, { role: "cto", consumer: "cto" });
    const h = headers();
    h.set("traceparent", TRACEPARENT);
    await nats.js.publish(subject, enc.encode("poison"), { headers: h });

    let daemon = await startTestDaemon(nats.server.url, { "advisories.ack-wait": 2_000 });
    await daemon.started;
    await failEverything(nats.js, stream, "cto", () => received.length >= 1);
    await waitFor(() => advisoriesDrained(nats.jsm), { what: "advisories handled" });
    await daemon.stop();

    // The advisory handled again from the start, as after a crash: the ledger knows it was routed.
    await nats.jsm.consumers.delete("ORGWATCH_ADVISORIES", "orgwatch");
    daemon = await startTestDaemon(nats.server.url, { "advisories.ack-wait": 2_000 });
    try {
      await daemon.started;
      await waitFor(() => advisoriesDrained(nats.jsm), { what: "replayed advisories handled" });
      await nats.nc.flush();
      expect(received).toEqual([{ data: "poison", traceparent: TRACEPARENT }]);
      // A replay of an advisory handled before is not a new dead letter.
      await daemon.pollNow();
      const m = await scrape(daemon.url);
      expect(m.value("orgwatch_deadletter_messages_total", { stream, consumer: "cto", role: "cto" })).toBe(0);
    } finally {
      sub.unsubscribe();
      await daemon.stop();
    }
  });
});

describe("settings: ack samples captured, routing off", () => {
  const nats = natsPerSuite();

  it("observes acks sampled while orgwatch was down", async () => {
    const settings = { "advisories.ack-wait": 2_000, "advisories.ack-samples": "capture" };
    let daemon = await startTestDaemon(nats.server.url, settings);
    await daemon.started;
    await daemon.stop();
    const si = await nats.jsm.streams.info("ORGWATCH_ADVISORIES");
    expect(si.config.subjects).toContain("$JS.EVENT.METRIC.CONSUMER.ACK.>");

    const { stream, subject } = await createPoisonableConsumer(nats.jsm, {
      role: "cfo",
      consumer: "cfo",
      ackWaitMs: 30_000,
      sampleFreq: "100%",
    });
    for (let i = 0; i < 2; i++)
      await nats.js.publish(subject, enc.encode(JSON.stringify({ task_id: `f${i}` })));
    const c = await nats.js.consumers.get(stream, "cfo");
    for (let acked = 0; acked < 2;) {
      const m = await c.next({ expires: 2_000 });
      if (m) {
        await m.ackAck();
        acked++;
      }
    }
    await waitFor(async () => (await streamMessages(nats.jsm, "ORGWATCH_ADVISORIES")) >= 2, {
      what: "the samples captured",
    });

    daemon = await startTestDaemon(nats.server.url, settings);
    try {
      await daemon.started;
      await waitFor(
        async () =>
          (await scrape(daemon.url)).histogram("orgwatch_task_processing_seconds", { role: "cfo" })?.count ===
          2,
        { what: "two processing observations for role cfo" },
      );
    } finally {
      await daemon.stop();
    }
  });

  it("with routing off, counts a dead letter and publishes nothing", async () => {
    await nats.jsm.streams.add({ name: "DEADLETTER", subjects: ["genbrain.org.deadletter"] });
    const daemon = await startTestDaemon(nats.server.url, {
      "advisories.ack-wait": 2_000,
      "deadletter.route": false,
    });
    try {
      await daemon.started;
      const { stream, subject } = await createPoisonableConsumer(nats.jsm, {
        role: "legal",
        consumer: "legal",
      });
      await nats.js.publish(subject, enc.encode("poison"));
      const counted = async () => {
        await daemon.pollNow();
        const m = await scrape(daemon.url);
        return (
          m.value("orgwatch_deadletter_messages_total", { stream, consumer: "legal", role: "legal" }) === 1
        );
      };
      await failEverything(
        nats.js,
        stream,
        "legal",
        async () => (await advisoriesDrained(nats.jsm)) && counted(),
      );
      expect(await streamMessages(nats.jsm, "DEADLETTER")).toBe(0);
    } finally {
      await daemon.stop();
    }
  });
});
