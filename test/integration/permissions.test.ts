// Least privilege: orgwatch run as a NATS user holding exactly the permission block of
// docs/permissions.md (read from that file, so the documentation cannot drift from what is tested),
// watching a simulated organization: no permission violation anywhere, and its metrics match the truth.
// A control run with one line removed from the block shows that a violation would be caught.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { startSimulatedOrganization, type SimulatedOrganization } from "../../src/demo/simulator.js";
import { DEADLETTER_STREAM } from "../../src/demo/topology.js";
import { OWN_CONSUMER_PREFIX } from "../../src/sources/source.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { scrape } from "../helpers/metrics.js";
import { advisoriesDrained, streamMessages } from "../helpers/poison.js";
import { waitFor } from "../helpers/wait.js";

/** The first ```conf block of docs/permissions.md. */
function documentedBlock(): string {
  const doc = readFileSync(join(REPO_ROOT, "docs/permissions.md"), "utf8");
  const m = /```conf\n([\s\S]*?)\n```/.exec(doc);
  if (!m) throw new Error("docs/permissions.md has no ```conf block");
  return m[1]!;
}

const ADMIN = { user: "admin", pass: "admin-pass-123" };
const WATCHER = { user: "orgwatch", pass: "orgwatch-pass-123" };
const NARROW = { user: "orgwatch_narrow", pass: "narrow-pass-123" };

describe("orgwatch with exactly the documented permissions", () => {
  const block = documentedBlock();
  // The control user lacks the subscription to org events.
  const narrowBlock = block.replace(/^\s*"genbrain\.org\.events",\n/m, "");
  let server: NatsServerProcess;
  let logFile: string;
  let admin: NatsConnection;
  let jsm: JetStreamManager;
  let sim: SimulatedOrganization | undefined;
  let daemon: Daemon;
  let captured: CapturedLog;

  beforeAll(async () => {
    expect(narrowBlock).not.toBe(block);
    logFile = join(mkdtempSync(join(tmpdir(), "orgwatch-perm-")), "server.log");
    server = await startNatsServer({ logFile, config: serverConfig(block, narrowBlock) });
    admin = await connect({ servers: server.url, ...ADMIN });
    jsm = await jetstreamManager(admin);
  });
  afterAll(async () => {
    await sim?.stop().catch(() => undefined);
    await daemon?.stop();
    await admin?.close();
    await server?.stop();
    if (logFile) rmSync(dirname(logFile), { recursive: true, force: true });
  });

  it("watches a simulated organization with no violation, and its numbers are the truth", async () => {
    sim = await startSimulatedOrganization({ servers: server.url, connection: ADMIN, pace: 3000, seed: 8 });
    captured = captureLog("debug");
    daemon = await startTestDaemon(
      server.url,
      { "nats-user": WATCHER.user, "nats-password": WATCHER.pass, "poll-interval": 1000 },
      { log: captured.log },
    );
    await daemon.started;
    const flaky = sim.story.flaky!;
    // Every part of the story shows: agents up, events, a routed dead letter.
    await waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return (
          (m.value("orgwatch_deadletter_messages_total", { role: flaky, consumer: `${flaky}-worker` }) ?? 0) >
            0 && m.series("orgwatch_events_total").some((s) => s.value > 0)
        );
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "a routed dead letter and counted events" },
    );
    await sim.stop();
    const roles = sim.agents.map((a) => a.role);
    sim = undefined;

    // Everything routed is in the dead-letter stream, once: orgwatch's counter is that number.
    await waitFor(() => advisoriesDrained(jsm), { timeoutMs: 20_000, what: "advisories handled" });
    await daemon.pollNow();
    const m = await scrape(daemon.url);
    const routed = await streamMessages(jsm, DEADLETTER_STREAM);
    expect(routed).toBeGreaterThan(0);
    const counted = m.series("orgwatch_deadletter_messages_total").reduce((sum, s) => sum + s.value, 0);
    expect(counted).toBe(routed);

    // Consumer lag as JetStream itself reports it, consumer by consumer.
    for await (const si of jsm.streams.list()) {
      if (!si.config.name.startsWith("AGENT_")) continue;
      for await (const ci of jsm.consumers.list(si.config.name)) {
        if (ci.name.startsWith(OWN_CONSUMER_PREFIX)) continue;
        expect(
          m.value("orgwatch_consumer_lag_messages", { stream: ci.stream_name, consumer: ci.name }),
          `${ci.stream_name}/${ci.name}`,
        ).toBe(ci.num_pending + ci.num_ack_pending);
      }
    }
    for (const role of roles) expect(m.value("orgwatch_agent_up", { role }), role).toBe(1);
    expect(m.value("orgwatch_poll_errors_total")).toBe(0);
    expect(m.value("orgwatch_nats_connected")).toBe(1);

    expect(captured.text()).not.toMatch(/permission/i);
    expect(violations(logFile, WATCHER.user)).toEqual([]);
  });

  it("control: without one documented line, the violation is seen (so the check above can fail)", async () => {
    const control = captureLog("debug");
    const narrow = await startTestDaemon(
      server.url,
      { "nats-user": NARROW.user, "nats-password": NARROW.pass },
      { log: control.log },
    );
    try {
      await narrow.pollNow();
      await waitFor(() => violations(logFile, NARROW.user).length > 0, {
        timeoutMs: 10_000,
        what: "a subscription violation in the server's log",
      });
      expect(violations(logFile, NARROW.user).join("\n")).toContain("genbrain.org.events");
      await waitFor(() => /permissions violation/i.test(control.text()), {
        timeoutMs: 10_000,
        what: "the violation in orgwatch's own log",
      });
    } finally {
      await narrow.stop();
    }
  });
});

function serverConfig(block: string, narrowBlock: string): string {
  return `authorization {
  users: [
    { user: ${ADMIN.user}, password: "${ADMIN.pass}" }
    { user: ${WATCHER.user}, password: "${WATCHER.pass}", permissions: ${block} }
    { user: ${NARROW.user}, password: "${NARROW.pass}", permissions: ${narrowBlock} }
  ]
}`;
}

/** The server's permission-violation log lines for `user`. */
function violations(logFile: string, user: string): string[] {
  let text = "";
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => /violation/i.test(l) && l.includes(`"${user}"`));
}
