// The console's API on a real nats-server: a dead letter listed, read and replayed — refused with 403
// without --web.enable-admin-api, refused cross-site, accepted once with it and refused after (also
// by another orgwatch: the record is in NATS) — a task by id, the page readable without JavaScript,
// and the organization pushed over server-sent events.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon, testConfig } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import {
  advisoriesDrained,
  createPoisonableConsumer,
  failEverything,
  streamMessages,
} from "../helpers/poison.js";
import { waitFor } from "../helpers/wait.js";
import { DeadLetterDesk } from "../../src/services/deadletters.js";
import { runOrgwatch } from "../helpers/cli.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const enc = new TextEncoder();
const dec = new TextDecoder();
const PAYLOAD = JSON.stringify({
  task_id: "task-1847",
  type: "feature_implementation",
  title: "<b>bold</b>",
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the API's JSON, checked by the assertions
type Json = any;

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

describe("the console API", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  /** Started the default way: write actions off. */
  let reader: Daemon;
  /** --web.enable-admin-api on a local machine. */
  let admin: Daemon;
  let stream: string;
  let subject: string;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await jsm.streams.add({ name: "DEADLETTER", subjects: ["genbrain.org.deadletter"] });
    ({ stream, subject } = await createPoisonableConsumer(jsm, { role: "cto", consumer: "cto" }));
    reader = await startTestDaemon(server.url, { "advisories.ack-wait": 2_000 });
    await reader.started;
    const h = headers();
    h.set("traceparent", TRACEPARENT);
    h.set("Nats-Msg-Id", "task-1847");
    await js.publish(subject, enc.encode(PAYLOAD), { headers: h });
    await failEverything(js, stream, "cto", async () => (await streamMessages(jsm, "DEADLETTER")) >= 1);
    await failEverything(js, stream, "cto", () => advisoriesDrained(jsm));
    // Started once the reader has handled every advisory: orgwatches on one server share the
    // advisory consumer, and the reader's counts are the ones these tests read.
    admin = await startTestDaemon(server.url, {
      "advisories.ack-wait": 2_000,
      "web.enable-admin-api": true,
      "web.admin-api.allow-unauthenticated": true,
      "web.trace-url": "http://jaeger:16686/trace/{trace_id}",
    });
    await admin.started;
    await reader.pollNow();
    await admin.pollNow();
  });
  afterAll(async () => {
    await admin?.stop();
    await reader?.stop();
    await nc?.close();
    await server?.stop();
  });

  it("lists the dead letter newest first, with where it came from, its task and trace; filters by role and time", async () => {
    const { status, body } = await json(`${reader.url}/api/v1/deadletters`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      stream: "DEADLETTER",
      subject: "genbrain.org.deadletter",
      truncated: false,
    });
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({
      id: 1,
      role: "cto",
      sourceStream: stream,
      sourceSequence: 1,
      consumer: "cto",
      subject,
      deliveries: 3,
      reason: "max_deliveries",
      taskId: "task-1847",
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect((await json(`${reader.url}/api/v1/deadletters?role=security`)).body.items).toEqual([]);
    const future = Math.floor(Date.now() / 1000) + 3600;
    expect((await json(`${reader.url}/api/v1/deadletters?since=${future}`)).body.items).toEqual([]);
    expect(
      (await json(`${reader.url}/api/v1/deadletters?since=2020-01-01T00:00:00Z`)).body.items,
    ).toHaveLength(1);
    expect((await json(`${reader.url}/api/v1/deadletters?limit=x`)).status).toBe(400);
    expect((await json(`${reader.url}/api/v1/deadletters?since=yesterday`)).status).toBe(400);
  });

  it("shows one with its payload, headers and what a replay would publish where", async () => {
    const { status, body } = await json(`${admin.url}/api/v1/deadletters/1`);
    expect(status).toBe(200);
    expect(body.payload).toEqual({ kind: "json", text: JSON.stringify(JSON.parse(PAYLOAD), null, 2) });
    expect(body.headers).toContainEqual(["traceparent", TRACEPARENT]);
    expect(body.headers).toContainEqual(["Orgwatch-Source-Sequence", "1"]);
    expect(body.replay).toMatchObject({ possible: true, subject });
    expect(body.replayed).toBeUndefined();
    expect(body.traceLink).toBe("http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736");
    expect((await json(`${admin.url}/api/v1/deadletters/99`)).status).toBe(404);
    expect((await json(`${admin.url}/api/v1/deadletters/abc`)).status).toBe(400);
  });

  it("refuses a replay with 403 when write actions are off, and publishes nothing", async () => {
    const before = (await jsm.streams.info(stream)).state.messages;
    const { status, body } = await json(`${reader.url}/api/v1/deadletters/1/replay`, { method: "POST" });
    expect(status).toBe(403);
    expect(body.error).toContain("--web.enable-admin-api");
    expect((await jsm.streams.info(stream)).state.messages).toBe(before);
    // Only the replay route takes a POST at all.
    expect((await fetch(`${admin.url}/api/v1/deadletters`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${admin.url}/api/v1/deadletters/1/replay`)).status).toBe(404);
  });

  it("refuses a replay a page on another site asks for", async () => {
    const before = (await jsm.streams.info(stream)).state.messages;
    const cross = await json(`${admin.url}/api/v1/deadletters/1/replay`, {
      method: "POST",
      headers: { Origin: "http://evil.example" },
    });
    expect(cross.status).toBe(403);
    const site = await json(`${admin.url}/api/v1/deadletters/1/replay`, {
      method: "POST",
      headers: { "Sec-Fetch-Site": "cross-site" },
    });
    expect(site.status).toBe(403);
    expect((await jsm.streams.info(stream)).state.messages).toBe(before);
  });

  it("replays once with the flag: the original payload and headers on the original subject, with Orgwatch-Replay-Of; 409 after, from any orgwatch", async () => {
    const origin = new URL(admin.url).origin;
    const { status, body } = await json(`${admin.url}/api/v1/deadletters/1/replay`, {
      method: "POST",
      headers: { Origin: origin },
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: 1, subject, stream, role: "cto" });
    const replayed = await jsm.streams.getMessage(stream, { seq: body.seq });
    expect(replayed!.subject).toBe(subject);
    expect(dec.decode(replayed!.data)).toBe(PAYLOAD);
    expect(replayed!.header.get("traceparent")).toBe(TRACEPARENT);
    expect(replayed!.header.get("Orgwatch-Replay-Of")).toMatch(/^orgwatch-dl:AGENT_CTO_TASKS:cto:1:t\d+$/);
    expect(replayed!.header.get("Nats-Msg-Id")).toBe(body.msgId);
    expect(replayed!.header.get("Orgwatch-Source-Stream")).toBe("");

    const again = await json(`${admin.url}/api/v1/deadletters/1/replay`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(again.body.error).toContain("already replayed");
    // Another orgwatch (a fresh desk, nothing in memory) finds the record too.
    const desk = await DeadLetterDesk.open(nc, testConfig(server.url));
    await expect(desk.replay(1, "test")).rejects.toMatchObject({ code: 409 });
    expect((await jsm.streams.info(stream)).state.last_seq).toBe(body.seq);

    const shown = await json(`${reader.url}/api/v1/deadletters/1`);
    expect(shown.body.replayed).toMatchObject({
      subject,
      msgId: body.msgId,
      stream,
      seq: body.seq,
      by: "anonymous",
    });
    const m = await scrape(admin.url);
    expect(m.value("orgwatch_deadletter_replays_total", { role: "cto" })).toBe(1);
    expect(m.series("orgwatch_deadletter_replays_total", {})).toHaveLength(1);
  });

  it("shows a task by id: its timeline and its chain", async () => {
    const { status, body } = await json(`${reader.url}/api/v1/tasks/task-1847`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      task_id: "task-1847",
      role: "cto",
      stream,
      outcome: "dead_letter",
      deliveries: 3,
    });
    expect(body.timeline.map((e: { event: string }) => e.event)).toEqual([
      "published",
      "delivery",
      "redelivery",
      "redelivery",
      "dead_letter",
    ]);
    expect(body.chain).toEqual([
      expect.objectContaining({ task_id: "task-1847", depth: 0, outcome: "dead_letter" }),
    ]);
    expect((await json(`${reader.url}/api/v1/tasks/nope`)).status).toBe(404);
    const page = await fetch(`${reader.url}/tasks?id=task-1847`, { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/tasks/task-1847");
  });

  it("reads without JavaScript: cards as a table, dead letters, a task; no inline script allowed", async () => {
    const page = await fetch(`${reader.url}/`);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("content-security-policy")).not.toContain("unsafe-inline");
    const html = await page.text();
    expect(html).toMatch(/<tr class="h-critical"><td><a href="#agent-cto">cto<\/a><\/td><td>critical<\/td>/);
    expect(html).not.toContain("<script>");
    const dl = await (await fetch(`${reader.url}/deadletters/1`)).text();
    expect(dl).toContain("&#60;b&#62;bold&#60;/b&#62;");
    expect(dl).not.toContain("<b>bold</b>");
    const list = await (await fetch(`${reader.url}/deadletters`)).text();
    expect(list).toContain('<a href="/deadletters/1">1</a>');
    const asset = await fetch(`${reader.url}/console/app.js`);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect((await fetch(`${reader.url}/console/../package.json`)).status).toBe(404);
  });

  it("pushes the organization over server-sent events: once at connect, again after a poll", async () => {
    const ac = new AbortController();
    const res = await fetch(`${reader.url}/api/v1/events`, { signal: ac.signal });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader_ = res.body!.getReader();
    let text = "";
    const events = () =>
      [...text.matchAll(/event: ?organization\n(?:id:.*\n)?data: ?(.*)\n/g)].map((m) => JSON.parse(m[1]!));
    const until = async (what: string, holds: (e: Json[]) => boolean) =>
      waitFor(
        async () => {
          if (holds(events())) return true;
          const { value } = await reader_.read();
          text += dec.decode(value);
          return holds(events()) ? true : undefined;
        },
        { what, intervalMs: 1 },
      );
    await until("the first organization event", (e) => e.length >= 1);
    const polls = events()[0].polls_completed;
    await reader.pollNow();
    await until("an organization event after the poll", (e) => e.some((x) => x.polls_completed > polls));
    const after = events().find((x) => x.polls_completed > polls);
    expect(after.agents.find((a: { role: string }) => a.role === "cto")).toMatchObject({ dead_letters: 1 });
    ac.abort();
  });

  it("orgwatch deadletters list|show|replay does the same from a terminal, over NATS", async () => {
    const nats = ["--nats-url", server.url];
    const listed = await runOrgwatch(["deadletters", "list", ...nats, "--json"]);
    expect(listed.code).toBe(0);
    expect(
      JSON.parse(listed.stdout).items.map((d: { id: number; taskId: string }) => [d.id, d.taskId]),
    ).toEqual([[1, "task-1847"]]);
    const text = await runOrgwatch(["deadletters", "list", ...nats, "--role", "cto"]);
    expect(text.stdout).toMatch(/^1 dead letters in DEADLETTER\n\s+1 {2}\S+ {2}cto\s+task-1847/);
    const shown = await runOrgwatch(["deadletters", "show", "1", ...nats]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("traceparent: " + TRACEPARENT);
    expect(shown.stdout).toMatch(/replayed \S+ by anonymous to genbrain\.agents\.cto\.tasks/);
    // Replayed by the console already: refused here too.
    const again = await runOrgwatch(["deadletters", "replay", "1", "--yes", ...nats]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already replayed");

    // Another dead letter, replayed from the terminal: asked first, so --yes without a terminal. (The
    // agent fails everything: the message the console replayed dies again too, as a new dead letter.)
    const h = headers();
    h.set("Nats-Msg-Id", "task-1848");
    await js.publish(subject, enc.encode(JSON.stringify({ task_id: "task-1848" })), { headers: h });
    await failEverything(js, stream, "cto", async () => (await streamMessages(jsm, "DEADLETTER")) >= 3);
    await failEverything(js, stream, "cto", () => advisoriesDrained(jsm));
    const all = JSON.parse((await runOrgwatch(["deadletters", "list", ...nats, "--json"])).stdout);
    expect(all.items.map((d: { taskId: string }) => d.taskId).sort()).toEqual([
      "task-1847",
      "task-1847",
      "task-1848",
    ]);
    const id = String(all.items.find((d: { taskId: string }) => d.taskId === "task-1848").id);
    const unasked = await runOrgwatch(["deadletters", "replay", id, ...nats]);
    expect(unasked.code).toBe(2);
    expect(unasked.stderr).toContain("--yes");
    const before = (await jsm.streams.info(stream)).state.last_seq;
    const replayed = await runOrgwatch(["deadletters", "replay", id, "--yes", ...nats]);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toMatch(
      new RegExp(`^replayed dead letter ${id} to ${subject.replace(/\./g, "\\.")}: ${stream} #${before + 1}`),
    );
    const m = await jsm.streams.getMessage(stream, { seq: before + 1 });
    expect(JSON.parse(dec.decode(m!.data))).toEqual({ task_id: "task-1848" });
    // And the console refuses it after.
    const viaApi = await json(`${admin.url}/api/v1/deadletters/${id}/replay`, { method: "POST" });
    expect(viaApi.status).toBe(409);
    expect((await runOrgwatch(["deadletters", "show", "x", ...nats])).code).toBe(2);
  });
});
