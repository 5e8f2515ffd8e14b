// The one model of the watched organization. Sources (src/sources/*) write into it; exporters
// (src/exporters/*) only read it or listen to its events. Each part lives in its own file.
import type { Config } from "../config/schema.js";
import { AdmissionsModel } from "./admissions.js";
import { AgentsModel } from "./agents.js";
import { BroadcastsModel } from "./broadcasts.js";
import { DeadLettersModel } from "./deadletters.js";
import { ExporterHealth } from "./exporter-health.js";
import { FindingsModel } from "./findings.js";
import { HistoryModel, type FeedItem } from "./history.js";

/** Consumer status changes of one poll shown one by one in the feed; more are summed up in one item. */
const MAX_STATUS_ITEMS_PER_POLL = 10;
import { JetStreamModel, type PollResult } from "./jetstream.js";
import { lagOf, type ConsumerStatus } from "../logic/consumer-status.js";
import { CHAINS_LEASE, LeaseModel, leaseHolderId } from "./lease.js";
import { LostWorkModel } from "./lost-work.js";
import { TasksModel } from "./tasks/index.js";
import { UnroutedModel } from "./unrouted.js";
import { UsageModel } from "./usage.js";

export class Organization {
  readonly health = new ExporterHealth();
  readonly jetstream = new JetStreamModel();
  /** Listens to polls before the task model: it names the lost tasks the task model then ends. */
  readonly lostWork = new LostWorkModel();
  readonly unrouted = new UnroutedModel();
  readonly admissions = new AdmissionsModel();
  readonly usage = new UsageModel();
  readonly agents: AgentsModel;
  readonly broadcasts = new BroadcastsModel();
  readonly deadLetters = new DeadLettersModel();
  readonly tasks: TasksModel;
  readonly findings = new FindingsModel();
  /** The lease over span export and chain state (one orgwatch of a pair holds it). */
  readonly lease: LeaseModel;
  /** The console's memory: lag over the last hour and what just happened. */
  readonly history = new HistoryModel();

  constructor(readonly config: Config) {
    this.lease = new LeaseModel(CHAINS_LEASE, leaseHolderId(config["pair.replica"]));
    this.agents = new AgentsModel(config.roles, this.jetstream);
    this.tasks = new TasksModel(
      {
        inferWindowMs: config["chains.infer-window"],
        taskTimeoutMs: config["chains.task-timeout"],
        retentionMs: config["chains.retention"],
        maxTasks: config["chains.max-tasks"],
        nextWindowMs: config["chains.next-window"],
      },
      this.jetstream,
    );
    this.lostWork.attachTasks(this.tasks);
    // Steps: the poller applies them a slice of consumers per turn of the event loop.
    this.jetstream.prependListener("polled", (result) => this.lostWork.applyPollSteps(result));
    this.feedHistory();
  }

  /** What the history (the console's memory) takes from the rest of the model as it changes. */
  private feedHistory(): void {
    const history = this.history;
    const wasUp = new Map<string, boolean>();
    /** Agents that fell silent: only their return is news (not every agent's first status). */
    const silent = new Set<string>();
    const statuses = new Map<string, ConsumerStatus>();
    this.jetstream.on("polled", (result: PollResult) => {
      const lag = new Map<string, number>();
      const changes: Omit<FeedItem, "id">[] = [];
      for (const c of result.consumers.values()) {
        if (c.kind !== "tasks" || c.role === "" || !c.durable) continue;
        lag.set(c.role, (lag.get(c.role) ?? 0) + lagOf(c));
        const key = `${c.stream}/${c.name}`;
        const before = statuses.get(key) ?? "ok";
        statuses.set(key, c.status);
        // Work stopping or stalling is news, and so is its recovery; lag coming and going is the cards'.
        const stuck = (st: ConsumerStatus) => st === "stalled" || st === "stopped";
        if (c.status !== before && (stuck(c.status) || stuck(before)))
          changes.push({
            atMs: result.at,
            kind: "consumer_status",
            role: c.role,
            status: c.status,
            text: `${c.stream}/${c.name} is ${c.status} (was ${before}), lag ${lagOf(c)}`,
          });
      }
      if (changes.length <= MAX_STATUS_ITEMS_PER_POLL) for (const item of changes) history.add(item);
      else {
        // Many at once (a NATS-wide stop, a big organization's first window): one item says it, rather
        // than a flood that pushes everything else out of the feed and down every console.
        const byStatus = new Map<ConsumerStatus, number>();
        for (const c of changes) byStatus.set(c.status!, (byStatus.get(c.status!) ?? 0) + 1);
        const counts = [...byStatus].map(([st, n]) => `${n} ${st}`).join(", ");
        const roles = [...new Set(changes.map((c) => c.role))];
        history.add({
          atMs: result.at,
          kind: "consumer_status",
          role: roles.length === 1 ? roles[0]! : "",
          text: `${changes.length} consumers changed at once (${counts}), e.g. ${changes
            .slice(0, 3)
            .map((c) => c.text.split(" ")[0])
            .join(", ")}`,
        });
      }
      for (const key of statuses.keys()) if (!result.consumers.has(key)) statuses.delete(key);
      history.recordLag(result.at, lag);
      const now = Date.now();
      for (const agent of this.agents.view(now, this.config["agent.stale-after"], this.health.natsOutage)) {
        const before = wasUp.get(agent.role);
        wasUp.set(agent.role, agent.up);
        // An agent never heard from is not news at every start; one that was up and fell silent is.
        if (before === true && !agent.up) {
          silent.add(agent.role);
          history.add({
            atMs: now,
            kind: "agent_silent",
            role: agent.role,
            text: `${agent.role} fell silent`,
          });
        } else if (agent.up && silent.delete(agent.role))
          history.add({
            atMs: now,
            kind: "agent_back",
            role: agent.role,
            text: `${agent.role} is reporting again`,
          });
      }
    });
    this.deadLetters.on("deadLetter", (labels, detail) => {
      const taskId = this.tasks.taskAt(labels.stream, detail.streamSequence)?.taskId;
      history.add({
        atMs: detail.atMs,
        kind: "dead_letter",
        role: labels.role,
        ...(taskId !== undefined && { taskId }),
        text: `${taskId ?? `${labels.stream} #${detail.streamSequence}`} dead-lettered by ${labels.consumer} after ${detail.deliveries} deliveries`,
      });
    });
    this.tasks.on("finished", (task) => {
      history.rememberTimeline(task);
      if (task.outcome === "lost")
        if (task.outcome === "lost")
          history.add({
            atMs: task.doneMs ?? Date.now(),
            kind: "lost",
            role: task.role,
            taskId: task.taskId,
            text: `${task.taskId} left ${task.stream} unacknowledged (${task.lostReason ?? "unknown"})`,
          });
    });
    this.broadcasts.on("acked", (o) => history.recordBroadcastAck(o.consumer, o.streamSequence, o.seconds));
    this.tasks.on("linkBroken", (task, reason) =>
      history.add({
        atMs: Date.now(),
        kind: "broken_chain",
        role: task.role,
        taskId: task.taskId,
        text:
          reason === "unrouted_target"
            ? `${task.taskId}'s next step goes to ${task.onCompletePublishTo ?? "?"}, which no stream stores`
            : `${task.taskId}'s next step never came`,
      }),
    );
  }
}
