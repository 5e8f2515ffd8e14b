// `orgwatch check` against real nats-servers: a topology with every pitfall planted gives exactly the
// expected findings and exit code; the reference topology gives none at error level; the daemon
// exports the same findings as orgwatch_config_findings.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Finding } from "../../src/logic/checks.js";
import { ensureTopology } from "../../src/demo/topology.js";
import { roster, STORY_AGENTS } from "../../src/demo/plan.js";
import { runOrgwatch } from "../helpers/cli.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { atPace, waitFor } from "../helpers/wait.js";

const MIN = 60_000;
const HOURS_72 = nanos(72 * 60 * MIN);

interface CheckJson {
  summary: { error: number; warning: number; info: number };
  exitCode: number;
  roster: string[];
  streams: number;
  consumers: number;
  findings: Finding[];
}

const brief = (fs: Finding[]) => fs.map((f) => `${f.level} ${f.check} ${f.stream}/${f.consumer} ${f.role}`);

async function check(url: string, ...args: string[]) {
  const env = { ...process.env };
  delete env["NO_COLOR"];
  delete env["FORCE_COLOR"];
  return runOrgwatch(["check", "--nats-url", url, ...args], { env });
}

async function checkJson(url: string, ...args: string[]): Promise<{ code: number | null; doc: CheckJson }> {
  const run = await check(url, "--format", "json", ...args);
  if (run.stderr !== "") throw new Error(run.stderr);
  return { code: run.code, doc: JSON.parse(run.stdout) as CheckJson };
}

/** A role's task stream as the reference organization has it, with `over` changed. */
function addTaskStream(jsm: JetStreamManager, role: string, over: Record<string, unknown> = {}) {
  return jsm.streams.add({
    name: `AGENT_${role.toUpperCase()}_TASKS`,
    subjects: [`genbrain.agents.${role}.tasks`],
    storage: StorageType.File,
    max_age: HOURS_72,
    ...over,
  });
}

/** A role's durable worker as the reference organization has it, with `over` changed. */
function addWorker(jsm: JetStreamManager, role: string, over: Record<string, unknown> = {}) {
  return jsm.consumers.add(`AGENT_${role.toUpperCase()}_TASKS`, {
    durable_name: `${role}-worker`,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: 3,
    ack_wait: nanos(30 * MIN),
    sample_freq: "100%",
    ...over,
  });
}

/**
 * Every pitfall of the issue, planted once:
 *  ceo: unlimited max-deliver; cto: 30 s ack wait, no ack sampling; dev: no stream limits and 20
 *  tasks queued (20 × 20 min > 4 h); qa: memory storage, a broadcast consumer acking "none";
 *  ops: a task stream nobody consumes and no broadcast consumer; no dead-letter stream anywhere.
 */
async function plantPitfalls(jsm: JetStreamManager, nc: NatsConnection): Promise<void> {
  const task = (role: string, over: Record<string, unknown> = {}) => addTaskStream(jsm, role, over);
  const worker = (role: string, over: Record<string, unknown> = {}) => addWorker(jsm, role, over);
  await task("ceo");
  await worker("ceo", { max_deliver: -1 });
  await task("cto");
  await worker("cto", { ack_wait: nanos(30_000), sample_freq: undefined });
  await task("dev", { max_age: 0 });
  await worker("dev");
  await task("qa", { storage: StorageType.Memory });
  await worker("qa");
  await task("ops");
  await jsm.streams.add({
    name: "ORG_BROADCASTS",
    subjects: ["genbrain.org.broadcasts"],
    storage: StorageType.File,
    max_age: HOURS_72,
  });
  for (const role of ["ceo", "cto", "dev", "qa"]) {
    await jsm.consumers.add("ORG_BROADCASTS", {
      durable_name: `${role}-broadcasts`,
      ack_policy: role === "qa" ? AckPolicy.None : AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
  }
  const js = jetstream(nc);
  for (let i = 0; i < 20; i++) {
    await js.publish("genbrain.agents.dev.tasks", JSON.stringify({ task_id: `t-${i}`, type: "x" }));
  }
}

const PLANTED = [
  "error ack_wait_too_short AGENT_CTO_TASKS/cto-worker cto",
  "error no_max_deliver AGENT_CEO_TASKS/ceo-worker ceo",
  "error memory_storage AGENT_QA_TASKS/ qa",
  "error role_without_consumer AGENT_OPS_TASKS/ ops",
  "warning no_deadletter_path / cto",
  "warning no_deadletter_path / dev",
  "warning no_deadletter_path / qa",
  "warning no_stream_limits AGENT_DEV_TASKS/ dev",
  "warning broadcast_consumer_missing ORG_BROADCASTS/ ops",
  "warning broadcast_ack_not_explicit ORG_BROADCASTS/qa-broadcasts qa",
  "warning backpressure AGENT_DEV_TASKS/dev-worker dev",
  "info ack_sampling_off AGENT_CTO_TASKS/cto-worker cto",
];

describe("orgwatch check", () => {
  let pitfalls: NatsServerProcess;
  let reference: NatsServerProcess;
  let simulated: NatsServerProcess;
  let ncs: NatsConnection[] = [];

  beforeAll(async () => {
    [pitfalls, reference, simulated] = await Promise.all([
      startNatsServer(),
      startNatsServer(),
      startNatsServer(),
    ]);
    ncs = await Promise.all([pitfalls, reference, simulated].map((s) => connect({ servers: s.url })));
    const [nc1, nc2, nc3] = ncs as [NatsConnection, NatsConnection, NatsConnection];
    await plantPitfalls(await jetstreamManager(nc1), nc1);
    // The test suite's reference topology (no dead-letter stream, no ack sampling), and the
    // simulated organization's full one (dead letters, ack sampling), at the reference's pace.
    await createReferenceTopology(await jetstreamManager(nc2), { roles: ["ceo", "cto", "security"] });
    await ensureTopology(await jetstreamManager(nc3), roster(STORY_AGENTS), { prefix: "genbrain", pace: 1 });
  });
  afterAll(async () => {
    for (const nc of ncs) await nc.close();
    await pitfalls?.stop();
    await reference?.stop();
    await simulated?.stop();
  });

  it("finds exactly the planted pitfalls and exits 2", async () => {
    const { code, doc } = await checkJson(pitfalls.url);
    expect(brief(doc.findings)).toEqual(PLANTED);
    expect(doc.summary).toEqual({ error: 4, warning: 7, info: 1 });
    expect(doc.exitCode).toBe(2);
    expect(code).toBe(2);
    expect(doc.roster).toEqual(["ceo", "cto", "dev", "ops", "qa"]);
    expect(doc.streams).toBe(6);
    expect(doc.consumers).toBe(8);
    const ackWait = doc.findings.find((f) => f.check === "ack_wait_too_short")!;
    expect(ackWait.fix).toBe("nats consumer edit AGENT_CTO_TASKS cto-worker --ack-wait 30m");
    const backlog = doc.findings.find((f) => f.check === "backpressure")!;
    expect(backlog.what).toContain("20 tasks wait");
    expect(backlog.what).toContain("about 6h40m to drain at one task per 20m");
  });

  it("takes --expected-work and --check.drain-time into account", async () => {
    // 10s of work: a 30 s ack wait is enough, and 20 tasks drain in minutes.
    const { doc } = await checkJson(pitfalls.url, "--expected-work", "10s");
    const checks = doc.findings.map((f) => f.check);
    expect(checks).not.toContain("ack_wait_too_short");
    expect(checks).not.toContain("backpressure");
    const longer = await checkJson(pitfalls.url, "--check.drain-time", "7h");
    expect(longer.doc.findings.map((f) => f.check)).not.toContain("backpressure");
  });

  it("prints a plain table when piped", async () => {
    const run = await check(pitfalls.url);
    expect(run.code).toBe(2);
    expect(run.stdout).not.toContain("\x1b[");
    expect(run.stdout).toMatch(
      /^orgwatch check: nats:\/\/127\.0\.0\.1:\d+: 6 streams, 8 consumers, agents ceo, cto, dev, ops, qa/,
    );
    expect(run.stdout).toMatch(/error\s+ack_wait_too_short\s+cto\s+AGENT_CTO_TASKS \/ cto-worker/);
    expect(run.stdout).toContain("fix:  nats consumer edit AGENT_CEO_TASKS ceo-worker --max-deliver 3");
    expect(run.stdout).toContain("4 errors, 7 warnings, 1 info; exit code 2");
  });

  it("finds no error in the reference topology: exit 0, and 1 with --strict for its warnings", async () => {
    const { code, doc } = await checkJson(reference.url);
    expect(brief(doc.findings)).toEqual([
      "warning no_deadletter_path / ceo",
      "warning no_deadletter_path / cto",
      "warning no_deadletter_path / security",
      "info ack_sampling_off AGENT_CEO_TASKS/ceo-worker ceo",
      "info ack_sampling_off AGENT_CTO_TASKS/cto-worker cto",
      "info ack_sampling_off AGENT_SECURITY_TASKS/security-worker security",
    ]);
    expect(code).toBe(0);
    expect((await checkJson(reference.url, "--strict")).code).toBe(1);
  });

  it("finds nothing at all in the simulated organization's full reference topology", async () => {
    const { code, doc } = await checkJson(simulated.url, "--strict");
    expect(doc.findings).toEqual([]);
    expect(doc.roster.length).toBe(STORY_AGENTS);
    expect(code).toBe(0);
  });

  it("fails clearly when NATS is not there", async () => {
    const run = await check("nats://127.0.0.1:1");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^orgwatch check: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /);
  });

  it("the daemon exports the same findings as orgwatch_config_findings", async () => {
    // The daemon routes dead letters itself: no no_deadletter_path.
    const daemon = await startTestDaemon(pitfalls.url);
    try {
      await daemon.pollNow();
      const m = await scrape(daemon.url);
      const series = m
        .series("orgwatch_config_findings")
        .map((s) => `${s.labels["level"]} ${s.labels["check"]} ${s.labels["role"]} ${s.value}`)
        .sort();
      expect(series).toEqual(
        [
          "error ack_wait_too_short cto 1",
          "error no_max_deliver ceo 1",
          "error memory_storage qa 1",
          "error role_without_consumer ops 1",
          "warning no_stream_limits dev 1",
          "warning broadcast_consumer_missing ops 1",
          "warning broadcast_ack_not_explicit qa 1",
          "warning backpressure dev 1",
          "info ack_sampling_off cto 1",
        ].sort(),
      );
    } finally {
      await daemon.stop();
    }
  });
});

describe("orgwatch check --check.rate-interval", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    await createReferenceTopology(await jetstreamManager(nc), { roles: ["cto"] });
    const js = jetstream(nc);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        js.publish("genbrain.agents.cto.tasks", JSON.stringify({ task_id: `t-${i}` })),
      ),
    );
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("judges a backlog at the rate observed between two polls, not at one task per expected work", async () => {
    // Estimated, 200 tasks at one per 20 minutes is days of work.
    const estimated = await checkJson(server.url);
    expect(brief(estimated.doc.findings.filter((f) => f.check === "backpressure"))).toEqual([
      "warning backpressure AGENT_CTO_TASKS/cto-worker cto",
    ]);
    // An agent acking a task every 100 ms while the check watches for 2 s drains them in seconds.
    const consumer = await jetstream(nc).consumers.get("AGENT_CTO_TASKS", "cto-worker");
    let working = true;
    const agent = atPace(
      100,
      () => working,
      async () => (await consumer.next({ expires: 1000 }))?.ack(),
    );
    try {
      const observed = await checkJson(server.url, "--check.rate-interval", "2s");
      expect(observed.doc.findings.map((f) => f.check)).not.toContain("backpressure");
      expect(observed.doc.findings.map((f) => f.check)).toContain("no_deadletter_path");
    } finally {
      working = false;
      await agent;
    }
  });
});

describe("orgwatch check on a three-node cluster", () => {
  const nodes: NatsServerProcess[] = [];
  let nc: NatsConnection;

  beforeAll(async () => {
    const clusterPorts = await Promise.all([0, 1, 2].map(() => freePort()));
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(", ");
    nodes.push(
      ...(await Promise.all(
        clusterPorts.map((port, i) =>
          startNatsServer({
            name: `n${i + 1}`,
            config: `cluster { name: check-test, listen: 127.0.0.1:${port}, routes: [ ${routes} ] }`,
          }),
        ),
      )),
    );
    nc = await connect({ servers: nodes.map((n) => n.url) });
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 2000 });
    await waitFor(() => jsm.getAccountInfo().then(() => true), { timeoutMs: 30_000, what: "a meta leader" });
    for (const [role, replicas] of [
      ["ceo", 1],
      ["cto", 3],
    ] as const) {
      await addTaskStream(jsm, role, { num_replicas: replicas });
      await addWorker(jsm, role);
    }
    await jsm.streams.add({ name: "ORG_DEADLETTER", subjects: ["genbrain.org.deadletter"], num_replicas: 3 });
  });
  afterAll(async () => {
    await nc?.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("flags the stream with one replica, not the one with three", async () => {
    const { code, doc } = await checkJson(nodes.map((n) => n.url).join(","));
    expect(brief(doc.findings)).toEqual(["warning single_replica_in_cluster AGENT_CEO_TASKS/ ceo"]);
    expect(doc.findings[0]!.what).toBe(
      "tasks stream AGENT_CEO_TASKS has 1 replica in cluster check-test (agent ceo)",
    );
    expect(doc.findings[0]!.fix).toBe("nats stream edit AGENT_CEO_TASKS --replicas 3");
    expect(code).toBe(0);
  });

  it("reports an on_complete target no stream stores, read from the latest tasks of each stream", async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      await createReferenceTopology(jsm, { roles: ["cto", "security"] });
      const js = jetstream(nc);
      await js.publish(
        "genbrain.agents.cto.tasks",
        JSON.stringify({
          task_id: "task-1847",
          type: "impl",
          on_complete: { publish_to: "genbrain.agents.securty.tasks" },
        }),
      );
      // A target that is stored: no finding.
      await js.publish(
        "genbrain.agents.cto.tasks",
        JSON.stringify({
          task_id: "task-1848",
          type: "impl",
          on_complete: { publish_to: "genbrain.agents.security.tasks" },
        }),
      );
      const { code, doc } = await checkJson(server.url);
      const found = doc.findings.filter((f) => f.check === "on_complete_target_unrouted");
      expect(brief(found)).toEqual(["error on_complete_target_unrouted AGENT_CTO_TASKS/ cto"]);
      expect(found[0]!.fix).toContain(
        "nats stream add AGENT_SECURTY_TASKS --subjects genbrain.agents.securty.tasks",
      );
      expect(code).toBe(2);
    } finally {
      await nc.close();
      await server.stop();
    }
  });
});
