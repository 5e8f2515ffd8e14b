import { describe, expect, it } from "vitest";
import {
  ackRate,
  checkSteps,
  evaluateChecks,
  exitCodeFor,
  recommendedAckWaitMs,
  type CheckInput,
  type Finding,
} from "../../src/logic/checks.js";
import type { ConsumerState, StreamState } from "../../src/model/jetstream.js";
import { renderJson, renderText, wantsColour } from "../../src/check/report.js";
import { consumerState, streamState } from "../helpers/jetstream-fixtures.js";

const MIN = 60_000;

function stream(name: string, over: Partial<StreamState> = {}): StreamState {
  return streamState(name, { consumers: 1, maxAgeMs: 72 * 60 * MIN, ...over });
}

function taskStream(role: string, over: Partial<StreamState> = {}): StreamState {
  return stream(`AGENT_${role.toUpperCase()}_TASKS`, {
    subjects: [`genbrain.agents.${role}.tasks`],
    role,
    ...over,
  });
}

function consumer(streamName: string, name: string, over: Partial<ConsumerState> = {}): ConsumerState {
  return consumerState(streamName, name, { sampleFrequency: "100%", ackWaitMs: 30 * MIN, ...over });
}

function worker(role: string, over: Partial<ConsumerState> = {}): ConsumerState {
  return consumer(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`, { role, ...over });
}

const BROADCASTS = stream("ORG_BROADCASTS", {
  subjects: ["genbrain.org.broadcasts"],
  kind: "broadcasts",
});
const DEADLETTER = stream("ORG_DEADLETTER", { subjects: ["genbrain.org.deadletter"], kind: "deadletter" });

function broadcastConsumer(role: string, over: Partial<ConsumerState> = {}): ConsumerState {
  return consumer("ORG_BROADCASTS", `${role}-broadcasts`, {
    kind: "broadcasts",
    role,
    maxDeliver: -1,
    sampleFrequency: "",
    ...over,
  });
}

/** The reference organization, everything right. */
function reference(roles = ["ceo", "cto", "security"]): CheckInput {
  return {
    prefix: "genbrain",
    streams: [...roles.map((r) => taskStream(r)), BROADCASTS, DEADLETTER],
    consumers: [...roles.map((r) => worker(r)), ...roles.map((r) => broadcastConsumer(r))],
    roster: roles,
    expectedWorkMs: 20 * MIN,
    maxDrainMs: 4 * 60 * MIN,
    deadLetterSubject: "genbrain.org.deadletter",
    deadLetterRouted: false,
    nowMs: 100 * 3600_000,
  };
}

const brief = (fs: Finding[]) => fs.map((f) => `${f.level} ${f.check} ${f.stream}/${f.consumer} ${f.role}`);

describe("evaluateChecks", () => {
  it("finds nothing in the reference organization", () => {
    expect(evaluateChecks(reference())).toEqual([]);
  });

  it("reports a backlog that outlives its stream's max age", () => {
    const input = reference();
    const findings = evaluateChecks({
      ...input,
      consumers: [...input.consumers].map((c) =>
        c.name === "cto-worker" ? { ...c, pending: 50, oldestUnackedMs: input.nowMs - 50 * 60 * MIN } : c,
      ),
      // One every 30 minutes: 25 hours to drain, the oldest 50 hours old, the max age 72 hours.
      ackRates: new Map([["AGENT_CTO_TASKS/cto-worker", 1 / (30 * MIN)]]),
    });
    const outlives = findings.filter((f) => f.check === "backlog_outlives_max_age");
    expect(brief(outlives)).toEqual(["error backlog_outlives_max_age AGENT_CTO_TASKS/cto-worker cto"]);
    expect(outlives[0]!.what).toBe(
      "50 tasks wait for consumer cto-worker on stream AGENT_CTO_TASKS (agent cto): about 1d1h to drain, the oldest 2d2h old, past the stream's max age of 3d",
    );
    expect(outlives[0]!.fix).toBe(
      "nats stream edit AGENT_CTO_TASKS --max-age 6d6h, and add agents sharing cto-worker so the backlog drains",
    );
  });

  it("reports an on_complete target no stream stores, once per stream and target, with the fix", () => {
    const input = reference();
    const findings = evaluateChecks({
      ...input,
      onCompleteTargets: [
        { stream: "AGENT_CTO_TASKS", role: "cto", taskId: "task-1", target: "genbrain.agents.securty.tasks" },
        { stream: "AGENT_CTO_TASKS", role: "cto", taskId: "task-2", target: "genbrain.agents.securty.tasks" },
        // Stored: the CEO's task stream.
        { stream: "AGENT_CTO_TASKS", role: "cto", taskId: "task-3", target: "genbrain.agents.ceo.tasks" },
      ],
    });
    expect(brief(findings)).toEqual(["error on_complete_target_unrouted AGENT_CTO_TASKS/ cto"]);
    expect(findings[0]!.what).toBe(
      "task task-1 of stream AGENT_CTO_TASKS (agent cto) chains to genbrain.agents.securty.tasks, which no stream stores",
    );
    expect(findings[0]!.fix).toBe(
      'fix the task\'s on_complete.publish_to (no agent "securty" has a stream), or: nats stream add AGENT_SECURTY_TASKS --subjects genbrain.agents.securty.tasks --retention limits --max-age 72h --storage file',
    );
  });

  it("checks step by step, a thousand consumers a step, with the findings of one go", () => {
    // 2,500 task consumers without ack sampling, every 100th with a backlog past its max age.
    const input = reference(["cto"]);
    const many = Array.from({ length: 2_500 }, (_, i) =>
      worker("cto", {
        name: `cto-worker-${i}`,
        sampleFrequency: "",
        ...(i % 100 === 0 ? { pending: 50, oldestUnackedMs: input.nowMs - 50 * 60 * MIN } : {}),
      }),
    );
    const whole = { ...input, consumers: [...input.consumers, ...many], ackRates: new Map<string, number>() };
    for (let i = 0; i < 2_500; i += 100)
      whole.ackRates.set(`AGENT_CTO_TASKS/cto-worker-${i}`, 1 / (30 * MIN));
    const steps = checkSteps(whole);
    let yields = 0;
    let step = steps.next();
    for (; !step.done; step = steps.next()) yields++;
    // 2,502 durable consumers: a step ends after the 1,000th and the 2,000th.
    expect(yields).toBe(2);
    expect(step.value).toEqual(evaluateChecks(whole));
    const counts = new Map<string, number>();
    for (const f of step.value) counts.set(f.check, (counts.get(f.check) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({
      ack_sampling_off: 2_500,
      backlog_outlives_max_age: 25,
      backpressure: 25,
    });
  });

  it("flags an ack wait shorter than the expected work, with the exact fix", () => {
    const input = reference();
    const findings = evaluateChecks({
      ...input,
      consumers: [...input.consumers].map((c) => (c.name === "cto-worker" ? { ...c, ackWaitMs: 30_000 } : c)),
    });
    expect(brief(findings)).toEqual(["error ack_wait_too_short AGENT_CTO_TASKS/cto-worker cto"]);
    expect(findings[0]!.what).toContain("ack wait 30s is shorter than the expected work of 20m (agent cto)");
    expect(findings[0]!.fix).toBe("nats consumer edit AGENT_CTO_TASKS cto-worker --ack-wait 30m");
    // Exactly the expected work is enough; the expected work is a setting.
    const ceoOnly = reference(["ceo"]);
    expect(
      evaluateChecks({
        ...ceoOnly,
        consumers: [worker("ceo", { ackWaitMs: 20 * MIN }), broadcastConsumer("ceo")],
      }),
    ).toEqual([]);
    expect(brief(evaluateChecks({ ...ceoOnly, expectedWorkMs: 40 * MIN }))).toEqual([
      "error ack_wait_too_short AGENT_CEO_TASKS/ceo-worker ceo",
    ]);
    // Broadcast and inbox consumers answer quickly: not concerned.
    expect(
      evaluateChecks({
        ...input,
        consumers: [...input.consumers].map((c) => (c.kind === "broadcasts" ? { ...c, ackWaitMs: 1000 } : c)),
      }),
    ).toEqual([]);
  });

  it("recommends half as long again as the work, rounded up", () => {
    expect(recommendedAckWaitMs(20 * MIN)).toBe(30 * MIN);
    expect(recommendedAckWaitMs(7 * MIN)).toBe(11 * MIN);
    expect(recommendedAckWaitMs(3000)).toBe(5000);
  });

  it("flags unlimited max-deliver: an error on tasks, a warning on an inbox, nothing on broadcasts", () => {
    const input = reference(["cto"]);
    const inbox = stream("AGENT_CTO_INBOX", {
      subjects: ["genbrain.agents.cto.inbox"],
      kind: "inbox",
      role: "cto",
    });
    const findings = evaluateChecks({
      ...input,
      streams: [...input.streams, inbox],
      consumers: [
        worker("cto", { maxDeliver: -1 }),
        consumer("AGENT_CTO_INBOX", "cto-inbox", { kind: "inbox", role: "cto", maxDeliver: -1 }),
        broadcastConsumer("cto"),
      ],
    });
    expect(brief(findings)).toEqual([
      "error no_max_deliver AGENT_CTO_TASKS/cto-worker cto",
      "warning no_max_deliver AGENT_CTO_INBOX/cto-inbox cto",
    ]);
    expect(findings[0]!.fix).toBe("nats consumer edit AGENT_CTO_TASKS cto-worker --max-deliver 3");
  });

  it("flags a bounded max-deliver with no dead-letter stream or router, once per role", () => {
    const input = reference(["ceo", "cto"]);
    const noDlq = { ...input, streams: [...input.streams].filter((s) => s.kind !== "deadletter") };
    expect(brief(evaluateChecks(noDlq))).toEqual([
      "warning no_deadletter_path / ceo",
      "warning no_deadletter_path / cto",
    ]);
    // Something routes them (the orgwatch daemon): fine.
    expect(evaluateChecks({ ...noDlq, deadLetterRouted: true })).toEqual([]);
    // A stream with a wildcard holding the dead-letter subject: fine.
    const wide = stream("ORG", { subjects: ["genbrain.org.>"], kind: "other" });
    expect(evaluateChecks({ ...noDlq, streams: [...noDlq.streams, wide] })).toEqual([]);
    // A configured dead-letter subject is the one looked for.
    expect(brief(evaluateChecks({ ...input, deadLetterSubject: "ops.dlq" }))).toHaveLength(2);
  });

  it("flags task streams without limits and durable work in memory", () => {
    const input = reference(["cto", "ceo"]);
    const findings = evaluateChecks({
      ...input,
      streams: [
        taskStream("cto", { maxAgeMs: 0 }),
        taskStream("ceo", { storage: "memory" }),
        { ...BROADCASTS, storage: "memory" },
        DEADLETTER,
      ],
    });
    expect(brief(findings)).toEqual([
      "error memory_storage AGENT_CEO_TASKS/ ceo",
      "warning no_stream_limits AGENT_CTO_TASKS/ cto",
      "warning memory_storage ORG_BROADCASTS/ ",
    ]);
    expect(findings[1]!.fix).toBe("nats stream edit AGENT_CTO_TASKS --max-age 72h");
    // A max-msgs limit is a limit.
    expect(
      evaluateChecks({
        ...input,
        streams: [
          taskStream("cto", { maxAgeMs: 0, maxMsgs: 10_000 }),
          taskStream("ceo"),
          BROADCASTS,
          DEADLETTER,
        ],
      }),
    ).toEqual([]);
  });

  it("flags agents with no broadcast consumer and broadcast consumers that do not ack explicitly", () => {
    const input = reference(["ceo", "cto", "security"]);
    const findings = evaluateChecks({
      ...input,
      consumers: [
        ...["ceo", "cto", "security"].map((r) => worker(r)),
        broadcastConsumer("ceo"),
        broadcastConsumer("cto", { ackPolicy: "none" }),
      ],
    });
    expect(brief(findings)).toEqual([
      "warning broadcast_consumer_missing ORG_BROADCASTS/ security",
      "warning broadcast_ack_not_explicit ORG_BROADCASTS/cto-broadcasts cto",
    ]);
    // No broadcasts stream at all: nothing to miss.
    expect(
      evaluateChecks({
        ...input,
        streams: [...input.streams].filter((s) => s.kind !== "broadcasts"),
        consumers: [...input.consumers].filter((c) => c.kind !== "broadcasts"),
      }),
    ).toEqual([]);
  });

  it("flags a role with a task stream but no durable consumer; ephemeral readers do not count", () => {
    const input = reference(["ceo", "cto"]);
    const findings = evaluateChecks({
      ...input,
      streams: [...input.streams].map((s) => (s.role === "cto" ? { ...s, messages: 7 } : s)),
      consumers: [...input.consumers]
        .filter((c) => c.name !== "cto-worker")
        .concat(worker("cto", { name: "orgwatch-reader", durable: false })),
    });
    expect(brief(findings)).toEqual(["error role_without_consumer AGENT_CTO_TASKS/ cto"]);
    expect(findings[0]!.what).toContain("7 messages waiting");
  });

  it("on a stream holding every role's tasks, flags roster roles with no consumer for their subject", () => {
    const shared = stream("AGENT_TASKS", { subjects: ["genbrain.agents.*.tasks"] });
    const findings = evaluateChecks({
      ...reference([]),
      streams: [shared, DEADLETTER],
      consumers: [
        consumer("AGENT_TASKS", "ceo-worker", { role: "ceo", filterSubjects: ["genbrain.agents.ceo.tasks"] }),
      ],
      roster: ["ceo", "cto"],
    });
    expect(brief(findings)).toEqual(["error role_without_consumer AGENT_TASKS/ cto"]);
    expect(findings[0]!.fix).toContain("--filter genbrain.agents.cto.tasks");
  });

  it("flags backpressure: at one task per expected work when no rate was observed, else at the observed rate", () => {
    const input = reference(["cto"]);
    const withLag = (pending: number, ackPending = 0) => ({
      ...input,
      consumers: [worker("cto", { pending, ackPending }), broadcastConsumer("cto")],
    });
    // 12 × 20m = 4h: not over 4h.
    expect(evaluateChecks(withLag(10, 2))).toEqual([]);
    const findings = evaluateChecks(withLag(12, 1));
    expect(brief(findings)).toEqual(["warning backpressure AGENT_CTO_TASKS/cto-worker cto"]);
    expect(findings[0]!.what).toContain("13 tasks wait");
    expect(findings[0]!.what).toContain("about 4h20m to drain at one task per 20m");
    // The reference's example: 50 tasks at one per 30 minutes is 25 hours.
    const observed = new Map([["AGENT_CTO_TASKS/cto-worker", 1 / (30 * MIN)]]);
    const slow = evaluateChecks({ ...withLag(50), ackRates: observed });
    expect(slow[0]!.what).toContain("about 1d1h to drain at the observed 2.0 tasks/hour");
    // A fast agent drains 50 in 50 minutes.
    const fast = new Map([["AGENT_CTO_TASKS/cto-worker", 1 / MIN]]);
    expect(evaluateChecks({ ...withLag(50), ackRates: fast })).toEqual([]);
  });

  it("notes task consumers without ack sampling", () => {
    const input = reference(["cto"]);
    const findings = evaluateChecks({
      ...input,
      consumers: [worker("cto", { sampleFrequency: "" }), broadcastConsumer("cto")],
    });
    expect(brief(findings)).toEqual(["info ack_sampling_off AGENT_CTO_TASKS/cto-worker cto"]);
    expect(findings[0]!.fix).toBe("nats consumer edit AGENT_CTO_TASKS cto-worker --sample 100");
  });

  it("flags streams with fewer than 3 replicas in a cluster, not on a single server", () => {
    const input = reference(["cto"]);
    const clustered = (replicas: number) => ({
      ...input,
      streams: [taskStream("cto", { cluster: "east", replicas }), BROADCASTS, DEADLETTER],
    });
    expect(brief(evaluateChecks(clustered(1)))).toEqual([
      "warning single_replica_in_cluster AGENT_CTO_TASKS/ cto",
    ]);
    expect(evaluateChecks(clustered(3))).toEqual([]);
  });

  it("sorts errors first and derives the exit code", () => {
    const input = reference(["cto"]);
    const findings = evaluateChecks({
      ...input,
      streams: [taskStream("cto", { maxAgeMs: 0 }), BROADCASTS],
      consumers: [worker("cto", { ackWaitMs: 1000, sampleFrequency: "" }), broadcastConsumer("cto")],
    });
    expect(findings.map((f) => f.level)).toEqual(["error", "warning", "warning", "info"]);
    expect(exitCodeFor(findings, false)).toBe(2);
    const warnings = findings.filter((f) => f.level !== "error");
    expect(exitCodeFor(warnings, false)).toBe(0);
    expect(exitCodeFor(warnings, true)).toBe(1);
    expect(
      exitCodeFor(
        findings.filter((f) => f.level === "info"),
        true,
      ),
    ).toBe(0);
    expect(exitCodeFor([], true)).toBe(0);
  });
});

describe("ack rates", () => {
  it("measures acks over time, and none for a re-created consumer or one that acked nothing", () => {
    expect(ackRate({ atMs: 0, acked: 10, createdMs: 1 }, { atMs: 60_000, acked: 13, createdMs: 1 })).toBe(
      3 / 60_000,
    );
    expect(ackRate({ atMs: 0, acked: 10, createdMs: 1 }, { atMs: 60_000, acked: 10, createdMs: 1 })).toBe(
      undefined,
    );
    expect(ackRate({ atMs: 0, acked: 10, createdMs: 1 }, { atMs: 60_000, acked: 13, createdMs: 2 })).toBe(
      undefined,
    );
    expect(ackRate({ atMs: 0, acked: 10, createdMs: 1 }, { atMs: 60_000, acked: 3, createdMs: 1 })).toBe(
      undefined,
    );
  });
});

describe("check report", () => {
  const findings = evaluateChecks({
    ...reference(["cto"]),
    consumers: [worker("cto", { ackWaitMs: 30_000 }), broadcastConsumer("cto")],
  });
  const report = {
    servers: ["nats://h:4222"],
    streams: 3,
    consumers: 2,
    roster: ["cto"],
    findings,
    exitCode: 2,
  };

  it("prints a table and the details, without colour unless asked", () => {
    const text = renderText(report, false);
    expect(text).not.toContain("\x1b[");
    expect(text).toContain("orgwatch check: nats://h:4222: 3 streams, 2 consumers, agents cto");
    expect(text).toMatch(/LEVEL\s+CHECK\s+ROLE\s+STREAM \/ CONSUMER/);
    expect(text).toMatch(/error\s+ack_wait_too_short\s+cto\s+AGENT_CTO_TASKS \/ cto-worker/);
    expect(text).toContain("fix:  nats consumer edit AGENT_CTO_TASKS cto-worker --ack-wait 30m");
    expect(text).toContain("1 error, 0 warnings, 0 info; exit code 2");
    expect(renderText(report, true)).toContain("\x1b[31merror");
    expect(renderText({ ...report, findings: [], exitCode: 0 }, false)).toContain("No findings");
  });

  it("prints JSON for CI", () => {
    const doc = JSON.parse(renderJson(report)) as { summary: unknown; exitCode: number; findings: Finding[] };
    expect(doc.summary).toEqual({ error: 1, warning: 0, info: 0 });
    expect(doc.exitCode).toBe(2);
    expect(doc.findings[0]).toMatchObject({ check: "ack_wait_too_short", level: "error", role: "cto" });
  });

  it("colours a terminal only, and never with NO_COLOR", () => {
    expect(wantsColour({ isTTY: true }, {})).toBe(true);
    expect(wantsColour({ isTTY: false }, {})).toBe(false);
    expect(wantsColour({}, {})).toBe(false);
    expect(wantsColour({ isTTY: true }, { NO_COLOR: "1" })).toBe(false);
    expect(wantsColour({ isTTY: false }, { FORCE_COLOR: "1" })).toBe(true);
  });
});
