// The console's pure parts: an agent's colour and reasons, a dead letter read back for people, what
// a replay publishes, and the bounded memory of the last hour.
import { describe, expect, it } from "vitest";
import { agentHealth, type AgentFacts } from "../../src/logic/agent-health.js";
import {
  payloadView,
  replayPlan,
  summarise,
  type StoredDeadLetter,
} from "../../src/logic/deadletter-view.js";
import { HistoryModel } from "../../src/model/history.js";
import { checkAdminApi } from "../../src/exporters/http.js";
import type { WebConfig } from "../../src/exporters/web-config.js";
import { configWith } from "../../src/config/load.js";
import { ConfigError } from "../../src/config/schema.js";
import { Organization } from "../../src/model/organization.js";
import { consumerState, pollResult, streamState } from "../helpers/jetstream-fixtures.js";

const healthy: AgentFacts = {
  up: true,
  everReported: true,
  status: "ok",
  lag: 0,
  oldestTaskAgeSeconds: undefined,
  ackWaitSeconds: 1800,
  drainEtaSeconds: 0,
  maxEtaSeconds: 14_400,
  deadLettersLastHour: 0,
  lostLastHour: 0,
  unackedBroadcasts: 0,
};

describe("agentHealth", () => {
  it("is ok with nothing to say", () => {
    expect(agentHealth(healthy)).toEqual({ health: "ok", reasons: [] });
  });
  it("pages what pages: silent, stalled or stopped work, a dead letter or a lost task this hour", () => {
    expect(agentHealth({ ...healthy, up: false })).toEqual({ health: "critical", reasons: ["silent"] });
    expect(agentHealth({ ...healthy, status: "stalled" }).health).toBe("critical");
    expect(agentHealth({ ...healthy, status: "stopped" }).reasons).toEqual(["work stopped"]);
    expect(agentHealth({ ...healthy, deadLettersLastHour: 2 }).reasons).toEqual([
      "2 dead-lettered in the last hour",
    ]);
    expect(agentHealth({ ...healthy, lostLastHour: 1 }).health).toBe("critical");
  });
  it("warns of lag, old work, broadcasts and a backlog that will not drain in time", () => {
    expect(agentHealth({ ...healthy, status: "lagging", lag: 6 })).toEqual({
      health: "warning",
      reasons: ["lagging"],
    });
    expect(agentHealth({ ...healthy, lag: 1, oldestTaskAgeSeconds: 1801 }).reasons).toEqual([
      "oldest task older than its ack wait",
    ]);
    expect(agentHealth({ ...healthy, lag: 3, drainEtaSeconds: Infinity }).reasons).toEqual([
      "backlog not draining",
    ]);
    expect(agentHealth({ ...healthy, lag: 3, drainEtaSeconds: 20_000 }).reasons).toEqual([
      "backlog drains too slowly",
    ]);
    expect(agentHealth({ ...healthy, unackedBroadcasts: 2 }).reasons).toEqual([
      "2 broadcasts not acknowledged",
    ]);
  });
  it("a role that never reported is a warning, not a page", () => {
    expect(agentHealth({ ...healthy, up: false, everReported: false })).toEqual({
      health: "warning",
      reasons: ["never reported"],
    });
  });
  it("critical reasons come first, the warnings after", () => {
    expect(agentHealth({ ...healthy, status: "stalled", unackedBroadcasts: 1 }).reasons).toEqual([
      "work stalled",
      "1 broadcasts not acknowledged",
    ]);
  });
});

const enc = new TextEncoder();
const task = { task_id: "task-1847", type: "feature_implementation", sla: { ack_within_seconds: 60 } };
function letter(
  headers: [string, string][],
  data: Uint8Array = enc.encode(JSON.stringify(task)),
): StoredDeadLetter {
  return {
    seq: 7,
    subject: "genbrain.org.deadletter",
    storedMs: Date.UTC(2026, 11, 2, 4, 0, 0),
    headers,
    data,
  };
}
const routed: [string, string][] = [
  ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
  ["Orgwatch-Source-Msg-Id", "task-1847"],
  ["Nats-Msg-Id", "orgwatch-dl:AGENT_CTO_TASKS:cto-worker:42:t2026"],
  ["Orgwatch-Source-Stream", "AGENT_CTO_TASKS"],
  ["Orgwatch-Source-Consumer", "cto-worker"],
  ["Orgwatch-Source-Sequence", "42"],
  ["Orgwatch-Deliveries", "3"],
  ["Orgwatch-Deadletter-Reason", "max_deliveries"],
  ["Orgwatch-Source-Subject", "genbrain.agents.cto.tasks"],
  ["X-Agent", "ceo"],
];

describe("a dead letter read back", () => {
  it("says where it came from, which task and which trace", () => {
    expect(summarise(letter(routed), "genbrain")).toEqual({
      id: 7,
      at: "2026-12-02T04:00:00.000Z",
      role: "cto",
      sourceStream: "AGENT_CTO_TASKS",
      sourceSequence: 42,
      consumer: "cto-worker",
      subject: "genbrain.agents.cto.tasks",
      deliveries: 3,
      reason: "max_deliveries",
      taskId: "task-1847",
      traceId: "0af7651916cd43dd8448eb211c80319c",
      msgId: "orgwatch-dl:AGENT_CTO_TASKS:cto-worker:42:t2026",
      missing: false,
      payloadOmitted: false,
      bytes: enc.encode(JSON.stringify(task)).length,
    });
  });
  it("shows JSON pretty, text as text, and anything else as bytes", () => {
    expect(payloadView(enc.encode('{"a":[1,2]}'))).toEqual({
      kind: "json",
      text: '{\n  "a": [\n    1,\n    2\n  ]\n}',
    });
    expect(payloadView(enc.encode("<script>alert(1)</script>"))).toEqual({
      kind: "text",
      text: "<script>alert(1)</script>",
    });
    expect(payloadView(new Uint8Array([0xff, 0x00, 0x41]))).toEqual({
      kind: "binary",
      base64: "/wBB",
      hex: "ff 00 41",
    });
    expect(payloadView(enc.encode("bell\u0007"))).toMatchObject({ kind: "binary" });
  });
});

describe("replayPlan", () => {
  it("publishes the original payload and headers to the original subject, with its own id and Orgwatch-Replay-Of", () => {
    const r = replayPlan(letter(routed), "ORG_DEADLETTER");
    if (!("plan" in r)) throw new Error(r.refused);
    expect(r.plan.subject).toBe("genbrain.agents.cto.tasks");
    expect(r.plan.headers).toEqual([
      ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
      ["X-Agent", "ceo"],
      ["Nats-Msg-Id", r.plan.msgId],
      ["Orgwatch-Replay-Of", "orgwatch-dl:AGENT_CTO_TASKS:cto-worker:42:t2026"],
    ]);
    expect(new TextDecoder().decode(r.plan.data)).toBe(JSON.stringify(task));
    expect(r.plan.msgId).toMatch(/^orgwatch-replay:[0-9a-f]{40}$/);
    expect(r.plan.recordKey).toMatch(/^replay\.[0-9a-f]{40}$/);
  });
  it("derives the same id every time from the same dead letter, another from another", () => {
    const a = replayPlan(letter(routed), "DL");
    const b = replayPlan(letter(routed), "DL");
    const other = replayPlan(letter(routed.map(([k, v]) => [k, k === "Nats-Msg-Id" ? v + "x" : v])), "DL");
    expect("plan" in a && "plan" in b && a.plan.msgId === b.plan.msgId).toBe(true);
    expect("plan" in a && "plan" in other && a.plan.msgId !== other.plan.msgId).toBe(true);
  });
  it("refuses what has nothing to replay or nowhere to go", () => {
    expect(replayPlan(letter([["X", "y"]]), "DL")).toEqual({
      refused: "it does not say its original subject (not routed by orgwatch)",
    });
    expect(replayPlan(letter([...routed, ["Orgwatch-Message-Missing", "true"]]), "DL")).toMatchObject({
      refused: expect.stringContaining("already gone"),
    });
    expect(
      replayPlan(letter([...routed, ["Orgwatch-Payload-Omitted", "too large (2000000 bytes)"]]), "DL"),
    ).toMatchObject({
      refused: expect.stringContaining("too large"),
    });
  });
});

describe("HistoryModel", () => {
  it("keeps the highest lag per bucket over the window, and forgets what is older", () => {
    const h = new HistoryModel({ windowMs: 60_000, points: 6, feedSize: 3, maxRoles: 2, timelines: 2 });
    h.recordLag(0, new Map([["cto", 1]]));
    h.recordLag(5_000, new Map([["cto", 4]]));
    h.recordLag(9_999, new Map([["cto", 2]]));
    h.recordLag(10_000, new Map([["cto", 3]]));
    expect(h.lagSeries("cto")).toEqual([
      [0, 4],
      [10_000, 3],
    ]);
    h.recordLag(65_000, new Map([["cto", 0]]));
    expect(h.lagSeries("cto")).toEqual([
      [10_000, 3],
      [60_000, 0],
    ]);
    h.recordLag(200_000, new Map());
    expect(h.lagSeries("cto")).toEqual([]);
  });
  it("draws at most maxRoles agents", () => {
    const h = new HistoryModel({ windowMs: 60_000, points: 6, feedSize: 3, maxRoles: 2, timelines: 2 });
    h.recordLag(
      0,
      new Map([
        ["a", 1],
        ["b", 1],
        ["c", 1],
      ]),
    );
    expect([h.lagSeries("a").length, h.lagSeries("b").length, h.lagSeries("c").length]).toEqual([1, 1, 0]);
  });
  it("keeps the newest feed items, newest first, each with a new id, and tells listeners", () => {
    const h = new HistoryModel({ windowMs: 60_000, points: 6, feedSize: 3, maxRoles: 2, timelines: 2 });
    const heard: number[] = [];
    h.on("feed", (f) => heard.push(f.id));
    for (let i = 1; i <= 5; i++) h.add({ atMs: i, kind: "dead_letter", role: "devops", text: `#${i}` });
    expect(h.feed().map((f) => f.text)).toEqual(["#5", "#4", "#3"]);
    expect(heard).toEqual([1, 2, 3, 4, 5]);
  });
});

describe("checkAdminApi", () => {
  const web = (users: number, clientAuth?: string) =>
    ({
      tls: clientAuth ? { clientAuth } : undefined,
      users: new Map([...Array(users).keys()].map((i) => [`u${i}`, "$2y$hash"])),
      headers: {},
      rateLimit: undefined,
    }) as unknown as WebConfig;
  it("is off unless asked for", () => {
    expect(checkAdminApi(configWith({}), undefined)).toBe("off");
  });
  it("needs authentication: basic auth users or required client certificates", () => {
    const on = configWith({ "web.enable-admin-api": true });
    expect(() => checkAdminApi(on, undefined)).toThrow(
      /^invalid setting --web.enable-admin-api: write actions need authentication/,
    );
    expect(() => checkAdminApi(on, web(0))).toThrow(ConfigError);
    expect(() => checkAdminApi(on, web(0, "RequestClientCert"))).toThrow(ConfigError);
    expect(checkAdminApi(on, web(1))).toBe("authenticated");
    expect(checkAdminApi(on, web(0, "RequireAndVerifyClientCert"))).toBe("authenticated");
  });
  it("or the explicit choice to go without, for a local machine", () => {
    const local = configWith({ "web.enable-admin-api": true, "web.admin-api.allow-unauthenticated": true });
    expect(checkAdminApi(local, undefined)).toBe("unauthenticated");
  });
});

describe("the feed, from the model's polls", () => {
  const config = configWith({});
  const poll = (at: number, status: (i: number) => "ok" | "stalled" | "stopped", n: number) =>
    pollResult(
      at,
      [streamState("AGENT_CTO_TASKS", { kind: "tasks", role: "cto" })],
      Array.from({ length: n }, (_, i) =>
        consumerState("AGENT_CTO_TASKS", `w${i}`, {
          kind: "tasks",
          role: "cto",
          durable: true,
          status: status(i),
        }),
      ),
    );
  const statusItems = (org: Organization) => org.history.feed().filter((f) => f.kind === "consumer_status");

  it("says when work stalls or stops, and when it recovers; not lag coming and going", () => {
    const org = new Organization(config);
    org.jetstream.applyPoll(poll(1, () => "ok", 3));
    org.jetstream.applyPoll(poll(2, (i) => (i === 1 ? "stalled" : "ok"), 3));
    org.jetstream.applyPoll(poll(3, () => "ok", 3));
    expect(statusItems(org).map((f) => f.text)).toEqual([
      "AGENT_CTO_TASKS/w1 is ok (was stalled), lag 0",
      "AGENT_CTO_TASKS/w1 is stalled (was ok), lag 0",
    ]);
  });
  it("sums up many changes of one poll in one item instead of flooding the feed", () => {
    const org = new Organization(config);
    org.jetstream.applyPoll(poll(1, () => "ok", 3000));
    org.jetstream.applyPoll(poll(2, (i) => (i % 3 === 0 ? "stopped" : i % 3 === 1 ? "stalled" : "ok"), 3000));
    const items = statusItems(org);
    expect(items).toHaveLength(1);
    expect(items[0]!.text).toBe(
      "2000 consumers changed at once (1000 stopped, 1000 stalled), e.g. AGENT_CTO_TASKS/w0, AGENT_CTO_TASKS/w1, AGENT_CTO_TASKS/w3",
    );
    expect(items[0]!.role).toBe("cto");
  });
});
