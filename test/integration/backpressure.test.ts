// Backpressure against a real nats-server (DESIGN.md §8): the reference's arithmetic on a scripted
// workload, replicas sharing a consumer, a stalled consumer, and admission control as a NATS micro
// service found and queried by a standard client (@nats-io/services), and over HTTP.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { Svcm, type ServiceIdentity, type ServiceInfo } from "@nats-io/services";
import type { JsMsg } from "@nats-io/jetstream";
import { assignIfAdmitted } from "../../examples/ask-before-publishing.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { addTaskStream } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const enc = new TextEncoder();
/** The agents' pace in these workloads: one task acknowledged every N ms. */
const N_MS = 400;

const task = (id: string) => enc.encode(JSON.stringify({ task_id: id, type: "impl" }));

async function request(nc: NatsConnection, body: unknown) {
  const m = await nc.request("genbrain.orgwatch.admission", JSON.stringify(body), { timeout: 2_000 });
  return {
    error: m.headers?.get("Nats-Service-Error"),
    code: m.headers?.get("Nats-Service-Error-Code"),
    body: m.json<Record<string, unknown>>(),
  };
}

describe("backpressure", () => {
  let org: TestOrg;
  beforeAll(async () => {
    org = await startTestOrg({ firstPoll: true, settings: { "backpressure.window": 3_600_000 } });
  });
  afterAll(async () => {
    await org?.stop();
  });

  /**
   * Acks one task per puller every N_MS, `count` times, polling orgwatch after each round. Returns
   * the agents' real pace: ms between rounds, from the poll before the first to the last ack.
   */
  async function ackAtPace(stream: string, consumers: string[], count: number): Promise<number> {
    const pullers = await Promise.all(consumers.map((c) => org.js.consumers.get(stream, c)));
    const start = Date.now();
    let lastAck = start;
    for (let i = 0; i < count; i++) {
      // The agent's pace (workload, not synchronisation).
      await new Promise((r) => setTimeout(r, N_MS));
      await Promise.all(
        pullers.map(async (p) => {
          const m: JsMsg | null = await p.next({ expires: 1_000 });
          await m?.ackAck();
        }),
      );
      lastAck = Date.now();
      await org.daemon.pollNow();
    }
    return (lastAck - start) / count;
  }

  it("does the reference's arithmetic: 50 tasks, one acknowledged every N, drain time lag × N", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "cto");
    for (let i = 1; i <= 50; i++) await org.js.publish(subject, task(`bp-${i}`));
    await org.daemon.pollNow();
    const pace = await ackAtPace(stream, ["cto-worker"], 8);
    const m = await scrape(org.daemon.url);
    const labels = { stream, consumer: "cto-worker" };
    const lag = m.value("orgwatch_consumer_lag_messages", labels)!;
    expect(lag).toBe(42);
    const rate = m.value("orgwatch_consumer_ack_rate_per_second", labels)!;
    const eta = m.value("orgwatch_consumer_drain_eta_seconds", labels)!;
    // Within one poll (here: one ack interval) of the reference's arithmetic at the agent's pace.
    expect(Math.abs(eta - (lag * pace) / 1000)).toBeLessThan(pace / 1000);
    expect(Math.abs(rate - 1000 / pace)).toBeLessThan(0.1);
    // Admission: over the max lag of 5 already.
    const answer = await request(org.nc, { role: "cto", tasks: 1 });
    expect(answer.body).toMatchObject({
      role: "cto",
      verdict: "defer",
      lag: 42,
      consumer_status: expect.any(String),
    });
    expect(String(answer.body["reason"])).toMatch(
      /^cto has 42 tasks waiting; 1 more would make 43, over the limit of 5$/,
    );
  });

  it("counts replicas sharing a consumer: two pullers double the rate and halve the drain time", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "qa");
    for (let i = 1; i <= 40; i++) await org.js.publish(subject, task(`qa-${i}`));
    await org.daemon.pollNow();
    const pace = await ackAtPace(stream, ["qa-worker", "qa-worker"], 6);
    const m = await scrape(org.daemon.url);
    const labels = { stream, consumer: "qa-worker" };
    expect(m.value("orgwatch_consumer_lag_messages", labels)).toBe(28);
    const rate = m.value("orgwatch_consumer_ack_rate_per_second", labels)!;
    expect(Math.abs(rate - 2000 / pace)).toBeLessThan(0.2);
    const eta = m.value("orgwatch_consumer_drain_eta_seconds", labels)!;
    expect(Math.abs(eta - (28 * pace) / 2000)).toBeLessThan(pace / 1000);
  });

  it("gives a stalled consumer an infinite drain time, and rejects new work for it", async () => {
    const { stream, subject } = await addTaskStream(org.jsm, "ops", {}, ["ops-worker"], {
      ack_wait: nanos(300),
    });
    await org.js.publish(subject, task("ops-1"));
    const c = await org.js.consumers.get(stream, "ops-worker");
    await c.next({ expires: 1_000 }); // taken and never acknowledged
    await org.daemon.pollNow();
    const m = await waitFor(
      async () => {
        await org.daemon.pollNow();
        const s = await scrape(org.daemon.url);
        return s.value("orgwatch_consumer_status", { stream, status: "stalled" }) === 1 ? s : undefined;
      },
      { what: "ops-worker stalled" },
    );
    expect(m.text).toMatch(/^orgwatch_consumer_drain_eta_seconds\{stream="AGENT_OPS_TASKS",[^}]*\} \+Inf$/m);
    const answer = await request(org.nc, { role: "ops" });
    expect(answer.body).toMatchObject({
      verdict: "reject",
      consumer_status: "stalled",
      drain_eta_seconds: null,
    });
    expect(String(answer.body["reason"])).toBe(
      "ops's consumer ops-worker is stalled: ops has 1 task waiting and none is being finished",
    );
  });

  it("is a micro service a standard client finds, describes and stats, with error replies for bad requests", async () => {
    const client = new Svcm(org.nc).client();
    const pings: ServiceIdentity[] = [];
    for await (const p of await client.ping("orgwatch")) pings.push(p);
    expect(pings).toHaveLength(1);
    expect(pings[0]).toMatchObject({ name: "orgwatch", type: "io.nats.micro.v1.ping_response" });
    const infos: ServiceInfo[] = [];
    for await (const i of await client.info("orgwatch")) infos.push(i);
    expect(infos[0]!.endpoints).toEqual([
      expect.objectContaining({ name: "admission", subject: "genbrain.orgwatch.admission" }),
    ]);
    const statsOf = async () => {
      for await (const s of await client.stats("orgwatch", pings[0]!.id)) return s.endpoints![0]!;
      throw new Error("no stats");
    };
    const before = await statsOf();
    expect((await request(org.nc, "not an object")).code).toBe("400");
    const bad = await org.nc.request("genbrain.orgwatch.admission", "{nope", { timeout: 2_000 });
    expect(bad.headers?.get("Nats-Service-Error-Code")).toBe("400");
    const unknown = await request(org.nc, { role: "nobody" });
    expect(unknown).toMatchObject({
      code: "404",
      error: 'unknown role "nobody": no stream, consumer or status of it is known',
    });
    await request(org.nc, { role: "cto" });
    const after = await statsOf();
    expect(after.num_requests - before.num_requests).toBe(4);
    expect(after.num_errors - before.num_errors).toBe(3);
    const m = await scrape(org.daemon.url);
    // Counted by role and verdict: the 50-task test's request and this one (cto is stopped by now:
    // nobody has pulled its backlog for a whole status window).
    const cto = m.series("orgwatch_admission_requests_total", { role: "cto" });
    expect(cto.reduce((a, x) => a + x.value, 0)).toBe(2);
    expect(m.value("orgwatch_admission_requests_total", { role: "nobody", verdict: "error" })).toBe(1);
  });

  it("answers the same over HTTP", async () => {
    const nats = await request(org.nc, { role: "cto", tasks: 2, complete_within_minutes: 60 });
    const res = await fetch(`${org.daemon.url}/api/v1/admission?role=cto&tasks=2&complete_within_minutes=60`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(nats.body);
    expect((await fetch(`${org.daemon.url}/api/v1/admission?role=nobody`)).status).toBe(404);
    expect((await fetch(`${org.daemon.url}/api/v1/admission?role=cto&tasks=x`)).status).toBe(400);
  });

  it("runs the README's TypeScript client: an agent that asks before it publishes", async () => {
    const readme = readFileSync(`${REPO_ROOT}/README.md`, "utf8");
    const snippet = readFileSync(`${REPO_ROOT}/examples/ask-before-publishing.ts`, "utf8");
    expect(readme).toContain(snippet.split("\n").slice(3).join("\n").trim());
    const { subject } = await addTaskStream(org.jsm, "security");
    await org.daemon.pollNow();
    expect(await assignIfAdmitted(org.nc, "security", { task_id: "sec-1", type: "review" })).toMatch(
      /^accept: /,
    );
    expect((await org.jsm.streams.info("AGENT_SECURITY_TASKS")).state.messages).toBe(1);
    // Six waiting: over the reference's limit of 5.
    const dev = await addTaskStream(org.jsm, "dev");
    for (let i = 1; i <= 6; i++) await org.js.publish(dev.subject, task(`dev-${i}`));
    await org.daemon.pollNow();
    expect(await assignIfAdmitted(org.nc, "dev", { task_id: "dev-7", type: "impl" })).toBe(
      "defer: dev has 6 tasks waiting; 1 more would make 7, over the limit of 5",
    );
    expect(subject).toBe("genbrain.agents.security.tasks");
  });
});
