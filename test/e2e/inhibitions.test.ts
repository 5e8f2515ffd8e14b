// The shipped Alertmanager configuration's inhibitions in a real Alertmanager: alerts posted as
// Prometheus posts them, and the webhook receives exactly one notification per cause. Each case
// uses its own consumer, so that cases cannot inhibit each other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startShippedAlertmanager, startWebhook, type ManagedProcess } from "../helpers/prometheus-stack.js";
import { waitFor } from "../helpers/wait.js";

interface Notified {
  receiver: string;
  alertname: string;
  consumer: string;
}

type Labels = Record<string, string>;

/** Labels of an alert about `consumer` (agent `role`), as the shipped rules label them. */
function about(alertname: string, severity: string, consumer: string, extra: Labels = {}): Labels {
  const role = consumer.replace(/-worker$/, "");
  return {
    alertname,
    severity,
    job: "orgwatch",
    instance: "ow:7786",
    stream: `AGENT_${role.toUpperCase()}_TASKS`,
    consumer,
    role,
    kind: "tasks",
    ...extra,
  };
}

/** Each case: the alerts firing together, and the ones that must be notified. */
const CASES: { name: string; firing: Labels[]; notified: string[] }[] = [
  {
    name: "a poison task: the dead letter pages; stalled, duplicate work and naks on the way are inhibited",
    firing: [
      about("OrgwatchDeadLetter", "page", "poison-worker"),
      about("OrgwatchConsumerStalled", "page", "poison-worker", { status: "stalled" }),
      about("OrgwatchDuplicateWork", "warning", "poison-worker"),
      about("OrgwatchTaskNaks", "warning", "poison-worker"),
    ],
    notified: ["OrgwatchDeadLetter"],
  },
  {
    name: "a stalled consumer says more than its lag",
    firing: [
      about("OrgwatchConsumerStalled", "page", "stuck-worker", { status: "stalled" }),
      about("OrgwatchConsumerLag", "warning", "stuck-worker"),
    ],
    notified: ["OrgwatchConsumerStalled"],
  },
  {
    name: "a task about to expire: one page for it, the backlog's alerts inhibited",
    firing: [
      about("OrgwatchTasksExpiring", "page", "slow-worker"),
      about("OrgwatchBacklogOutlivesStream", "page", "slow-worker"),
      about("OrgwatchBacklogTooLong", "warning", "slow-worker"),
    ],
    notified: ["OrgwatchTasksExpiring"],
  },
  {
    name: "nobody pulling and the agent silent: the consumer's page, not the agent's warning too",
    firing: [
      about("OrgwatchConsumerStopped", "page", "gone-worker", { status: "stopped" }),
      {
        alertname: "OrgwatchAgentDown",
        severity: "warning",
        role: "gone",
        job: "orgwatch",
        instance: "ow:7786",
      },
    ],
    notified: ["OrgwatchConsumerStopped"],
  },
  {
    name: "different consumers are different incidents: nothing inhibited",
    firing: [
      about("OrgwatchDeadLetter", "page", "one-worker"),
      about("OrgwatchConsumerStalled", "page", "other-worker", { status: "stalled" }),
    ],
    notified: ["OrgwatchDeadLetter", "OrgwatchConsumerStalled"],
  },
];

describe("the shipped inhibitions in a real Alertmanager", () => {
  let alertmanager: ManagedProcess;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  const notified: Notified[] = [];

  beforeAll(async () => {
    webhook = await startWebhook((receiver, doc) => {
      for (const a of doc.alerts)
        notified.push({
          receiver,
          alertname: a.labels["alertname"]!,
          consumer: a.labels["consumer"] ?? a.labels["role"]!,
        });
    });
    alertmanager = await startShippedAlertmanager(webhook.url);
    const now = new Date();
    const ends = new Date(now.getTime() + 10 * 60_000);
    const posted = CASES.flatMap((c) => c.firing).map((labels) => ({
      labels,
      annotations: { summary: labels["alertname"]! },
      startsAt: now.toISOString(),
      endsAt: ends.toISOString(),
    }));
    // A sentinel posted last: once its notification arrives, every group flushed before it has too.
    posted.push({
      labels: { alertname: "Sentinel", severity: "warning", role: "sentinel" },
      annotations: { summary: "last" },
      startsAt: now.toISOString(),
      endsAt: ends.toISOString(),
    });
    const res = await fetch(`${alertmanager.url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(posted),
    });
    expect(res.status).toBe(200);
    await waitFor(() => notified.some((n) => n.alertname === "Sentinel"), {
      timeoutMs: 30_000,
      what: "the sentinel's notification",
    });
    // Every case's expected notifications too (they may flush in any order around the sentinel).
    await waitFor(
      () =>
        CASES.every((c) =>
          c.notified.every((name) =>
            notified.some(
              (n) =>
                n.alertname === name &&
                c.firing.some((f) => f["alertname"] === name && (f["consumer"] ?? f["role"]) === n.consumer),
            ),
          ),
        ),
      { timeoutMs: 30_000, what: "every expected notification" },
    );
  });

  afterAll(async () => {
    await alertmanager?.stop();
    await webhook?.close();
  });

  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const consumers = new Set(c.firing.map((f) => f["consumer"] ?? f["role"]!));
    const got = notified.filter((n) => consumers.has(n.consumer)).map((n) => n.alertname);
    expect(got.sort()).toEqual([...c.notified].sort());
    // Alertmanager says the others are inhibited (not merely not sent yet).
    const res = await fetch(`${alertmanager.url}/api/v2/alerts?inhibited=true&active=false&silenced=false`);
    const inhibited = ((await res.json()) as { labels: Labels; status: { inhibitedBy: string[] } }[])
      .filter((a) => consumers.has(a.labels["consumer"] ?? a.labels["role"]!))
      .filter((a) => a.status.inhibitedBy.length > 0)
      .map((a) => a.labels["alertname"]!);
    expect(inhibited.sort()).toEqual(
      c.firing
        .map((f) => f["alertname"]!)
        .filter((n) => !c.notified.includes(n))
        .sort(),
    );
  });

  it("routes pages to the pager and warnings to chat", () => {
    for (const n of notified.filter((x) => x.alertname !== "Sentinel"))
      expect(n.receiver, n.alertname).toBe(
        CASES.flatMap((c) => c.firing).find((f) => f["alertname"] === n.alertname)!["severity"] === "page"
          ? "pager"
          : "chat",
      );
  });
});
