// Task, chain and SLA metrics: orgwatch_tasks_published_total, orgwatch_tasks_completed_total,
// orgwatch_task_queue_seconds, orgwatch_task_duration_seconds, orgwatch_chain_duration_seconds,
// orgwatch_chain_steps, orgwatch_task_sla_breaches_total, orgwatch_tasks_overdue.
// Latency histograms carry the trace id as an exemplar. prom-client refuses exemplars on a
// Prometheus-format registry, so each histogram exists twice: plain in the Prometheus registry,
// with exemplars in the OpenMetrics one, and every observation goes to both.
import { Counter, Gauge, Histogram } from "prom-client";
import { LabelCap } from "../../logic/label-cap.js";
import { SLA_KINDS } from "../../logic/sla.js";
import type { Organization } from "../../model/organization.js";
import type { TaskRecord } from "../../model/tasks/index.js";
import { AGENT_LATENCY_BUCKETS, type MetricsRegistry } from "./registry.js";

const CHAIN_STEP_BUCKETS = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20];
const CHAIN_COST_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50, 100];

type Labels = Record<string, string>;

interface ExemplarHistogram {
  observe(labels: Labels, value: number, traceId: string): void;
}

function exemplarHistogram(
  metrics: MetricsRegistry,
  config: { name: string; help: string; labelNames: string[]; buckets: number[] },
): ExemplarHistogram {
  const plain = new Histogram({ ...config, registers: [metrics.prometheus] });
  const withExemplars = new Histogram({ ...config, enableExemplars: true, registers: [metrics.openMetrics] });
  return {
    observe(labels, value, traceId) {
      plain.observe(labels, value);
      withExemplars.observe({ labels, value, exemplarLabels: { trace_id: traceId } });
    },
  };
}

export function registerTaskMetrics(metrics: MetricsRegistry, org: Organization): void {
  const registers = metrics.registers;
  const { tasks, health } = org;
  const max = org.config["labels.max-values"];
  // One cap per label, shared by every task family: a task's labels are capped once, when it is
  // published, and reused for its latencies, completion and SLA breaches. So both caps count a
  // refused value against orgwatch_tasks_published_total, once per task, where the task arrives;
  // the gauges' collect() re-reads roles at every scrape (admitQuietly) and counts nothing again.
  const roles = new LabelCap(max, () => health.countOverflow("orgwatch_tasks_published_total"));
  const types = new LabelCap(max, () => health.countOverflow("orgwatch_tasks_published_total"));
  /** Labels of a task, capped once and remembered (a task keeps its series for its whole life). */
  const labelsOf = new WeakMap<TaskRecord, { role: string; type: string }>();
  const label = (task: TaskRecord) => {
    let l = labelsOf.get(task);
    if (!l) labelsOf.set(task, (l = { role: roles.admit(task.role), type: types.admit(task.type) }));
    return l;
  };
  const taskRoles = () => {
    const set = new Set<string>();
    for (const s of org.jetstream.current?.streams.values() ?? []) {
      if (s.kind === "tasks" && s.role !== "") set.add(s.role);
    }
    return set;
  };

  const published = new Counter({
    name: "orgwatch_tasks_published_total",
    help: "Tasks published on the task subjects (each task once)",
    labelNames: ["role", "type"],
    registers,
  });
  const completed = new Counter({
    name: "orgwatch_tasks_completed_total",
    help: "Tasks that ended, by outcome: completed, failed (task.failed), dead_letter, lost (left its stream unacknowledged), timeout",
    labelNames: ["role", "type", "outcome"],
    registers,
  });
  const breaches = new Counter({
    name: "orgwatch_task_sla_breaches_total",
    help: "Tasks that missed their own SLA: ack (first delivery after ack_within_seconds) or complete (ended after complete_within_minutes)",
    labelNames: ["role", "sla"],
    registers,
    collect() {
      // Every role with tasks starts at 0, so that increase() sees the first breach.
      for (const role of taskRoles())
        for (const sla of SLA_KINDS) this.inc({ role: roles.admitQuietly(role), sla }, 0);
    },
  });
  new Gauge({
    name: "orgwatch_tasks_overdue",
    help: "Open tasks already past their SLA (not yet delivered past ack_within_seconds, not ended past complete_within_minutes)",
    labelNames: ["role", "sla"],
    registers,
    collect() {
      this.reset();
      const now = Date.now();
      const counts = new Map<string, Record<string, number>>();
      for (const role of [...taskRoles(), ...tasks.roles()])
        counts.set(roles.admitQuietly(role), { ack: 0, complete: 0 });
      for (const [role, c] of tasks.overdue(now)) {
        const r = roles.admitQuietly(role);
        const sum = counts.get(r) ?? { ack: 0, complete: 0 };
        for (const sla of SLA_KINDS) sum[sla] = (sum[sla] ?? 0) + c[sla];
        counts.set(r, sum);
      }
      for (const [role, c] of counts) for (const sla of SLA_KINDS) this.set({ role, sla }, c[sla] ?? 0);
    },
  });
  const queue = exemplarHistogram(metrics, {
    name: "orgwatch_task_queue_seconds",
    help: "Time from a task's publication to its first delivery to an agent",
    labelNames: ["role"],
    buckets: AGENT_LATENCY_BUCKETS,
  });
  const duration = exemplarHistogram(metrics, {
    name: "orgwatch_task_duration_seconds",
    help: "Time from a task's publication to its end (any outcome)",
    labelNames: ["role"],
    buckets: AGENT_LATENCY_BUCKETS,
  });
  const chainDuration = exemplarHistogram(metrics, {
    name: "orgwatch_chain_duration_seconds",
    help: "Time from a chain's first task published to its last task ended",
    labelNames: [],
    buckets: AGENT_LATENCY_BUCKETS,
  });
  const chainSteps = exemplarHistogram(metrics, {
    name: "orgwatch_chain_steps",
    help: "Tasks in a chain (on_complete steps, the first task included)",
    labelNames: [],
    buckets: CHAIN_STEP_BUCKETS,
  });

  const broken = new Counter({
    name: "orgwatch_chain_links_broken_total",
    help: "Completed tasks whose on_complete next step broke: unrouted_target (no stream stores its publish_to) or next_missing (no task arrived there within chains.next-window)",
    labelNames: ["role", "reason"],
    registers,
    collect() {
      for (const role of taskRoles())
        for (const reason of ["unrouted_target", "next_missing"])
          this.inc({ role: roles.admitQuietly(role), reason }, 0);
    },
  });
  new Gauge({
    name: "orgwatch_tasks_open",
    help: "Tasks seen and not yet ended: published = completed + failed + dead_letter + lost + timeout + open",
    labelNames: ["role"],
    registers,
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const role of taskRoles()) counts.set(roles.admitQuietly(role), 0);
      for (const [role, n] of tasks.openByRole()) {
        const r = roles.admitQuietly(role);
        counts.set(r, (counts.get(r) ?? 0) + n);
      }
      for (const [role, n] of counts) this.set({ role }, n);
    },
  });
  tasks.on("linkBroken", (task, reason) => broken.inc({ role: label(task).role, reason }));

  tasks.on("published", (task) => published.inc(label(task)));
  tasks.on("delivered", (task, seconds, traceId) =>
    queue.observe({ role: label(task).role }, seconds, traceId),
  );
  tasks.on("slaBreach", (task, sla) => breaches.inc({ role: label(task).role, sla }));
  tasks.on("finished", (task) => {
    const l = label(task);
    completed.inc({ ...l, outcome: task.outcome ?? "completed" });
    const seconds = ((task.doneMs ?? task.publishedMs) - task.publishedMs) / 1000;
    duration.observe({ role: l.role }, seconds, task.ids?.traceId ?? "");
  });
  const chainCost = exemplarHistogram(metrics, {
    name: "orgwatch_chain_cost_usd",
    help: "What a chain's tasks reported costing, in US dollars (chains with reported usage only)",
    labelNames: [],
    buckets: CHAIN_COST_BUCKETS,
  });
  tasks.on("chainFinished", (chain) => {
    chainDuration.observe({}, chain.durationSeconds, chain.traceId);
    chainSteps.observe({}, chain.steps, chain.traceId);
    if (chain.usage) chainCost.observe({}, chain.usage.costUsd, chain.traceId);
  });
}
