// End to end: a real nats-server with the reference topology, orgwatch, a real Prometheus loading the
// shipped rule files (every `for:` shortened from minutes to seconds), and a real Alertmanager with
// the shipped routes, whose receivers are webhooks served by this test.
//
// The workload: cto is overloaded (8 tasks, none taken: lag 8 > 5), security is healthy (its tasks
// done), qa gets a poison task that exhausts max-deliver (a dead letter), ops never reports.
// Then every query of every dashboard panel runs against that Prometheus.
import { createServer, type Server } from "node:http";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { withWebhookReceivers, type AlertmanagerConfig } from "../../src/logic/alertmanager-config.js";
import { atPace, waitFor } from "../helpers/wait.js";
import {
  prometheusAlerts,
  promApi,
  startAlertmanager,
  startPrometheus,
  type ManagedProcess,
  type PromSeries,
} from "../helpers/prometheus-stack.js";

const ROOT = join(import.meta.dirname, "../..");
const PREFIX = "genbrain";
const ROLES = ["cto", "security", "qa", "ops"];
/** The agent the drill-down dashboard is checked for: the troubled one (naks, a dead letter). */
const DRILL_DOWN_ROLE = "qa";

/**
 * Dashboard panels whose queries return nothing here, and why: every other panel must return data
 * (a number: a quantile of a histogram without observations is NaN, and does not count).
 */
const NO_DATA_EXCEPTIONS: Record<string, string> = {
  "chains.json/Cost per chain":
    "this workload reports usage on events that name no chain task; the demo's chains report theirs (test/integration/usage.test.ts sums a task's)",
  "agent.json/Lost tasks":
    "orgwatch_unrouted_messages_total has series only for roles something was published to without a stream (securty here), not for the drill-down agent qa",
  "overview.json/Broadcasts unacked > 5m":
    "counts agents with a broadcast unacknowledged for over 5 minutes; this test runs for well under 90 s",
};

/** Latency panels that show exemplars but whose histogram has none, and why. */
const NO_EXEMPLAR_EXCEPTIONS: Record<string, string> = {
  "agent.json/Processing time (delivery → ack)":
    "orgwatch_task_processing_seconds is observed from sampled acks, which carry no trace id",
  "chains.json/Work time (delivery → ack)":
    "orgwatch_task_processing_seconds is observed from sampled acks, which carry no trace id",
};

interface WebhookAlert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface Notification {
  receiver: string;
  status: string;
  alerts: WebhookAlert[];
}

/** Alertmanager's webhook receivers: POST /<receiver name>. */
function startWebhook(): Promise<{ server: Server; url: string; received: Map<string, Notification[]> }> {
  const received = new Map<string, Notification[]>();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const path = (req.url ?? "/").slice(1);
      const list = received.get(path) ?? [];
      list.push(JSON.parse(body) as Notification);
      received.set(path, list);
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${port}`, received });
    }),
  );
}

/** The shipped rule files with every `for: Nm` and `keep_firing_for: Nm` in seconds: minutes of patience become seconds. */
function shortenedRuleFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  const dir = join(ROOT, "alerts");
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".yml"))) {
    const text = readFileSync(join(dir, f), "utf8");
    const shortened = text.replace(/^(\s+(?:for|keep_firing_for): )(\d+)m\s*$/gm, "$1$2s");
    expect(shortened, `${f} has a for: that is not in minutes`).not.toMatch(/^\s+for: (?!\d+s\s*$)/m);
    files[`rules-${f}`] = shortened;
  }
  return files;
}

/** The shipped Alertmanager configuration, routes and inhibitions kept; receivers point at the webhook, waits shortened. */
function testAlertmanagerConfig(webhookUrl: string): string {
  const config = parse(
    readFileSync(join(ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8"),
  ) as AlertmanagerConfig;
  return stringify(withWebhookReceivers(config, webhookUrl, { groupWait: "1s", groupInterval: "1s" }));
}

interface PanelTarget {
  expr: string;
  instant?: boolean;
  exemplar?: boolean;
}
interface Panel {
  type: string;
  title: string;
  targets?: PanelTarget[];
  panels?: Panel[];
}

function dashboardQueries(): { panel: string; expr: string; instant: boolean; exemplar: boolean }[] {
  const dir = join(ROOT, "dashboards");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .flatMap((file) => {
      const d = JSON.parse(readFileSync(join(dir, file), "utf8")) as { panels: Panel[] };
      return d.panels
        .flatMap((p) => (p.type === "row" ? (p.panels ?? []) : [p]))
        .flatMap((p) =>
          (p.targets ?? []).map((t) => ({
            panel: `${file}/${p.title}`,
            expr: t.expr,
            instant: t.instant === true,
            exemplar: t.exemplar === true,
          })),
        );
    });
}

/** Grafana's variables as Grafana would expand them for a dashboard showing this whole (short) test. */
function expand(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__range", "1m")
    .replaceAll("$role", DRILL_DOWN_ROLE);
}

describe("alerting end to end: nats-server, orgwatch, Prometheus, Alertmanager", () => {
  let nats: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let daemon: Daemon;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  let alertmanager: ManagedProcess;
  let prometheus: ManagedProcess;
  /** cto and qa keep working until the end: cto lagging rather than stopped, rates for the dashboards. */
  let agentsWorking = true;
  const agentLoops: Promise<void>[] = [];

  beforeAll(async () => {
    [nats, webhook] = await Promise.all([startNatsServer(), startWebhook()]);
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await createReferenceTopology(jsm, { roles: ROLES, broadcastRoles: ["cto", "security", "qa"] });
    await jsm.streams.add({
      name: "ORG_DEADLETTER",
      subjects: [`${PREFIX}.org.deadletter`],
      storage: StorageType.File,
    });
    // Sampled acks for the agents that ack, so processing times can be observed.
    for (const role of ["cto", "security", "qa"]) {
      const stream = `AGENT_${role.toUpperCase()}_TASKS`;
      const info = await jsm.consumers.info(stream, `${role}-worker`);
      await jsm.consumers.update(stream, `${role}-worker`, { ...info.config, sample_freq: "100%" });
    }

    daemon = await startTestDaemon(nats.url, {
      "poll-interval": 500,
      // Four event types against a cap of three: one overflow, for the health dashboard.
      "labels.max-values": 3,
    });
    await daemon.started;
    await daemon.pollNow();

    alertmanager = await startAlertmanager(testAlertmanagerConfig(webhook.url));
    const daemonTarget = new URL(daemon.url).host;
    const amTarget = new URL(alertmanager.url).host;
    prometheus = await startPrometheus(
      () =>
        stringify({
          global: {
            scrape_interval: "1s",
            evaluation_interval: "1s",
            // The one base of every runbook link: this orgwatch, which serves them.
            external_labels: { orgwatch_url: daemon.url },
          },
          rule_files: ["rules-*.yml"],
          alerting: { alertmanagers: [{ static_configs: [{ targets: [amTarget] }] }] },
          scrape_configs: [{ job_name: "orgwatch", static_configs: [{ targets: [daemonTarget] }] }],
        }),
      shortenedRuleFiles(),
      // Exemplars (trace ids on latency histograms) are kept only with this feature on.
      ["--enable-feature=exemplar-storage"],
    );
  });

  afterAll(async () => {
    agentsWorking = false;
    await Promise.all(agentLoops);
    await prometheus?.stop();
    await alertmanager?.stop();
    await new Promise((r) => webhook?.server.close(r));
    await daemon?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it("runs the workload: cto over lag 5, security healthy, qa's poison task dead-lettered", async () => {
    const encoder = new TextEncoder();
    const send = (subject: string, value: unknown) =>
      nc.publish(subject, typeof value === "string" ? value : encoder.encode(JSON.stringify(value)));

    // Status from three agents (ops stays silent), one invalid status, events of four types.
    send(`${PREFIX}.agents.cto.status`, { state: "busy", task_id: "task-cto-1" });
    send(`${PREFIX}.agents.security.status`, { state: "idle" });
    send(`${PREFIX}.agents.qa.status`, { state: "busy" });
    send(`${PREFIX}.agents.cto.status`, "this is not JSON");
    for (const type of ["task.started", "task.completed", "task.failed", "agent.hello"]) {
      send(`${PREFIX}.org.events`, { type, role: "cto", task_id: "task-cto-0" });
    }
    // Usage reported on completions: tokens, cost, and work spent twice (the failure).
    for (const [type, role] of [
      ["task.completed", "cto"],
      ["task.failed", "qa"],
      ["task.completed", "qa"],
    ] as const)
      send(`${PREFIX}.org.events`, {
        type,
        role,
        usage: { input_tokens: 2000, output_tokens: 400, cost_usd: 0.012, model: "demo" },
      });
    await js.publish(`${PREFIX}.org.broadcasts`, JSON.stringify({ policy: "review every PR" }));

    const task = (role: string, n: number) =>
      JSON.stringify({
        task_id: `task-${role}-${n}`,
        type: "feature_implementation",
        title: `${role} task ${n}`,
        sla: { ack_within_seconds: 1, complete_within_minutes: 60 },
      });
    // cto: a backlog of 8, and from then on one task done for each new one: acks advance, the lag
    // stays at 8 (9 between a publish and the ack that follows it).
    for (let n = 1; n <= 8; n++) await js.publish(`${PREFIX}.agents.cto.tasks`, task("cto", n));
    /** An agent at work: for each new task it is given, it finishes one. */
    const keepWorking = async (role: string, first: number) => {
      const consumer = await js.consumers.get(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
      // A task every 700 ms: the ack rate the rules see.
      await atPace(
        700,
        () => agentsWorking,
        async (n) => {
          await js.publish(`${PREFIX}.agents.${role}.tasks`, task(role, first + n));
          await (await consumer.next({ expires: 1_000 }))?.ackAck();
        },
      );
    };
    agentLoops.push(keepWorking("cto", 9));
    // security: 2 tasks, both done; its broadcast acknowledged.
    for (let n = 1; n <= 2; n++) await js.publish(`${PREFIX}.agents.security.tasks`, task("security", n));
    const security = await js.consumers.get("AGENT_SECURITY_TASKS", "security-worker");
    for (let n = 1; n <= 2; n++) {
      const m = await security.next({ expires: 2_000 });
      expect(m, "security task delivered").not.toBeNull();
      await m!.ackAck();
    }
    const securityBroadcast = await js.consumers.get("ORG_BROADCASTS", "security-broadcasts");
    await (await securityBroadcast.next({ expires: 2_000 }))!.ackAck();

    // qa: one task done, then a poison task refused (nak) on each of its 3 deliveries.
    await js.publish(`${PREFIX}.agents.qa.tasks`, task("qa", 1));
    await js.publish(`${PREFIX}.agents.qa.tasks`, task("qa", 2));
    const qa = await js.consumers.get("AGENT_QA_TASKS", "qa-worker");
    await (await qa.next({ expires: 2_000 }))!.ackAck();
    let deliveries = 0;
    while (deliveries < 3) {
      const m = await qa.next({ expires: 2_000 });
      expect(m, `poison delivery ${deliveries + 1}`).not.toBeNull();
      deliveries = m!.info.deliveryCount;
      m!.nak();
    }
    // nats-server 2.9 notices max-deliveries (and sends the advisory) on the consumer's next pull.
    expect(await qa.next({ expires: 1_000 })).toBeNull();
    agentLoops.push(keepWorking("qa", 3));
    // A task published where no stream stores it (a typo in the role): NATS drops it.
    send(`${PREFIX}.agents.securty.tasks`, { task_id: "task-typo-1", type: "security_review" });

    const metrics = await waitFor(
      async () => {
        const m = await scrape(daemon.url);
        return m.value("orgwatch_deadletter_messages_total", { consumer: "qa-worker" }) === 1 ? m : undefined;
      },
      {
        timeoutMs: 20_000,
        what: "orgwatch_deadletter_messages_total{consumer=qa-worker} = 1 (dead-letter routing)",
      },
    );
    expect([8, 9]).toContain(metrics.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" }));
    expect(metrics.value("orgwatch_consumer_lag_messages", { consumer: "security-worker" })).toBe(0);
  });

  it("Prometheus loaded every shipped alert", async () => {
    const body = await promApi<{ groups: { rules: { type: string; name: string }[] }[] }>(
      prometheus.url,
      "/api/v1/rules",
    );
    const loaded = body.data.groups.flatMap((g) =>
      g.rules.filter((r) => r.type === "alerting").map((r) => r.name),
    );
    const shipped = Object.values(shortenedRuleFiles()).flatMap((text) =>
      [...text.matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]),
    );
    expect(shipped.length).toBeGreaterThan(15);
    expect(loaded.sort()).toEqual(shipped.sort());
  });

  it("fires the lag alert for cto and not for the healthy security agent", async () => {
    const firing = await waitFor(
      async () => {
        const alerts = await prometheusAlerts(prometheus.url);
        return alerts.find(
          (a) =>
            a.labels["alertname"] === "OrgwatchConsumerLag" &&
            a.labels["role"] === "cto" &&
            a.state === "firing",
        );
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "OrgwatchConsumerLag firing for cto" },
    );
    expect(firing.labels).toMatchObject({ severity: "warning", consumer: "cto-worker", kind: "tasks" });
    expect(firing.annotations["summary"]).toMatch(/^Agent cto has [89] unprocessed tasks$/);
    // The link, as Alertmanager delivered it, resolves at the orgwatch that raised it.
    expect(firing.annotations["runbook_url"]).toBe(`${daemon.url}/runbooks#orgwatchconsumerlag`);
    const runbooks = await fetch(firing.annotations["runbook_url"]!);
    expect(runbooks.status).toBe(200);
    expect(await runbooks.text()).toContain('id="orgwatchconsumerlag"');

    // security's lag is known to Prometheus (0), and no lag alert exists for it in any state.
    const securityLag = await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
      query: 'orgwatch_consumer_lag_messages{role="security",kind="tasks"}',
    });
    expect(securityLag.data.result.map((s) => [s.metric["consumer"], s.value?.[1]])).toEqual([
      ["security-worker", "0"],
    ]);
    const alerts = await prometheusAlerts(prometheus.url);
    expect(
      alerts.filter((a) => a.labels["alertname"] === "OrgwatchConsumerLag").map((a) => a.labels["role"]),
    ).toEqual(["cto"]);
    // Nor any other alert about its work: the healthy agent is quiet.
    const aboutSecurity = alerts
      .filter((a) => a.labels["role"] === "security")
      .map((a) => a.labels["alertname"]);
    expect(aboutSecurity).toEqual([]);
  });

  it("pages for the dead letter through Alertmanager, and sends the lag warning to chat", async () => {
    const page = await waitFor(
      () =>
        (webhook.received.get("pager") ?? [])
          .flatMap((n) => n.alerts)
          .find((a) => a.labels["alertname"] === "OrgwatchDeadLetter" && a.status === "firing"),
      { timeoutMs: 30_000, intervalMs: 250, what: "OrgwatchDeadLetter at the pager webhook" },
    );
    expect(page.labels).toMatchObject({
      severity: "page",
      role: "qa",
      consumer: "qa-worker",
      stream: "AGENT_QA_TASKS",
    });
    expect(page.annotations["summary"]).toBe("Agent qa: 1 message(s) dead-lettered from qa-worker");

    const chat = await waitFor(
      () =>
        (webhook.received.get("chat") ?? [])
          .flatMap((n) => n.alerts)
          .find((a) => a.labels["alertname"] === "OrgwatchConsumerLag" && a.labels["role"] === "cto"),
      { timeoutMs: 30_000, intervalMs: 250, what: "OrgwatchConsumerLag at the chat webhook" },
    );
    expect(chat.status).toBe("firing");
    // Routing: pages only to the pager, warnings only to chat.
    const pagerAlerts = (webhook.received.get("pager") ?? []).flatMap((n) => n.alerts);
    expect(pagerAlerts.every((a) => a.labels["severity"] === "page")).toBe(true);
    const chatAlerts = (webhook.received.get("chat") ?? []).flatMap((n) => n.alerts);
    expect(chatAlerts.some((a) => a.labels["severity"] === "page")).toBe(false);
    // The poison task pages once: the dead letter, and no other page about qa (a stalled consumer
    // while it went round is the same cause, inhibited by the dead letter).
    expect(
      pagerAlerts
        .filter((a) => a.labels["role"] === "qa" && a.status === "firing")
        .map((a) => a.labels["alertname"]),
    ).toEqual(["OrgwatchDeadLetter"]);
  });

  it("after the dead letter, qa's consumer describes live work only: no duplicate-work or stalled alert", async () => {
    // nats-server 2.9 keeps the dead message's redelivered entry and holds the floor below it;
    // orgwatch knows it dead-lettered that message.
    const query = async (expr: string) =>
      (await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", { query: expr })).data.result;
    await waitFor(
      async () => {
        const redelivered = await query('orgwatch_consumer_redelivered_messages{consumer="qa-worker"}');
        const ok = await query('orgwatch_consumer_status{consumer="qa-worker",status="ok"}');
        return redelivered[0]?.value?.[1] === "0" && ok[0]?.value?.[1] === "1";
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "qa-worker redelivered 0 and ok in Prometheus" },
    );
    // The warning that fired or was pending while the poison task went round resolves, and stays so.
    await waitFor(
      async () =>
        (await prometheusAlerts(prometheus.url)).every(
          (a) =>
            a.labels["role"] !== "qa" ||
            !["OrgwatchDuplicateWork", "OrgwatchConsumerStalled"].includes(a.labels["alertname"] ?? ""),
        ),
      { timeoutMs: 30_000, intervalMs: 250, what: "no duplicate-work or stalled alert for qa" },
    );
  });

  it("pages for the task published where no stream stores it", async () => {
    const page = await waitFor(
      () =>
        (webhook.received.get("pager") ?? [])
          .flatMap((n) => n.alerts)
          .find((a) => a.labels["alertname"] === "OrgwatchTasksUnrouted" && a.status === "firing"),
      { timeoutMs: 30_000, intervalMs: 250, what: "OrgwatchTasksUnrouted at the pager webhook" },
    );
    expect(page.labels).toMatchObject({ severity: "page", role: "securty", kind: "tasks" });
  });

  it("every dashboard panel query is valid and returns data (exceptions listed with their reason)", async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(40);
    const known = new Set(queries.map((q) => q.panel));
    for (const panel of Object.keys(NO_DATA_EXCEPTIONS))
      expect(known, "exception for a missing panel").toContain(panel);

    const end = Date.now() / 1000;
    const problems: string[] = [];
    const excused = new Set<string>();
    for (const q of queries) {
      const expr = expand(q.expr);
      const body = q.instant
        ? await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
            query: expr,
            time: String(end),
          })
        : await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query_range", {
            query: expr,
            start: String(end - 20),
            end: String(end),
            step: "1",
          });
      if (body.status !== "success") {
        problems.push(`${q.panel}: invalid query ${expr}: ${body.error}`);
        continue;
      }
      // Data means a number: a quantile of a histogram with no observations is NaN, which is not.
      const values = body.data.result.flatMap((r) => (r.value ? [r.value] : (r.values ?? [])));
      if (values.some(([, v]) => v !== "NaN")) continue;
      if (NO_DATA_EXCEPTIONS[q.panel] !== undefined) {
        excused.add(q.panel);
        continue;
      }
      problems.push(`${q.panel}: no data for ${expr}`);
    }
    expect(problems).toEqual([]);
    // An exception that is not needed any more must go.
    expect([...excused].sort()).toEqual(Object.keys(NO_DATA_EXCEPTIONS).sort());

    // The drill-down variable lists the agents.
    const roles = await promApi<string[]>(prometheus.url, "/api/v1/label/role/values", {
      "match[]": "orgwatch_consumer_lag_messages",
    });
    expect(roles.data).toEqual(expect.arrayContaining(ROLES));
  });

  it("every latency panel's exemplars reach Prometheus with a trace id (exceptions listed with their reason)", async () => {
    const queries = dashboardQueries().filter((q) => q.exemplar);
    expect(queries.length).toBeGreaterThan(5);
    const end = Date.now() / 1000;
    const problems: string[] = [];
    const excused = new Set<string>();
    for (const q of queries) {
      const expr = expand(q.expr);
      const body = await promApi<
        { seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string> }[] }[]
      >(prometheus.url, "/api/v1/query_exemplars", {
        query: expr,
        start: String(end - 60),
        end: String(end),
      });
      if (body.status !== "success") {
        problems.push(`${q.panel}: query_exemplars failed for ${expr}: ${body.error}`);
        continue;
      }
      const traceIds = body.data.flatMap((s) => s.exemplars.map((e) => e.labels["trace_id"] ?? ""));
      if (traceIds.length > 0 && traceIds.every((id) => /^[0-9a-f]{32}$/.test(id))) continue;
      if (traceIds.length === 0 && NO_EXEMPLAR_EXCEPTIONS[q.panel] !== undefined) {
        excused.add(q.panel);
        continue;
      }
      problems.push(`${q.panel}: exemplars ${JSON.stringify(traceIds.slice(0, 3))} for ${expr}`);
    }
    expect(problems).toEqual([]);
    expect([...excused].sort()).toEqual(Object.keys(NO_EXEMPLAR_EXCEPTIONS).sort());
  });
});
