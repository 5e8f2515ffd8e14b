// Hostile input over a real nats-server: status, event and task payloads that are random bytes, huge,
// deeply nested, of the wrong types, with control characters in role tokens and subjects, and tens of
// thousands of distinct event types and roles. orgwatch must not crash, must count every message as
// valid or invalid (exactly, by reason), must cap every label set with the overflow counted, and its
// memory and series count must stay bounded however many distinct values arrive.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamClient } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { scrape, type Scrape } from "../helpers/metrics.js";
import { prng } from "../helpers/prng.js";
import { waitFor } from "../helpers/wait.js";

const CAP = 20;
const enc = new TextEncoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const random = prng(0x0c0ffee);

/** Random bytes that can never be JSON: the first byte is not valid UTF-8. */
function garbage(maxLen: number): Uint8Array {
  const b = new Uint8Array(1 + Math.floor(random() * maxLen));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(random() * 256);
  b[0] = 0xff;
  return b;
}

/** An event with a field nested `depth` arrays deep (still under the 64 KiB limit). */
function deeplyNested(depth: number, fields: Record<string, unknown>): Uint8Array {
  const head = JSON.stringify(fields).slice(0, -1);
  return enc.encode(`${head},"n":${"[".repeat(depth)}${"]".repeat(depth)}}`);
}

function parsesAsJson(data: Uint8Array): boolean {
  try {
    JSON.parse(new TextDecoder().decode(data));
    return true;
  } catch {
    return false;
  }
}

function total(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  return m.series(name, labels).reduce((s, x) => s + x.value, 0);
}

describe("hostile input", () => {
  let org: TestOrg;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let daemon: Daemon;
  let captured: CapturedLog;

  beforeAll(async () => {
    captured = captureLog("info");
    org = await startTestOrg({
      topology: { roles: ["ceo", "cto"] },
      settings: { "labels.max-values": CAP },
      daemon: { log: captured.log },
      firstPoll: true,
    });
    ({ nc, js, daemon } = org);
  });
  afterAll(() => org?.stop());

  /** Publishes in chunks, waiting after each for orgwatch to have taken every message in. */
  async function send(
    messages: { subject: string; data: Uint8Array }[],
    taken: () => number,
    what: string,
  ): Promise<void> {
    await sendGenerated(messages.length, (i) => messages[i]!, taken, what);
  }

  /** The same, for `count` messages made one at a time (so that none is kept by the test). */
  async function sendGenerated(
    count: number,
    make: (i: number) => { subject: string; data: Uint8Array },
    taken: () => number,
    what: string,
  ): Promise<void> {
    const CHUNK = 2000;
    for (let i = 0; i < count; i += CHUNK) {
      const before = taken();
      const n = Math.min(CHUNK, count - i);
      for (let j = i; j < i + n; j++) {
        const m = make(j);
        nc.publish(m.subject, m.data);
      }
      await nc.flush();
      await waitFor(() => taken() - before >= n, { timeoutMs: 20_000, what });
    }
  }

  it("events: every message counted valid or invalid by reason, types and roles capped, overflow exact", async () => {
    const health = daemon.org.health;
    const agents = daemon.org.agents;
    const taken = () => agents.eventMessages + invalidCount(daemon, "event");
    const ev = (data: Uint8Array) => ({ subject: "genbrain.org.events", data });
    const deep = Array.from({ length: 5 }, () => deeplyNested(30_000, { type: "deep", role: "cto" }));
    const deepValid = deep.filter(parsesAsJson).length;
    const messages = [
      // Unsafe label values: counted, never a label.
      ...Array.from({ length: 5 }, (_, i) => ev(json({ type: `\u0007bell ${i}`, role: "cto" }))),
      // Unknown roles: CAP become labels, the rest overflow.
      ...Array.from({ length: 500 }, (_, i) => ev(json({ type: "task.completed", role: `u${i}` }))),
      ...["\u0001evil", "a.b", "x".repeat(65), "ro le", "é"].map((role) => ev(json({ type: "x", role }))),
      ...Array.from({ length: 100 }, () => ev(garbage(2000))),
      ...Array.from({ length: 10 }, () => ev(json({ type: "big", pad: "x".repeat(70_000) }))),
      ...Array.from({ length: 10 }, () => ev(json({ type: 42 }))),
      ...Array.from({ length: 10 }, () => ev(json({ type: "x", task_id: { nested: true } }))),
      ...Array.from({ length: 10 }, () => ev(json([1, 2, 3]))),
      ...Array.from({ length: 10 }, () => ev(json({}))),
      ...Array.from({ length: 10 }, () => ev(json({ type: "x", ts: "yesterday" }))),
      ...deep.map(ev),
    ];
    await send(messages, taken, "the malformed events taken in");
    const heapBefore = heapMb();
    // Tens of thousands of distinct types: only the first few that fit under the cap become labels.
    await sendGenerated(
      50_000,
      (i) => ev(json({ type: `t-${i}`, role: "cto" })),
      taken,
      "the flood of distinct event types taken in",
    );
    const heapAfter = heapMb();

    const m = await scrape(daemon.url);
    const inv = (reason: string) =>
      m.value("orgwatch_invalid_messages_total", { source: "event", reason }) ?? 0;
    expect(inv("bad_role")).toBe(5);
    expect(inv("invalid_json")).toBe(100 + (deep.length - deepValid));
    expect(inv("oversize")).toBe(10);
    expect(inv("wrong_type")).toBe(20);
    expect(inv("not_object")).toBe(10);
    expect(inv("missing_field")).toBe(10);
    expect(inv("bad_timestamp")).toBe(10);
    expect(agents.eventMessages).toBe(5 + 500 + deepValid + 50_000);

    // Types admitted: task.completed, deep (if it parsed), then t-0.. up to the cap.
    const typeSlots = CAP - 1 - (deepValid > 0 ? 1 : 0);
    const expectedOverflow = 5 + (500 - CAP) + (50_000 - typeSlots);
    expect(m.value("orgwatch_label_overflow_total", { metric: "orgwatch_events_total" })).toBe(
      expectedOverflow,
    );
    expect(total(m, "orgwatch_events_total")).toBe(5 + 500 + deepValid + 50_000);
    const types = new Set(m.series("orgwatch_events_total").map((s) => s.labels["type"]));
    expect(types.size).toBeLessThanOrEqual(CAP + 1);
    const roles = new Set(m.series("orgwatch_events_total").map((s) => s.labels["role"]));
    expect(roles.size).toBeLessThanOrEqual(CAP + 1 + 2);
    for (const s of m.series("orgwatch_events_total")) {
      expect(s.labels["type"]).toMatch(/^[\x21-\x7e]{1,64}$/);
      expect(s.labels["role"]).toMatch(/^[A-Za-z0-9_-]{0,64}$/);
    }
    expect(health.natsConnected).toBe(true);
    // 50,000 distinct values kept nowhere: the heap does not grow with them (a leak of only the type
    // strings would be several MB).
    expect(heapAfter - heapBefore).toBeLessThan(8);
    console.log(
      `events: heap ${heapBefore.toFixed(1)} MB → ${heapAfter.toFixed(1)} MB after 50,000 distinct types`,
    );
  });

  it("status: roles validated from the subject, learned roles capped, malformed payloads counted", async () => {
    const agents = daemon.org.agents;
    const taken = () => agents.statusMessages + invalidCount(daemon, "status");
    // What a bare subscriber receives is the truth of what NATS delivers for odd subjects.
    const seen: string[] = [];
    const bare = nc.subscribe("genbrain.agents.*.status", {
      callback: (_e, msg) => void seen.push(msg.subject),
    });
    const badRoles = ["\u0001x", "x\u007fy", "é", "r".repeat(65), "a+b", "%00"];
    const st = (role: string, data: Uint8Array) => ({ subject: `genbrain.agents.${role}.status`, data });
    const messages = [
      ...badRoles.map((role) => st(role, json({ state: "busy" }))),
      ...Array.from({ length: 100 }, () => st("cto", garbage(500))),
      ...Array.from({ length: 10 }, () => st("cto", json({ state: "busy", pad: "x".repeat(70_000) }))),
      ...Array.from({ length: 10 }, () => st("ceo", json({ state: "dancing" }))),
      ...Array.from({ length: 10 }, () => st("ceo", json({ state: 7 }))),
      ...Array.from({ length: 5 }, () => st("ceo", deeplyNested(30_000, { state: "idle" }))),
    ];
    const before = invalidCount(daemon, "status");
    await send(messages, taken, "the malformed statuses taken in");
    const heapBefore = heapMb();
    await sendGenerated(
      5_000,
      (i) => st(`agent-${i}`, json({ state: "idle" })),
      taken,
      "statuses from 5,000 distinct roles taken in",
    );
    const heapAfter = heapMb();
    bare.unsubscribe();

    const delivered = seen.filter((s) => badRoles.some((r) => s === `genbrain.agents.${r}.status`)).length;
    expect(delivered).toBeGreaterThan(0);
    const m = await scrape(daemon.url);
    const inv = (reason: string) =>
      m.value("orgwatch_invalid_messages_total", { source: "status", reason }) ?? 0;
    expect(inv("bad_role")).toBe(delivered);
    expect(inv("oversize")).toBe(10);
    expect(inv("unknown_state")).toBe(10);
    expect(inv("wrong_type")).toBe(10);
    expect(invalidCount(daemon, "status") - before).toBe(delivered + 100 + 10 + 10 + 10 + 5 - deepParsed(5));
    expect(m.value("orgwatch_label_overflow_total", { metric: "orgwatch_agent_up" })).toBe(5_000 - CAP);
    const up = m.series("orgwatch_agent_up");
    expect(up.length).toBe(2 + CAP);
    for (const s of up) expect(s.labels["role"]).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(heapAfter - heapBefore).toBeLessThan(8);
    console.log(
      `status: heap ${heapBefore.toFixed(1)} MB → ${heapAfter.toFixed(1)} MB after 5,000 distinct roles`,
    );
  });

  it("tasks: malformed, huge and distinct-typed task payloads are counted and capped, the daemon keeps polling", async () => {
    const subject = "genbrain.agents.cto.tasks";
    const payloads: Uint8Array[] = [
      ...Array.from({ length: 50 }, () => garbage(3000)),
      ...Array.from({ length: 3 }, () => json({ task_id: "huge", type: "x", pad: "x".repeat(900_000) })),
      ...Array.from({ length: 5 }, () => deeplyNested(30_000, { task_id: "deep", type: "deep" })),
      ...Array.from({ length: 10 }, (_, i) => json({ task_id: i, type: ["not", "a", "string"] })),
      ...Array.from({ length: 500 }, (_, i) => json({ task_id: `task-${i}`, type: `type-${i}` })),
    ];
    for (const p of payloads) await js.publish(subject, p);
    await daemon.pollNow();
    await waitFor(
      async () => {
        await daemon.pollNow();
        const m = await scrape(daemon.url);
        return (m.value("orgwatch_stream_messages", { stream: "AGENT_CTO_TASKS" }) ?? 0) === payloads.length;
      },
      { what: "the task stream polled" },
    );
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(payloads.length);
    // Each task once (by task id): "huge" and "deep" repeat their ids; 500 distinct ones.
    const deepValid = parsesAsJson(payloads[53]!);
    const inv = (reason: string) =>
      m.value("orgwatch_invalid_messages_total", { source: "task", reason }) ?? 0;
    expect(inv("invalid_json")).toBe(50 + (deepValid ? 0 : 5));
    expect(inv("wrong_type")).toBe(10);
    const published = 1 + (deepValid ? 1 : 0) + 500;
    expect(total(m, "orgwatch_tasks_published_total")).toBe(published);
    expect(m.value("orgwatch_label_overflow_total", { metric: "orgwatch_tasks_published_total" })).toBe(
      published - CAP,
    );
    // Every family, whatever the input, has a bounded number of series.
    const families = new Map<string, number>();
    for (const line of m.text.split("\n")) {
      if (line.startsWith("#") || line === "") continue;
      const name = line.replace(/[{ ].*$/, "").replace(/_(bucket|sum|count)$/, "");
      families.set(name, (families.get(name) ?? 0) + 1);
    }
    for (const [name, n] of families) expect(n, name).toBeLessThan(1000);
    for (const s of m.series("orgwatch_tasks_published_total")) {
      expect(s.labels["role"] ?? "").toMatch(/^[A-Za-z0-9_-]{0,64}$/);
    }
    expect(
      new Set(m.series("orgwatch_tasks_published_total").map((s) => s.labels["type"])).size,
    ).toBeLessThanOrEqual(CAP + 1);
  });

  it("is still up, connected and answering, with no handler failure logged", async () => {
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    expect((await fetch(daemon.url + "/readyz")).status).toBe(200);
    expect(captured.messages("handler failed")).toEqual([]);
    expect(captured.lines.filter((l) => JSON.parse(l).level >= 50)).toEqual([]);
  });
});

function invalidCount(daemon: Daemon, source: string): number {
  let n = 0;
  for (const [key, v] of daemon.org.health.invalidMessages) if (key.startsWith(`${source}\u0000`)) n += v;
  return n;
}

function deepParsed(n: number): number {
  return parsesAsJson(deeplyNested(30_000, { state: "idle" })) ? n : 0;
}
