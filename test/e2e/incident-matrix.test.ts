// The incident matrix (test/e2e/incidents.ts) played for real: nats-server, orgwatch, Prometheus
// with the shipped rules and Alertmanager with the shipped routes and inhibitions. Every incident
// happens to an agent of its own, all at once; each must fire exactly its alerts and Alertmanager
// notify exactly the ones the table says, and everything must resolve once the incidents are over.
// Then orgwatch's own incidents, one after the other: NATS gone, orgwatch gone.
//
// Everything runs 60 times faster than real time: the rules through logic/rule-scaling.ts (every
// for:, keep_firing_for:, range, offset, duration threshold and per-hour factor), orgwatch's
// windows through its settings (polls every 0.5 s, agents stale after 2 s, a 5 s status window).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { demoRuleFiles } from "../../src/demo/stack.js";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import {
  promApi,
  type PromSeries,
  prometheusAlerts,
  startShippedAlertmanager,
  startWebhook,
  startRulesPrometheus,
  type ManagedProcess,
} from "../helpers/prometheus-stack.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { atPace, waitFor } from "../helpers/wait.js";
import { INCIDENTS, type Incident } from "./incidents.js";

const SPEED = 60;
/**
 * Found by this test and not fixed yet (docs/alerts.md): on nats-server 2.9, after NATS restarts,
 * the consumer whose message was dead-lettered reads as stalled (the server's restored state counts
 * the dead message again), and OrgwatchConsumerStalled fires for it. Held here exactly, so that the
 * test fails when it changes.
 */
const KNOWN_AFTER_NATS_RESTART = ["OrgwatchConsumerStalled{role=poison} firing"];
const PREFIX = "genbrain";
const AGENT_INCIDENTS = INCIDENTS.filter((i) => i.role !== "orgwatch");
const ROLES = AGENT_INCIDENTS.filter((i) => i.id !== "unrouted").map((i) => i.role);

interface Seen {
  alertname: string;
  role: string;
  severity: string;
  firstFiringMs: number;
}

describe("the incident matrix", () => {
  let nats: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let daemon: Daemon;
  let port: number;
  let prometheus: ManagedProcess;
  let alertmanager: ManagedProcess;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  /** Firing notifications by role: alertname → receiver. */
  const notified: { role: string; alertname: string; receiver: string; status: string }[] = [];
  /** Every (alertname, role, severity) seen firing in Prometheus, with when it first did. */
  const seen = new Map<string, Seen>();
  let watching = true;
  let watcher: Promise<void> | undefined;
  /** Roles whose heartbeats are held back (the silent agent during its incident). */
  const muted = new Set<string>();
  let heartbeats: Promise<void> | undefined;
  const readers: Promise<void>[] = [];
  const startedAt = new Map<string, number>();

  const settings = () => ({
    "poll-interval": 500,
    "consumer.status-window": 10,
    "agent.stale-after": 2000,
    "chains.next-window": 3000,
    "chains.infer-window": 1000,
    "web.listen-address": `127.0.0.1:${port}`,
    // Work takes well under a second here: the short ack waits of the poison and holder consumers
    // are right for it (else the setup check would warn about them).
    "expected-work": 200,
  });

  const key = (a: { alertname: string; role: string; severity: string }) =>
    `${a.alertname}|${a.role}|${a.severity}`;
  const seenFor = (role: string) => [...seen.values()].filter((s) => s.role === role);
  const notifiedFor = (role: string) =>
    [
      ...new Set(notified.filter((n) => n.role === role && n.status === "firing").map((n) => n.alertname)),
    ].sort();

  async function watchAlerts(): Promise<void> {
    // Every 250 ms until the tests end, it records when each alert first fires.
    await atPace(
      250,
      () => watching,
      async () => {
        try {
          for (const a of await prometheusAlerts(prometheus.url)) {
            if (a.state !== "firing") continue;
            const s = {
              alertname: a.labels["alertname"]!,
              role: a.labels["role"] ?? "orgwatch",
              severity: a.labels["severity"]!,
            };
            if (!seen.has(key(s))) seen.set(key(s), { ...s, firstFiringMs: Date.now() });
          }
        } catch {
          // Prometheus busy: the next round sees it.
        }
      },
    );
  }

  async function activeAlerts(): Promise<string[]> {
    return (await prometheusAlerts(prometheus.url)).map(
      (a) => `${a.labels["alertname"]}{role=${a.labels["role"] ?? ""}} ${a.state}`,
    );
  }

  const task = (id: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ task_id: id, type: "work", ...extra });
  const publish = (role: string, id: string, extra?: Record<string, unknown>) =>
    js.publish(`${PREFIX}.agents.${role}.tasks`, task(id, extra));
  const consumerOf = (role: string) =>
    js.consumers.get(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
  async function drain(role: string): Promise<void> {
    const c = await consumerOf(role);
    for (;;) {
      const m = await c.next({ expires: 1000 });
      if (!m) return;
      m.ack();
    }
  }

  /**
   * An agent behind its work: `backlog` tasks waiting, one acked every `everyMs` and a new one
   * published each time (progress, the backlog kept). Returns the incident's start and end.
   */
  function behind(
    role: string,
    backlog: number,
    everyMs: number,
  ): { start(): Promise<void>; end(): Promise<void> } {
    let working = true;
    let loop: Promise<void> | undefined;
    return {
      async start() {
        for (let n = 1; n <= backlog; n++) await publish(role, `${role}-${n}`);
        const c = await consumerOf(role);
        loop = (async () => {
          await atPace(
            everyMs,
            () => working,
            async (n) => {
              await (await c.next({ expires: 1000 }))?.ackAck();
              await publish(role, `${role}-${backlog + 1 + n}`);
            },
          );
        })();
      },
      async end() {
        working = false;
        await loop;
        await drain(role);
      },
    };
  }

  /** Each agent incident: how it starts and how it ends. */
  const SCRIPTS: Record<string, { start(): Promise<void>; end(): Promise<void> }> = {
    // Lag kept at 8, one task every 1.5 s.
    lag: behind("lagger", 8, 1500),
    // 12 waiting, one every 2 s: 24 s of work, the oldest as old, and the stream keeps tasks 40 s.
    outlives: behind("outliver", 12, 2000),
    poison: {
      async start() {
        await publish("poison", "poison-1");
        const c = await consumerOf("poison");
        let deliveries = 0;
        while (deliveries < 3) {
          const m = await c.next({ expires: 3000 });
          if (!m) continue;
          deliveries = m.info.deliveryCount;
          m.nak();
        }
        // nats-server 2.9 sends the max-deliveries advisory on the consumer's next pull.
        await c.next({ expires: 1000 });
      },
      async end() {},
    },
    "max-age": {
      async start() {
        await publish("expiring", "expiring-1");
      },
      async end() {},
    },
    unrouted: {
      async start() {
        nc.publish(`${PREFIX}.agents.ghost.tasks`, task("ghost-1"));
        await nc.flush();
      },
      async end() {},
    },
    "broken-chain": {
      async start() {
        await publish("chained", "chain-1", {
          on_complete: { publish_to: `${PREFIX}.agents.chained.tasks` },
        });
        const m = await (await consumerOf("chained")).next({ expires: 3000 });
        await m!.ackAck();
      },
      async end() {},
    },
    broadcast: {
      async start() {
        await js.publish(
          `${PREFIX}.org.broadcasts`,
          JSON.stringify({ broadcast_id: "bc-1", title: "policy" }),
        );
      },
      async end() {
        const m = await (await js.consumers.get("ORG_BROADCASTS", "deaf-broadcasts")).next({ expires: 3000 });
        await m!.ackAck();
      },
    },
    silent: {
      async start() {
        muted.add("quiet");
      },
      async end() {
        muted.delete("quiet");
      },
    },
    stalled: {
      async start() {
        await publish("holder", "hold-1");
        await publish("holder", "hold-2");
        // Taken and held: never acked, nobody else pulling.
        await (await consumerOf("holder")).next({ expires: 3000 });
      },
      async end() {
        await drain("holder");
      },
    },
    stopped: {
      async start() {
        await publish("idle", "idle-1");
        await publish("idle", "idle-2");
      },
      async end() {
        await drain("idle");
      },
    },
    overdue: {
      async start() {
        await publish("late", "late-1", { sla: { ack_within_seconds: 1 } });
      },
      async end() {
        await drain("late");
      },
    },
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    await createReferenceTopology(jsm, { roles: ROLES });
    await jsm.streams.add({
      name: "ORG_DEADLETTER",
      subjects: [`${PREFIX}.org.deadletter`],
      storage: StorageType.File,
    });
    // The poison task's consumer redelivers within a second; the holder's task is past its ack wait in 2 s.
    for (const [role, ackWaitMs] of [
      ["poison", 1000],
      ["holder", 2000],
    ] as const) {
      const info = await jsm.consumers.info(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
      await jsm.consumers.update(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`, {
        ...info.config,
        ack_wait: nanos(ackWaitMs),
      });
    }
    const outliver = await jsm.streams.info("AGENT_OUTLIVER_TASKS");
    await jsm.streams.update("AGENT_OUTLIVER_TASKS", {
      ...outliver.config,
      max_age: nanos(40_000),
      duplicate_window: nanos(40_000),
    });
    // The expiring task's stream keeps messages 8 s.
    const expiring = await jsm.streams.info("AGENT_EXPIRING_TASKS");
    await jsm.streams.update("AGENT_EXPIRING_TASKS", {
      ...expiring.config,
      max_age: nanos(8000),
      duplicate_window: nanos(8000),
    });

    // Every agent heartbeats (every 0.5 s, the staleness window is 2 s) unless muted.
    heartbeats = atPace(
      500,
      () => watching,
      () => {
        for (const role of ROLES)
          if (!muted.has(role))
            nc.publish(`${PREFIX}.agents.${role}.status`, JSON.stringify({ state: "idle" }));
      },
    );

    // Every agent but the deaf one reads the broadcasts as they come, as agents do.
    for (const role of ROLES.filter((r) => r !== "deaf"))
      readers.push(
        (async () => {
          const c = await js.consumers.get("ORG_BROADCASTS", `${role}-broadcasts`);
          while (watching) {
            // While NATS is away (orgwatch's own incident), a pull fails at once: not a busy loop.
            const m = await c
              .next({ expires: 1000 })
              .catch(() => new Promise<null>((r) => setTimeout(() => r(null), 500)));
            await m?.ackAck().catch(() => undefined);
          }
        })(),
      );

    webhook = await startWebhook((receiver, doc) => {
      for (const a of doc.alerts)
        notified.push({
          role: a.labels["role"] ?? "orgwatch",
          alertname: a.labels["alertname"]!,
          receiver,
          status: a.status,
        });
    });
    port = await freePort();
    daemon = await startTestDaemon(nats.url, settings());
    await daemon.started;
    alertmanager = await startShippedAlertmanager(webhook.url);
    const { files } = demoRuleFiles(SPEED, { realTimeGroups: ["orgwatch.lease"], minRangeMs: 5000 });
    prometheus = await startRulesPrometheus(files, `127.0.0.1:${port}`, alertmanager.url);
    // A quiet start: Prometheus scraping orgwatch and evaluating the rules, every agent
    // heartbeating, no incident yet, and nothing firing or pending three checks in a row.
    let quiet = 0;
    await waitFor(
      async () => {
        await daemon.pollNow();
        const up = await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
          query: 'up{job="orgwatch"} == 1',
        });
        const evaluated = await promApi<{ groups: { lastEvaluation: string }[] }>(
          prometheus.url,
          "/api/v1/rules",
        );
        const ready =
          up.data.result.length === 1 &&
          evaluated.data.groups.every((g) => !g.lastEvaluation.startsWith("0001")) &&
          (await activeAlerts()).length === 0;
        quiet = ready ? quiet + 1 : 0;
        return quiet >= 3;
      },
      { timeoutMs: 30_000, intervalMs: 1000, what: "a quiet start" },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; active: ${(await activeAlerts()).join(", ")}`);
    });
    // What Alertmanager sent before the quiet start belongs to no incident: at 60× speed
    // OrgwatchAbsent's 5 minutes are 5 s, and a first scrape later than that on a busy CI machine
    // fires it (and resolves it) before the matrix begins. seen starts here too (the watcher).
    notified.length = 0;
    watcher = watchAlerts();

    // Every incident at once, each ended as soon as its own alerts fired.
    const firedAll = (i: Incident) => i.fires.every((a) => seen.has(key({ ...a, role: i.role })));
    // Ended only once notified too: an alert resolved before Alertmanager's group wait is never sent.
    const done = (i: Incident) => firedAll(i) && i.notified.every((n) => notifiedFor(i.role).includes(n));
    await Promise.all(
      AGENT_INCIDENTS.map(async (i) => {
        startedAt.set(i.id, Date.now());
        await SCRIPTS[i.id]!.start();
        await waitFor(() => done(i), {
          timeoutMs: 90_000,
          intervalMs: 250,
          what: `${i.id}'s alerts`,
        }).catch(async (err: Error) => {
          throw new Error(
            `${err.message}; seen: ${[...seen.keys()].join(", ")}; active: ${(await activeAlerts()).join(", ")}`,
          );
        });
        await SCRIPTS[i.id]!.end();
      }),
    );
    await waitFor(async () => (await activeAlerts()).length === 0, {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: "every alert resolved",
    }).catch(async (err: Error) => {
      const metrics = (await (await fetch(`${daemon.url}/metrics`)).text())
        .split("\n")
        .filter(
          (l) => l.startsWith("orgwatch_broadcast_oldest") || l.startsWith("orgwatch_broadcast_unacked"),
        );
      throw new Error(
        `${err.message}; still active: ${(await activeAlerts()).join(", ")}; ${metrics.join(" | ")}`,
      );
    });
  }, 300_000);

  afterAll(async () => {
    watching = false;
    await watcher;
    await heartbeats;
    await Promise.all(readers);
    await prometheus?.stop();
    await alertmanager?.stop();
    await webhook?.close();
    await daemon?.stop();
    await nc?.close();
    await nats?.stop();
  });

  const check = (i: Incident) => {
    const fired = seenFor(i.role)
      .map((s) => `${s.alertname} (${s.severity})`)
      .sort();
    expect(fired).toEqual(i.fires.map((a) => `${a.alertname} (${a.severity})`).sort());
    expect(notifiedFor(i.role)).toEqual([...i.notified].sort());
    for (const n of notified.filter((x) => x.role === i.role))
      expect(n.receiver, n.alertname).toBe(
        i.fires.find((a) => a.alertname === n.alertname)?.severity === "page" ? "pager" : "chat",
      );
  };

  it.each(AGENT_INCIDENTS.map((i) => [i.title, i] as const))("%s", (_title, i) => {
    check(i);
    const first = Math.min(...seenFor(i.role).map((s) => s.firstFiringMs));
    console.log(
      `incident ${i.id}: first alert ${((first - startedAt.get(i.id)!) / 1000).toFixed(1)} s after it began`,
    );
  });

  /** orgwatch's own incident `i`: its alerts fired and notified. */
  const firedAndNotified = (i: Incident) =>
    waitFor(
      () =>
        i.fires.every((a) => seen.has(key({ ...a, role: "orgwatch" }))) &&
        i.notified.every((n) => notifiedFor("orgwatch").includes(n)),
      { timeoutMs: 60_000, intervalMs: 250, what: `${i.title}: its alerts` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; seen: ${[...seen.keys()].join(", ")}`);
    });

  /** Every alert resolved once `after`, but the one known exception. */
  const resolvedButKnown = (after: string) =>
    waitFor(async () => (await activeAlerts()).every((a) => KNOWN_AFTER_NATS_RESTART.includes(a)), {
      timeoutMs: 90_000,
      intervalMs: 500,
      what: `resolved after ${after}`,
    }).catch(async (err: Error) => {
      throw new Error(`${err.message}; still active: ${(await activeAlerts()).join(", ")}`);
    });

  it("orgwatch disconnected from NATS: one page, and nothing about the agents it cannot hear", async () => {
    const i = INCIDENTS.find((x) => x.id === "nats-down")!;
    const outageAt = Date.now();
    await nats.kill();
    await firedAndNotified(i);
    await nats.restart();
    await resolvedButKnown("NATS came back");
    check(i);
    // The agents were not reported down for orgwatch's own outage: orgwatch_agent_up stayed 1 for
    // every agent from the moment NATS went away until now.
    const since = Math.ceil((Date.now() - outageAt) / 1000);
    const down = await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
      query: `min_over_time(orgwatch_agent_up[${since}s]) == 0`,
    });
    expect(down.data.result.map((r) => r.metric["role"])).toEqual([]);
  }, 180_000);

  it("orgwatch down: one page, resolved when it is back", async () => {
    const i = INCIDENTS.find((x) => x.id === "orgwatch-down")!;
    await daemon.stop();
    await firedAndNotified(i);
    daemon = await startTestDaemon(nats.url, settings());
    await daemon.started;
    await resolvedButKnown("orgwatch came back");
    check({
      ...i,
      fires: [...INCIDENTS.find((x) => x.id === "nats-down")!.fires, ...i.fires],
      notified: [...INCIDENTS.find((x) => x.id === "nats-down")!.notified, ...i.notified],
    });
  }, 180_000);
});
