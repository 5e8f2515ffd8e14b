// Agents' status on a real nats-server: the roster (configured roles ∪ task-stream roles ∪ status
// senders), orgwatch_agent_up going 1 → 0 once an agent falls silent past a short
// --agent.stale-after, one-hot states, refused input counted by reason, and learned roles capped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Daemon } from "../../src/daemon.js";
import { AGENT_STATES } from "../../src/logic/status-message.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";

const STALE_AFTER_MS = 3000;
/** Roles learned from status messages alone (neither configured nor owning a task stream). */
const MAX_LEARNED = 2;

describe("agents' status", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let daemon: Daemon;
  const encoder = new TextEncoder();

  const publishStatus = (role: string, body: unknown) =>
    nc.publish(
      `genbrain.agents.${role}.status`,
      typeof body === "string" ? encoder.encode(body) : encoder.encode(JSON.stringify(body)),
    );

  /** The one state set to 1 for `role`, after checking every state has a series and exactly one is 1. */
  function stateOf(m: Scrape, role: string): string {
    const series = m.series("orgwatch_agent_state", { role });
    expect(series.map((s) => s.labels["state"]).sort()).toEqual([...AGENT_STATES].sort());
    const hot = series.filter((s) => s.value === 1);
    expect(hot).toHaveLength(1);
    expect(series.filter((s) => s.value !== 0 && s.value !== 1)).toEqual([]);
    return hot[0]!.labels["state"]!;
  }

  /** Scrapes until `check` holds (the subscription is asynchronous), then returns that scrape. */
  const scrapeUntil = (check: (m: Scrape) => boolean, what: string) =>
    waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return check(m) ? m : undefined;
      },
      { what },
    );

  beforeAll(async () => {
    org = await startTestOrg({
      topology: { roles: ["ceo", "cto", "security"] },
      settings: { roles: ["cfo"], "agent.stale-after": STALE_AFTER_MS, "labels.max-values": MAX_LEARNED },
      firstPoll: true,
    });
    ({ nc, daemon } = org);
  });
  afterAll(() => org?.stop());

  it("lists configured and task-stream roles as down before any status", async () => {
    const m = await scrape(daemon.url);
    for (const role of ["ceo", "cto", "security", "cfo"]) {
      expect(m.value("orgwatch_agent_up", { role }), role).toBe(0);
      expect(stateOf(m, role), role).toBe("unknown");
      expect(m.value("orgwatch_agent_last_status_timestamp_seconds", { role }), role).toBeUndefined();
    }
    expect(m.series("orgwatch_agent_up")).toHaveLength(4);
  });

  it("reports agents up with their state, then down once silent past the window", async () => {
    const before = Date.now();
    publishStatus("ceo", { state: "busy", task_id: "task-1" });
    publishStatus("cto", { state: "idle", ts: Math.floor(Date.now() / 1000) });
    publishStatus("intern", { state: "error" }); // a role known only from its status
    await nc.flush();
    const up = await scrapeUntil(
      (m) => m.value("orgwatch_agent_up", { role: "intern" }) === 1,
      "statuses to arrive",
    );
    const after = Date.now();
    expect(up.value("orgwatch_agent_up", { role: "ceo" })).toBe(1);
    expect(up.value("orgwatch_agent_up", { role: "cto" })).toBe(1);
    expect(stateOf(up, "ceo")).toBe("busy");
    expect(stateOf(up, "cto")).toBe("idle");
    expect(stateOf(up, "intern")).toBe("error");
    // A task stream with no status: down, not absent. A configured role likewise.
    expect(up.value("orgwatch_agent_up", { role: "security" })).toBe(0);
    expect(stateOf(up, "security")).toBe("unknown");
    expect(up.value("orgwatch_agent_up", { role: "cfo" })).toBe(0);
    // The arrival time, on orgwatch's clock (not the agent's `ts`).
    for (const role of ["ceo", "cto", "intern"]) {
      const ts = up.value("orgwatch_agent_last_status_timestamp_seconds", { role })!;
      expect(ts * 1000, role).toBeGreaterThanOrEqual(before);
      expect(ts * 1000, role).toBeLessThanOrEqual(after);
    }
    expect(up.value("orgwatch_agent_last_status_timestamp_seconds", { role: "security" })).toBeUndefined();
    const ceoLast = up.value("orgwatch_agent_last_status_timestamp_seconds", { role: "ceo" })!;

    // Silence: every agent goes down. Every scrape on the way must agree with the window: up while
    // its last status is younger than the window when the scrape started, down only once it is older
    // than the window when the scrape ended.
    const silent = ["ceo", "cto", "intern"];
    const violations: string[] = [];
    const down = await waitFor(
      async () => {
        const started = Date.now();
        const m = await scrape(daemon.url);
        const ended = Date.now();
        for (const role of silent) {
          const lastMs = m.value("orgwatch_agent_last_status_timestamp_seconds", { role })! * 1000;
          const isUp = m.value("orgwatch_agent_up", { role });
          if (isUp === 0 && ended - lastMs <= STALE_AFTER_MS) violations.push(`${role} down too early`);
          if (isUp === 1 && started - lastMs > STALE_AFTER_MS) violations.push(`${role} up too late`);
        }
        return silent.every((role) => m.value("orgwatch_agent_up", { role }) === 0) ? m : undefined;
      },
      { what: "silent agents to go down", intervalMs: 200 },
    );
    expect(violations).toEqual([]);
    for (const role of silent) {
      // A silent agent's last state is not vouched for any more.
      expect(stateOf(down, role), role).toBe("unknown");
    }
    expect(down.value("orgwatch_agent_last_status_timestamp_seconds", { role: "ceo" })).toBe(ceoLast);
  });

  it("follows state changes one-hot, and an agent that said offline stays offline when silent", async () => {
    for (const state of ["idle", "busy", "error", "offline"]) {
      publishStatus("ceo", { state });
      await nc.flush();
      const m = await scrapeUntil(
        (s) =>
          s.value("orgwatch_agent_up", { role: "ceo" }) === 1 &&
          s.value("orgwatch_agent_state", { role: "ceo", state }) === 1,
        `ceo ${state}`,
      );
      expect(stateOf(m, "ceo")).toBe(state);
    }
    const silent = await scrapeUntil(
      (m) => m.value("orgwatch_agent_up", { role: "ceo" }) === 0,
      "ceo to go down",
    );
    expect(stateOf(silent, "ceo")).toBe("offline");
  });

  it("counts refused status messages by reason and never makes a label of raw values", async () => {
    const invalid = (m: Scrape, reason: string) =>
      m.value("orgwatch_invalid_messages_total", { source: "status", reason }) ?? 0;
    const base = await scrape(daemon.url);
    const baseValid = daemon.org.agents.statusMessages;
    publishStatus("cto", "not json");
    publishStatus("cto", "[1,2]");
    publishStatus("cto", { state: 7 });
    publishStatus("cto", { state: "busy", ts: "yesterday" });
    publishStatus("cto", { state: "idle", pad: "x".repeat(70 * 1024) });
    publishStatus("cto", {});
    publishStatus("security", { state: "SLEEPING-DEEPLY" });
    publishStatus("bad$role", { state: "idle" });
    await nc.flush();
    const expected: Record<string, number> = {
      invalid_json: 1,
      not_object: 1,
      wrong_type: 1,
      bad_timestamp: 1,
      oversize: 1,
      missing_field: 1,
      unknown_state: 1,
      bad_role: 1,
    };
    const m = await scrapeUntil(
      (s) => Object.keys(expected).every((r) => invalid(s, r) - invalid(base, r) === expected[r]),
      "invalid statuses to be counted",
    );
    for (const [reason, n] of Object.entries(expected))
      expect(invalid(m, reason) - invalid(base, reason)).toBe(n);
    expect(daemon.org.agents.statusMessages).toBe(baseValid);
    // A state orgwatch does not know proves the agent alive: up, state unknown.
    expect(m.value("orgwatch_agent_up", { role: "security" })).toBe(1);
    expect(stateOf(m, "security")).toBe("unknown");
    // cto sent only refused messages: it is still down.
    expect(m.value("orgwatch_agent_up", { role: "cto" })).toBe(0);
    expect(m.text).not.toContain("SLEEPING");
    expect(m.text.toLowerCase()).not.toContain("sleeping");
    expect(m.text).not.toContain("bad$role");
  });

  it("caps roles learned from status messages; the rest count as overflow", async () => {
    const overflow = (m: Scrape) =>
      m.value("orgwatch_label_overflow_total", { metric: "orgwatch_agent_up" }) ?? 0;
    const base = await scrape(daemon.url);
    // "intern" is already learned: one more slot, then overflow.
    publishStatus("intern2", { state: "idle" });
    publishStatus("intern3", { state: "idle" });
    publishStatus("intern4", { state: "busy" });
    publishStatus("intern3", { state: "busy" });
    // Roles of the roster never count against the cap.
    publishStatus("cfo", { state: "idle" });
    await nc.flush();
    const m = await scrapeUntil(
      (s) => overflow(s) - overflow(base) === 3 && s.value("orgwatch_agent_up", { role: "cfo" }) === 1,
      "overflow to be counted",
    );
    expect(overflow(m) - overflow(base)).toBe(3);
    expect(m.value("orgwatch_agent_up", { role: "intern2" })).toBe(1);
    expect(m.value("orgwatch_agent_up", { role: "intern3" })).toBeUndefined();
    expect(m.value("orgwatch_agent_up", { role: "intern4" })).toBeUndefined();
    expect(
      m
        .series("orgwatch_agent_up")
        .map((s) => s.labels["role"])
        .sort(),
    ).toEqual(["ceo", "cfo", "cto", "intern", "intern2", "security"]);
    expect(stateOf(m, "cfo")).toBe("idle");
  });
});
