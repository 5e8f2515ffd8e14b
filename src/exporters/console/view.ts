// What the console shows, as plain JSON (the API's /api/v1/organization and /api/v1/tasks/{id}, and
// the server-sent events): built from the model only, once per change, whoever is watching.
import { agentHealth, type Health } from "../../logic/agent-health.js";
import { classifySubject } from "../../logic/classify.js";
import { lagOf, type ConsumerStatus } from "../../logic/consumer-status.js";
import { subjectMatches } from "../../logic/subject-match.js";
import type { Organization } from "../../model/organization.js";
import type { FeedItem } from "../../model/history.js";
import type { TaskRecord } from "../../model/tasks/index.js";
import { VERSION } from "../../version.js";

const STATUS_ORDER: readonly ConsumerStatus[] = ["ok", "lagging", "stalled", "stopped"];
const HOUR_MS = 3_600_000;

export interface AgentCard {
  readonly role: string;
  readonly up: boolean;
  readonly state: string;
  readonly last_status_at: string | null;
  readonly status: ConsumerStatus;
  readonly lag: number;
  readonly ack_pending: number;
  readonly oldest_task_age_seconds: number | null;
  readonly ack_wait_seconds: number | null;
  readonly ack_rate_per_second: number | null;
  /** null: not known yet; "never": lag and no acknowledgements. */
  readonly drain_eta_seconds: number | "never" | null;
  readonly dead_letters: number;
  readonly dead_letters_last_hour: number;
  readonly unacked_broadcasts: number;
  readonly lost_tasks: number;
  readonly health: Health;
  readonly reasons: readonly string[];
  /** [unix ms, highest lag in that bucket], oldest first, over the last hour. */
  readonly lag_history: readonly (readonly [number, number])[];
}

export interface FlowEdge {
  readonly from: string;
  readonly to: string;
  /** Tasks linked from a `from` task to a `to` task, among the tasks orgwatch remembers. */
  readonly tasks: number;
}

export interface BroadcastCell {
  readonly role: string;
  /** Per recent broadcast (same order): acked, pending, or not this agent's. */
  readonly cells: readonly {
    readonly state: "acked" | "pending" | "n/a";
    /** Acked: publish → ack when observed; pending: how long it has waited. */
    readonly seconds: number | null;
  }[];
}

export interface OrganizationView {
  readonly version: string;
  readonly generated_at: string;
  readonly nats_connected: boolean;
  readonly polls_completed: number;
  readonly last_poll_at: string | null;
  readonly admin_api: boolean;
  readonly trace_url: string | null;
  readonly external_url: string | null;
  readonly agents: readonly AgentCard[];
  readonly flow: readonly FlowEdge[];
  readonly broadcasts: {
    readonly recent: readonly {
      readonly stream: string;
      readonly seq: number;
      readonly subject: string;
      readonly at: string;
    }[];
    readonly agents: readonly BroadcastCell[];
  };
  readonly feed: readonly FeedItemView[];
}

export interface FeedItemView {
  readonly id: number;
  readonly at: string;
  readonly kind: string;
  readonly role: string;
  readonly text: string;
  readonly task_id?: string;
}

export function feedItemView(item: FeedItem): FeedItemView {
  return {
    id: item.id,
    at: new Date(item.atMs).toISOString(),
    kind: item.kind,
    role: item.role,
    text: item.text,
    ...(item.taskId !== undefined && { task_id: item.taskId }),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** The parent a task is linked to (explicitly or inferred), when it has one. */
export function parentOf(task: TaskRecord): string | undefined {
  if (task.link === undefined) return undefined;
  return task.parentTaskId ?? task.inferredParentId;
}

export function organizationView(org: Organization, nowMs = Date.now()): OrganizationView {
  const poll = org.jetstream.current;
  const config = org.config;
  const views = new Map(
    org.agents.view(nowMs, config["agent.stale-after"], org.health.natsOutage).map((a) => [a.role, a]),
  );
  const roles = new Set(views.keys());
  interface Acc {
    status: ConsumerStatus;
    lag: number;
    ackPending: number;
    oldestMs: number | undefined;
    ackWaitMs: number | undefined;
    rate: number | undefined;
    eta: number | undefined;
    lost: number;
    deadLetters: number;
  }
  const acc = new Map<string, Acc>();
  const of = (role: string): Acc => {
    let a = acc.get(role);
    if (!a) {
      a = {
        status: "ok",
        lag: 0,
        ackPending: 0,
        oldestMs: undefined,
        ackWaitMs: undefined,
        rate: undefined,
        eta: undefined,
        lost: 0,
        deadLetters: 0,
      };
      acc.set(role, a);
    }
    return a;
  };
  for (const c of poll?.consumers.values() ?? []) {
    if (c.kind !== "tasks" || c.role === "" || !c.durable) continue;
    roles.add(c.role);
    const a = of(c.role);
    if (STATUS_ORDER.indexOf(c.status) > STATUS_ORDER.indexOf(a.status)) a.status = c.status;
    a.lag += lagOf(c);
    a.ackPending += c.ackPending;
    if (
      c.oldestUnackedMs !== undefined &&
      lagOf(c) > 0 &&
      (a.oldestMs === undefined || c.oldestUnackedMs < a.oldestMs)
    ) {
      a.oldestMs = c.oldestUnackedMs;
      a.ackWaitMs = c.ackWaitMs;
    }
    if (a.ackWaitMs === undefined) a.ackWaitMs = c.ackWaitMs;
    if (c.ackRatePerSecond !== undefined) a.rate = (a.rate ?? 0) + c.ackRatePerSecond;
    if (c.drainEtaSeconds !== undefined) a.eta = Math.max(a.eta ?? 0, c.drainEtaSeconds);
    a.lost += org.lostWork.lostTotal(c.stream, c.name);
  }
  for (const d of org.deadLetters.consumers())
    if (d.labels.role !== "") of(d.labels.role).deadLetters += d.deadLetters;
  const unacked = new Map<string, number>();
  for (const b of org.broadcasts.consumers) unacked.set(b.role, (unacked.get(b.role) ?? 0) + b.unacked);
  const feed = org.history.feed();
  const lastHour = (kind: string, role: string) =>
    feed.filter((f) => f.kind === kind && f.role === role && f.atMs >= nowMs - HOUR_MS).length;

  const agents: AgentCard[] = [...roles].sort().map((role) => {
    const v = views.get(role);
    const a = of(role);
    const oldestAge = a.oldestMs !== undefined ? Math.max(0, (nowMs - a.oldestMs) / 1000) : undefined;
    const deadLastHour = lastHour("dead_letter", role);
    const lostLastHour = lastHour("lost", role);
    const verdict = agentHealth({
      up: v?.up ?? false,
      everReported: v?.lastStatusMs !== undefined,
      status: a.status,
      lag: a.lag,
      oldestTaskAgeSeconds: oldestAge,
      ackWaitSeconds: a.ackWaitMs !== undefined ? a.ackWaitMs / 1000 : undefined,
      drainEtaSeconds: a.eta,
      maxEtaSeconds: config["backpressure.max-eta"] / 1000,
      deadLettersLastHour: deadLastHour,
      lostLastHour,
      unackedBroadcasts: unacked.get(role) ?? 0,
    });
    return {
      role,
      up: v?.up ?? false,
      state: v?.state ?? "unknown",
      last_status_at: iso(v?.lastStatusMs),
      status: a.status,
      lag: a.lag,
      ack_pending: a.ackPending,
      oldest_task_age_seconds: oldestAge !== undefined ? round(oldestAge) : null,
      ack_wait_seconds: a.ackWaitMs !== undefined ? round(a.ackWaitMs / 1000) : null,
      ack_rate_per_second: a.rate !== undefined ? round(a.rate, 4) : null,
      drain_eta_seconds: a.eta === undefined ? null : Number.isFinite(a.eta) ? round(a.eta) : "never",
      dead_letters: a.deadLetters,
      dead_letters_last_hour: deadLastHour,
      unacked_broadcasts: unacked.get(role) ?? 0,
      lost_tasks: a.lost,
      health: verdict.health,
      reasons: verdict.reasons,
      lag_history: org.history.lagSeries(role),
    };
  });

  return {
    version: VERSION,
    generated_at: new Date(nowMs).toISOString(),
    nats_connected: org.health.natsConnected,
    polls_completed: org.health.pollsCompleted,
    last_poll_at: iso(poll?.at),
    admin_api: config["web.enable-admin-api"],
    trace_url: config["web.trace-url"] ?? null,
    external_url: config["web.external-url"] ?? null,
    agents,
    flow: flowEdges(org),
    broadcasts: broadcastMatrix(org, nowMs),
    feed: feed.slice(0, 50).map(feedItemView),
  };
}

/** The on_complete flow between roles: links between remembered tasks, and declared next steps. */
export function flowEdges(org: Organization): FlowEdge[] {
  const prefix = org.config["subject-prefix"];
  const counts = new Map<string, number>();
  const key = (from: string, to: string) => `${from}\u0000${to}`;
  for (const task of org.tasks.all()) {
    const parentId = parentOf(task);
    const parent = parentId !== undefined ? org.tasks.get(parentId) : undefined;
    if (parent && parent.role !== "" && task.role !== "") {
      const k = key(parent.role, task.role);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    if (task.onCompletePublishTo !== undefined && task.role !== "") {
      const to = classifySubject(prefix, task.onCompletePublishTo).role;
      if (to !== "" && !counts.has(key(task.role, to))) counts.set(key(task.role, to), 0);
    }
  }
  return [...counts]
    .map(([k, tasks]) => {
      const [from, to] = k.split("\u0000") as [string, string];
      return { from, to, tasks };
    })
    .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}

function broadcastMatrix(org: Organization, nowMs: number): OrganizationView["broadcasts"] {
  const recent = org.broadcasts.recent;
  const agents = [...org.broadcasts.consumers]
    .sort((a, b) => a.role.localeCompare(b.role))
    .map((c) => ({
      role: c.role,
      cells: recent.map((b) => {
        if (
          b.stream !== c.stream ||
          (c.filterSubjects.length > 0 && !c.filterSubjects.some((f) => subjectMatches(f, b.subject)))
        )
          return { state: "n/a" as const, seconds: null };
        if (b.seq <= c.ackFloor) {
          const s = org.history.broadcastAckSeconds(c.name, b.seq);
          return { state: "acked" as const, seconds: s !== undefined ? round(s) : null };
        }
        return { state: "pending" as const, seconds: round(Math.max(0, (nowMs - b.storedMs) / 1000)) };
      }),
    }));
  return {
    recent: recent.map((b) => ({
      stream: b.stream,
      seq: b.seq,
      subject: b.subject,
      at: new Date(b.storedMs).toISOString(),
    })),
    agents,
  };
}

export interface TaskView {
  readonly task_id: string;
  readonly role: string;
  readonly type: string;
  readonly subject: string;
  readonly stream: string;
  readonly stream_sequence: number;
  readonly published_at: string;
  readonly done_at: string | null;
  readonly outcome: string | null;
  readonly deliveries: number;
  readonly consumer: string | null;
  readonly sla: unknown;
  readonly on_complete_publish_to: string | null;
  readonly parent_task_id: string | null;
  readonly link: string | null;
  readonly trace_id: string;
  readonly trace_link: string | null;
  readonly lost_reason: string | null;
  readonly broken_link: string | null;
  readonly sla_breached: readonly string[];
  readonly timeline: readonly {
    readonly at: string;
    readonly event: string;
    readonly delivery?: number;
    readonly consumer?: string;
    readonly reason?: string;
  }[];
  readonly chain: readonly {
    readonly task_id: string;
    readonly role: string;
    readonly parent_task_id: string | null;
    readonly depth: number;
    readonly outcome: string | null;
    readonly published_at: string;
    readonly done_at: string | null;
  }[];
}

export function traceLink(org: Organization, traceId: string): string | null {
  const template = org.config["web.trace-url"];
  return template === undefined ? null : template.replaceAll("{trace_id}", encodeURIComponent(traceId));
}

/** Chain steps shown at most (a chain is seldom long; a loop of on_complete could make one so). */
const MAX_CHAIN = 200;

export function taskView(org: Organization, taskId: string): TaskView | undefined {
  const task = org.tasks.get(taskId);
  if (!task) return undefined;
  const ids = org.tasks.spanIds(task);
  const timeline = [
    { at: new Date(task.publishedMs).toISOString(), event: "published" },
    ...org.history.timeline(task).map((e) => ({
      at: new Date(e.atMs).toISOString(),
      event: e.name,
      ...(e.delivery !== undefined && { delivery: e.delivery }),
      ...(e.consumer !== undefined && { consumer: e.consumer }),
      ...(e.reason !== undefined && { reason: e.reason }),
    })),
  ];
  // The chain: up to its first task, then everything linked below it.
  let root = task;
  for (let i = 0; i < MAX_CHAIN; i++) {
    const p = parentOf(root);
    const parent = p !== undefined ? org.tasks.get(p) : undefined;
    if (!parent) break;
    root = parent;
  }
  const children = new Map<string, TaskRecord[]>();
  for (const t of org.tasks.all()) {
    const p = parentOf(t);
    if (p === undefined) continue;
    const list = children.get(p) ?? [];
    list.push(t);
    children.set(p, list);
  }
  const chain: TaskView["chain"][number][] = [];
  const walk = (t: TaskRecord, depth: number) => {
    if (chain.length >= MAX_CHAIN || chain.some((c) => c.task_id === t.taskId)) return;
    chain.push({
      task_id: t.taskId,
      role: t.role,
      parent_task_id: parentOf(t) ?? null,
      depth,
      outcome: t.outcome ?? null,
      published_at: new Date(t.publishedMs).toISOString(),
      done_at: iso(t.doneMs),
    });
    for (const c of (children.get(t.taskId) ?? []).sort((a, b) => a.publishedMs - b.publishedMs))
      walk(c, depth + 1);
  };
  walk(root, 0);
  return {
    task_id: task.taskId,
    role: task.role,
    type: task.type,
    subject: task.subject,
    stream: task.stream,
    stream_sequence: task.streamSequence,
    published_at: new Date(task.publishedMs).toISOString(),
    done_at: iso(task.doneMs),
    outcome: task.outcome ?? null,
    deliveries: task.deliveries,
    consumer: task.consumer ?? null,
    sla: task.sla,
    on_complete_publish_to: task.onCompletePublishTo ?? null,
    parent_task_id: parentOf(task) ?? null,
    link: task.link ?? null,
    trace_id: ids.traceId,
    trace_link: traceLink(org, ids.traceId),
    lost_reason: task.lostReason ?? null,
    broken_link: task.brokenLink ?? null,
    sla_breached: task.slaBreached,
    timeline,
    chain,
  };
}
