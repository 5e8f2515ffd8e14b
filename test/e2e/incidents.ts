// The incident matrix: for each scripted incident, the alerts that fire in Prometheus and the ones
// Alertmanager notifies (after the shipped inhibitions). test/e2e/incident-matrix.test.ts plays each
// incident against real nats-server, orgwatch, Prometheus and Alertmanager and holds them to this
// table; `npm run docs:alerts` writes it into docs/alerts.md (a test fails when that is stale).

export interface Alert {
  readonly alertname: string;
  readonly severity: "page" | "warning" | "info";
}

export interface Incident {
  readonly id: string;
  /** What happens, as the on-call engineer would say it. */
  readonly title: string;
  /** The agent it happens to (every incident has its own), or "orgwatch" for orgwatch's own. */
  readonly role: string;
  /** Every alert that fires (state firing in Prometheus) about it. */
  readonly fires: readonly Alert[];
  /** The alerts Alertmanager notifies: `fires` less the inhibited. */
  readonly notified: readonly string[];
  /** Why the table says what it says, where it is not obvious. */
  readonly note?: string;
}

const page = (alertname: string): Alert => ({ alertname, severity: "page" });
const warning = (alertname: string): Alert => ({ alertname, severity: "warning" });
const info = (alertname: string): Alert => ({ alertname, severity: "info" });

export const INCIDENTS: readonly Incident[] = [
  {
    id: "lag",
    title: "lag over 5, sustained (the agent acks, slower than work arrives)",
    role: "lagger",
    fires: [warning("OrgwatchConsumerLag")],
    notified: ["OrgwatchConsumerLag"],
  },
  {
    id: "poison",
    title: "a poison task: three deliveries, then the dead letter",
    role: "poison",
    fires: [page("OrgwatchDeadLetter")],
    notified: ["OrgwatchDeadLetter"],
    note: "pages once; a stalled consumer or duplicate work on the way would be inhibited by the dead letter",
  },
  {
    id: "max-age",
    title: "a task nobody takes, lost when its stream's max age removes it",
    role: "expiring",
    fires: [page("OrgwatchTasksExpiring"), page("OrgwatchTasksLost")],
    notified: ["OrgwatchTasksExpiring", "OrgwatchTasksLost"],
    note: "two pages, on purpose: first while the task can still be saved, then its loss",
  },
  {
    id: "unrouted",
    title: "a task published where no stream stores it",
    role: "ghost",
    fires: [page("OrgwatchTasksUnrouted")],
    notified: ["OrgwatchTasksUnrouted"],
  },
  {
    id: "broken-chain",
    title: "a completed task whose on_complete next step never comes",
    role: "chained",
    fires: [warning("OrgwatchChainBroken")],
    notified: ["OrgwatchChainBroken"],
  },
  {
    id: "broadcast",
    title: "a broadcast not acknowledged for 5 minutes",
    role: "deaf",
    fires: [warning("OrgwatchBroadcastUnacked")],
    notified: ["OrgwatchBroadcastUnacked"],
  },
  {
    id: "silent",
    title: "an agent whose status goes silent",
    role: "quiet",
    fires: [warning("OrgwatchAgentDown")],
    notified: ["OrgwatchAgentDown"],
  },
  {
    id: "stalled",
    title: "an agent holding a task past its ack wait",
    role: "holder",
    fires: [page("OrgwatchConsumerStalled")],
    notified: ["OrgwatchConsumerStalled"],
  },
  {
    id: "stopped",
    title: "work waiting and nobody pulling",
    role: "idle",
    fires: [page("OrgwatchConsumerStopped")],
    notified: ["OrgwatchConsumerStopped"],
  },
  {
    id: "overdue",
    title: "a task overdue on its SLA (picked up late)",
    role: "late",
    fires: [warning("OrgwatchTasksOverdue"), info("OrgwatchSLABreaches")],
    notified: ["OrgwatchTasksOverdue", "OrgwatchSLABreaches"],
    note: "the breach stays counted for an hour (info, to chat once a day); the overdue warning ends with the pick-up",
  },
  {
    id: "outlives",
    title: "a backlog that outlives its stream (drain time + oldest task's age past the max age)",
    role: "outliver",
    fires: [warning("OrgwatchConsumerLag"), page("OrgwatchBacklogOutlivesStream")],
    notified: ["OrgwatchConsumerLag", "OrgwatchBacklogOutlivesStream"],
    note: "the lag warns first; the page comes when the tasks will expire before they are reached",
  },
  {
    id: "nats-down",
    title: "orgwatch disconnected from NATS",
    role: "orgwatch",
    fires: [page("OrgwatchNatsDisconnected")],
    notified: ["OrgwatchNatsDisconnected"],
    note: "failed and stale polls while disconnected (and 5 minutes after) are not OrgwatchPollsFailing or …PollsStale: one page",
  },
  {
    id: "orgwatch-down",
    title: "orgwatch down",
    role: "orgwatch",
    fires: [page("OrgwatchDown")],
    notified: ["OrgwatchDown"],
  },
];

/** The matrix as a Markdown table. */
export function matrixTable(): string {
  const rows = INCIDENTS.map((i) => {
    const fires = i.fires.map((a) => `\`${a.alertname}\` (${a.severity})`).join(", ");
    const notified = i.notified.map((n) => `\`${n}\``).join(", ");
    return `| ${i.title} | ${i.role} | ${fires} | ${notified} | ${i.note ?? ""} |`;
  });
  return [
    "| incident | agent | fires | notified (after inhibitions) | note |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
