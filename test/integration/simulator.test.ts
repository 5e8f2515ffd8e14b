// The simulated organization against a real nats-server: the reference topology it creates, and
// what it publishes compared with its plan for the seed (the same seed, the same streams).
import { AckPolicy, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignments, chainedTask, roster, type TaskMessage } from "../../src/demo/plan.js";
import { startSimulatedOrganization, type SimulatedOrganization } from "../../src/demo/simulator.js";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { waitFor } from "../helpers/wait.js";

const SEED = 11;
const PACE = 600;
const scale = { prefix: "genbrain", pace: PACE };
const ROLES = ["ceo", "cto", "security", "marketing", "devops", "finance"];

describe("simulated organization", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let org: SimulatedOrganization;
  const statuses = new Map<string, number>();
  const events: Record<string, unknown>[] = [];
  const crashed: { taskId: string; delivery: number }[] = [];
  const naked: { taskId: string; delivery: number }[] = [];
  const published: { role: string; task: TaskMessage; seq: number }[] = [];

  let monitorPort: number;

  beforeAll(async () => {
    monitorPort = await freePort();
    server = await startNatsServer({ args: ["-m", String(monitorPort)] });
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    nc.subscribe("genbrain.agents.*.status", {
      callback: (_err, msg: Msg) => {
        const role = msg.subject.split(".")[2]!;
        statuses.set(role, (statuses.get(role) ?? 0) + 1);
      },
    });
    nc.subscribe("genbrain.org.events", {
      callback: (_err, msg: Msg) => {
        events.push(msg.json<Record<string, unknown>>());
      },
    });
    await nc.flush();
    org = await startSimulatedOrganization({ servers: server.url, pace: PACE, seed: SEED });
    org.on("crashed", (c) => crashed.push(c));
    org.on("naked", (c) => naked.push(c));
    org.on("published", (p) => published.push(p));
  });

  afterAll(async () => {
    await org?.stop();
    await nc?.close();
    await server?.stop();
  });

  it("creates the reference topology", async () => {
    for (const role of ROLES) {
      const stream = await jsm.streams.info(`AGENT_${role.toUpperCase()}_TASKS`);
      expect(stream.config.subjects).toEqual([`genbrain.agents.${role}.tasks`]);
      const worker = await jsm.consumers.info(stream.config.name, `${role}-worker`);
      expect(worker.config.ack_policy).toBe(AckPolicy.Explicit);
      expect(worker.config.max_deliver).toBe(3);
      // The 30-minute ack wait at pace 600: 3 s.
      expect(worker.config.ack_wait).toBe(3_000_000_000);
      const broadcasts = await jsm.consumers.info("ORG_BROADCASTS", `${role}-broadcasts`);
      expect(broadcasts.config.ack_policy).toBe(AckPolicy.Explicit);
    }
    expect((await jsm.streams.info("ORG_BROADCASTS")).config.subjects).toEqual(["genbrain.org.broadcasts"]);
    expect((await jsm.streams.info("ORG_DEADLETTER")).config.subjects).toEqual(["genbrain.org.deadletter"]);
    expect(org.story).toEqual({ overloaded: "marketing", flaky: "devops", ignoresBroadcasts: "finance" });
  });

  it("assigns exactly the planned tasks, in order, with their traceparent", async () => {
    const marketing = roster(6).find((a) => a.role === "marketing")!;
    const planned = assignments(SEED, marketing, scale);
    await waitFor(async () => (await jsm.streams.info("AGENT_MARKETING_TASKS")).state.messages >= 6, {
      timeoutMs: 20_000,
      what: "six marketing tasks",
    });
    for (let seq = 1; seq <= 6; seq++) {
      const want = planned.next().value!;
      const stored = (await jsm.streams.getMessage("AGENT_MARKETING_TASKS", { seq }))!;
      expect(stored.json<TaskMessage>()).toEqual(want.task);
      expect(stored.header.get("traceparent")).toBe(want.traceparent);
      expect(stored.header.get("Nats-Msg-Id")).toBe(want.task.task_id);
    }
  });

  it("chains a CTO task's completion to Security and then to the CEO", async () => {
    const cto = roster(6).find((a) => a.role === "cto")!;
    const root = assignments(SEED, cto, scale).next().value!.task;
    const review = chainedTask(SEED, root, "cto", scale);
    const seen = await waitFor(
      () => {
        const roles = new Map(published.map((p) => [p.task.task_id, p.role]));
        return roles.get(review.task_id) === "security" && roles.get(root.task_id) === "cto" && roles;
      },
      { timeoutMs: 20_000, what: "the security review of the first CTO task" },
    );
    expect(seen.size).toBeGreaterThan(2);
    const stored = (await jsm.streams.getMessage("AGENT_SECURITY_TASKS", { seq: 1 }))!;
    expect(stored.json<TaskMessage>()).toEqual(review);
    // No traceparent on chained work: the link is parent_task_id.
    expect(stored.header.get("traceparent")).toBe("");
    const completed = await waitFor(
      () => events.find((e) => e["type"] === "task.completed" && e["task_id"] === root.task_id),
      { timeoutMs: 20_000, what: "task.completed for the root task" },
    );
    expect(completed).toMatchObject({ role: "cto", task_id: root.task_id, ts: expect.any(String) });
  });

  it("has the flaky agent crash on its poison task, nak it, and crash again until max-deliver", async () => {
    const devops = roster(6).find((a) => a.role === "devops")!;
    const poison = assignments(SEED, devops, scale).next().value!;
    expect(poison.poison).toBe(true);
    await waitFor(() => crashed.filter((c) => c.taskId === poison.task.task_id).length === 2, {
      timeoutMs: 30_000,
      what: "two crashes on the poison task",
    });
    expect(crashed.filter((c) => c.taskId === poison.task.task_id).map((c) => c.delivery)).toEqual([1, 3]);
    expect(naked.filter((c) => c.taskId === poison.task.task_id).map((c) => c.delivery)).toEqual([2]);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: "task.rejected",
        role: "devops",
        task_id: poison.task.task_id,
        delivery: 2,
      }),
    );
  });

  it("has every agent send status heartbeats, and leaves broadcasts unacked only by the one that ignores them", async () => {
    for (const role of ROLES) expect(statuses.get(role) ?? 0).toBeGreaterThan(0);
    await waitFor(
      async () => {
        for (const role of ROLES) {
          const info = await jsm.consumers.info("ORG_BROADCASTS", `${role}-broadcasts`);
          const unacked = info.num_pending + info.num_ack_pending;
          if (role === "finance" ? unacked < 1 : unacked !== 0) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, what: "broadcasts acked by all but finance" },
    );
    const acked = events.filter((e) => e["type"] === "broadcast.acknowledged").map((e) => e["role"]);
    expect(acked).not.toContain("finance");
  });

  it("stops cleanly: its connection is gone from the server, so nothing more can be published", async () => {
    const simulatorConnections = async () => {
      const connz = (await (await fetch(`http://127.0.0.1:${monitorPort}/connz`)).json()) as {
        connections?: { name?: string }[];
      };
      return (connz.connections ?? []).filter((c) => c.name === "orgwatch-simulator").length;
    };
    expect(await simulatorConnections()).toBe(1);
    await org.stop();
    await waitFor(async () => (await simulatorConnections()) === 0, {
      timeoutMs: 5_000,
      what: "the simulator's connection closed",
    });
  });
});
