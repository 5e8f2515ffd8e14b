// Dead letters across orgwatch crashes: orgwatch runs as a child process and is SIGKILLed mid-flight;
// every poison message must reach the dead-letter stream exactly once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { spawnOrgwatch } from "../helpers/cli.js";
import { scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";
import {
  advisoriesDrained,
  createPoisonableConsumer,
  failEverything,
  readStream,
  streamMessages,
  type Deliveries,
} from "../helpers/poison.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface RunningOrgwatch {
  readonly web: string;
  readonly output: () => string;
  /** SIGKILL: no shutdown, no last ack. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();

async function startOrgwatch(natsUrl: string): Promise<RunningOrgwatch> {
  const port = await freePort();
  const web = `http://127.0.0.1:${port}`;
  const child = spawnOrgwatch([
    "--nats-url",
    natsUrl,
    "--web.listen-address",
    `127.0.0.1:${port}`,
    "--poll-interval",
    "1s",
    "--advisories.ack-wait",
    "2s",
    "--log.level",
    "warn",
  ]);
  running.add(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Ready means connected and polled; the advisory stream and consumer exist before the first poll.
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`orgwatch exited ${child.exitCode}: ${output}`);
      return (await fetch(web + "/readyz")).status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: "orgwatch ready" },
  );
  return {
    web,
    output: () => output,
    async kill() {
      child.kill("SIGKILL");
      await exited;
      running.delete(child);
    },
  };
}

describe("dead letters across orgwatch crashes", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  /** The orgwatch running now; the second test starts with the one the first left running (a start costs seconds). */
  let orgwatch: RunningOrgwatch | undefined;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await jsm.streams.add({ name: "DEADLETTER", subjects: ["genbrain.org.deadletter"] });
  });
  afterAll(async () => {
    for (const child of running) child.kill("SIGKILL");
    running.clear();
    await nc?.close();
    await server?.stop();
  });

  it("orgwatch killed between the third delivery and the advisory: routed exactly once after restart", async () => {
    const { stream, subject } = await createPoisonableConsumer(jsm, { role: "cto", consumer: "cto" });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const h = headers();
    h.set("traceparent", traceparent);
    await js.publish(subject, enc.encode('{"task_id":"task-1"}'), { headers: h });

    orgwatch = await startOrgwatch(server.url);
    const advisorySubject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.cto`;
    const deliveries = await failEverything(
      js,
      stream,
      "cto",
      async () =>
        orgwatch === undefined &&
        (await jsm.streams.getMessage("ORGWATCH_ADVISORIES", { last_by_subj: advisorySubject })) !== null,
      {
        onDelivery: async (_seq, timesSeen) => {
          if (timesSeen === 3 && orgwatch) {
            await orgwatch.kill();
            orgwatch = undefined;
          }
        },
      },
    );
    expect(deliveries.get(1)).toHaveLength(3);
    // The advisory came while orgwatch was dead: captured, not yet routed.
    expect(await streamMessages(jsm, "DEADLETTER")).toBe(0);

    orgwatch = await startOrgwatch(server.url);
    await failEverything(
      js,
      stream,
      "cto",
      async () => (await advisoriesDrained(jsm)) && (await streamMessages(jsm, "DEADLETTER")) > 0,
    );
    const letters = await readStream(jsm, "DEADLETTER");
    expect(letters).toHaveLength(1);
    expect(dec.decode(letters[0]!.data)).toBe('{"task_id":"task-1"}');
    expect(letters[0]!.header.get("traceparent")).toBe(traceparent);
    const web = orgwatch!.web;
    const m = await waitFor(
      async () => {
        const s = await scrape(web);
        return s.value("orgwatch_deadletter_messages_total", { stream, consumer: "cto", role: "cto" }) === 1
          ? s
          : undefined;
      },
      { what: "the dead letter counted by the restarted orgwatch" },
    );
    expect(m.value("orgwatch_deadletter_messages_total", { stream, consumer: "cto", role: "cto" })).toBe(1);
  });

  it("100 poison messages on 4 consumers, orgwatch killed twice: 100 routed, none lost or twice", async () => {
    const roles = ["ceo", "dev", "security", "qa"];
    const consumers = await Promise.all(
      roles.map((role) => createPoisonableConsumer(jsm, { role, consumer: `${role}-worker` })),
    );
    const published = new Map<string, string>(); // `${stream}/${seq}` → payload
    async function publishWave(wave: number): Promise<void> {
      for (let i = 0; i < 25; i++) {
        const { stream, subject } = consumers[i % consumers.length]!;
        const payload = JSON.stringify({ task_id: `w${wave}-t${i}` });
        const ack = await js.publish(subject, enc.encode(payload));
        published.set(`${stream}/${ack.seq}`, payload);
      }
    }

    let finished = false;
    const agents: Promise<Deliveries>[] = consumers.map(({ stream }, i) =>
      failEverything(js, stream, `${roles[i]}-worker`, () => finished, { timeoutMs: 80_000 }),
    );
    const dead = () => streamMessages(jsm, "DEADLETTER");

    orgwatch ??= await startOrgwatch(server.url);
    const before = await dead();
    await publishWave(0);
    await waitFor(async () => (await dead()) > before, { timeoutMs: 30_000, what: "the first dead letters" });
    await orgwatch.kill(); // most likely in the middle of wave 0's routing
    await publishWave(1);
    orgwatch = await startOrgwatch(server.url);
    await waitFor(async () => (await dead()) >= before + 30, { timeoutMs: 30_000, what: "30 dead letters" });
    await orgwatch.kill();
    await publishWave(2);
    await publishWave(3);
    orgwatch = await startOrgwatch(server.url);
    await waitFor(async () => (await dead()) >= before + 100 && advisoriesDrained(jsm), {
      timeoutMs: 45_000,
      what: "100 dead letters and every advisory handled",
    }).catch((err: Error) => {
      throw new Error(`${err.message}; orgwatch said: ${orgwatch?.output().slice(-2000)}`);
    });
    finished = true;
    const seen = await Promise.all(agents);
    await orgwatch.kill();

    const ours = new Set(consumers.map((c) => c.stream));
    const letters = (await readStream(jsm, "DEADLETTER")).filter((l) =>
      ours.has(l.header.get("Orgwatch-Source-Stream")),
    );
    const routed = letters.map(
      (l) => `${l.header.get("Orgwatch-Source-Stream")}/${l.header.get("Orgwatch-Source-Sequence")}`,
    );
    expect(new Set(routed).size).toBe(routed.length); // none twice
    expect(routed.length).toBe(100);
    expect([...published.keys()].filter((k) => !routed.includes(k))).toEqual([]); // none lost
    for (const l of letters) {
      const key = `${l.header.get("Orgwatch-Source-Stream")}/${l.header.get("Orgwatch-Source-Sequence")}`;
      expect(dec.decode(l.data)).toBe(published.get(key));
    }
    // Each was really a poison message, routed after its last delivery: the server's advisory said 3.
    // (Not the agents' own count: under load a nats-server 2.9 pull that outlived its client's
    // heartbeat check takes a delivery the agent never sees, and the agents were seen counting 2 and 4.)
    expect(new Set(letters.map((l) => l.header.get("Orgwatch-Deliveries")))).toEqual(new Set(["3"]));
    // Every published message reached an agent.
    expect(seen.reduce((n, d) => n + d.size, 0)).toBe(100);
  });
});
