// The simulated organization: the reference's agents at work over NATS JetStream, sped up by `pace`.
// It only talks NATS (it knows nothing of orgwatch's model), so the demo, the tests and the benchmarks
// watch it from outside exactly as they would a real organization.
import { EventEmitter, setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, headers, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { silentLogger, type Logger } from "../log.js";
import {
  CHAIN_TEMPLATES,
  MAX_DELIVER,
  STORY_AGENTS,
  assignments,
  broadcastReadMinutes,
  broadcasts,
  chainedTask,
  poisonReaction,
  restartMinutes,
  roster,
  work,
  tasksSubject,
  type AgentSpec,
  type PlannedBroadcast,
  type PlannedTask,
  type Scale,
  type TaskMessage,
} from "./plan.js";
import {
  BROADCASTS_STREAM,
  broadcastConsumerName,
  ensureTopology,
  realMs,
  taskStreamName,
  workerName,
} from "./topology.js";

export interface SimulationOptions {
  /** NATS server URL(s). */
  readonly servers: string | string[];
  /** Authentication and TLS, as for orgwatch's own connection. */
  readonly connection?: Omit<ConnectionOptions, "servers" | "name">;
  readonly prefix?: string;
  /** Speed-up of simulated time: at 600 a 20-minute reasoning turn takes 2 s. */
  readonly pace?: number;
  /** Number of agents (at least 3; the whole story needs 6). */
  readonly agents?: number;
  readonly seed?: number;
  /** Nothing goes wrong: no overloaded, flaky or broadcast-ignoring agent (plan.ts). */
  readonly healthy?: boolean;
  /** Replicas of the organization's streams (3 on a 3-node cluster that may lose a node). */
  readonly replicas?: number;
  readonly log?: Logger;
}

export const DEFAULT_SIMULATION = { prefix: "genbrain", pace: 1, agents: STORY_AGENTS, seed: 1 } as const;
export const MAX_PACE = 6000;

/** What the organization did, for tests and benchmarks that compare orgwatch's view with the truth. */
export interface SimulationEvents {
  published: [{ role: string; task: TaskMessage; poison: boolean; seq: number }];
  /** An agent acknowledged a task (outcome failed: it gave up on it, e.g. a rejected review). */
  finished: [{ role: string; taskId: string; outcome: "completed" | "failed" }];
  /** The flaky agent crashed on a poison task, leaving it unacknowledged. */
  crashed: [{ role: string; taskId: string; delivery: number }];
  /** The flaky agent gave a poison task back (nak). */
  naked: [{ role: string; taskId: string; delivery: number }];
  broadcast: [{ broadcastId: string; seq: number }];
  "broadcast-acked": [{ role: string; broadcastId: string }];
}

export interface SimulatedOrganization extends EventEmitter<SimulationEvents> {
  readonly agents: readonly AgentSpec[];
  /** Roles playing each part of the story (absent when the organization is too small for it). */
  readonly story: {
    readonly overloaded?: string;
    readonly flaky?: string;
    readonly ignoresBroadcasts?: string;
  };
  stop(): Promise<void>;
}

type State = "idle" | "busy" | "error";

const PULL_EXPIRES_MS = 2000;
/** Heartbeats every 30 simulated seconds, but never chattier than 1/s nor quieter than every 15 s. */
const HEARTBEAT_MINUTES = 0.5;
const HEARTBEAT_BOUNDS_MS = [1000, 15_000] as const;

export async function startSimulatedOrganization(options: SimulationOptions): Promise<SimulatedOrganization> {
  const prefix = options.prefix ?? DEFAULT_SIMULATION.prefix;
  const pace = options.pace ?? DEFAULT_SIMULATION.pace;
  const seed = options.seed ?? DEFAULT_SIMULATION.seed;
  const log = options.log ?? silentLogger();
  if (!(pace > 0 && pace <= MAX_PACE)) throw new RangeError(`pace must be above 0 and at most ${MAX_PACE}`);
  const agents = roster(options.agents ?? DEFAULT_SIMULATION.agents, { healthy: options.healthy ?? false });
  const scale: Scale = { prefix, pace };

  const nc = await connect({
    ...options.connection,
    servers: options.servers,
    name: "orgwatch-simulator",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // In a compose stack the simulator may start before NATS answers.
    waitOnFirstConnect: true,
  });
  try {
    await ensureTopology(await jetstreamManager(nc), agents, scale, options.replicas);
  } catch (err) {
    await nc.close();
    throw err;
  }
  return new Simulation(nc, jetstream(nc), agents, scale, seed, log);
}

class Simulation extends EventEmitter<SimulationEvents> implements SimulatedOrganization {
  readonly story: SimulatedOrganization["story"];
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly states = new Map<string, { state: State; taskId?: string }>();
  /** Tasks assigned and not yet acknowledged or dead, per role (the CEO's view of the backlog). */
  private readonly open = new Map<string, number>();
  /** Poison task ids, until their last delivery. */
  private readonly poison = new Set<string>();
  private readonly nextAssignment = new Map<string, PlannedTask>();
  private nextBroadcast: PlannedBroadcast | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    readonly agents: readonly AgentSpec[],
    private readonly scale: Scale,
    private readonly seed: number,
    private readonly log: Logger,
  ) {
    super();
    // Every loop's sleeps listen on the one stop signal: a few per agent, by design.
    setMaxListeners(0, this.abort.signal);
    const find = (b: AgentSpec["behaviour"]) => agents.find((a) => a.behaviour === b)?.role;
    this.story = {
      overloaded: find("overloaded"),
      flaky: find("flaky"),
      ignoresBroadcasts: find("ignores-broadcasts"),
    };
    for (const agent of agents) {
      this.states.set(agent.role, { state: "idle" });
      this.open.set(agent.role, 0);
      this.run(`${agent.role} tasks`, () => this.workLoop(agent));
      if (agent.assignment) {
        const plan = assignments(seed, agent, scale);
        this.run(`assignments to ${agent.role}`, () => this.assignLoop(agent, plan));
      }
      if (agent.behaviour !== "ignores-broadcasts")
        this.run(`${agent.role} broadcasts`, () => this.broadcastReadLoop(agent));
    }
    const announcements = broadcasts(seed);
    this.run("broadcasts", () => this.broadcastLoop(announcements));
    this.run("heartbeats", () => this.heartbeatLoop());
  }

  async stop(): Promise<void> {
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    // Closing first ends pending pulls at once instead of at their expiry.
    await this.nc.close().catch(() => undefined);
    await Promise.all(this.loops);
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** Runs a loop until stop(); an error is logged and the loop resumes after a second. */
  private run(name: string, loop: () => Promise<void>): void {
    const guarded = async () => {
      while (!this.stopping) {
        try {
          await loop();
        } catch (err) {
          if (this.stopping) return;
          this.log.warn({ err: (err as Error).message, loop: name }, "simulator loop failed; retrying");
          await sleep(1000, undefined, { signal: this.abort.signal }).catch(() => undefined);
        }
      }
    };
    this.loops.push(guarded());
  }

  /** Waits `minutes` of simulated time; throws when stopped meanwhile. */
  private async wait(minutes: number): Promise<void> {
    await sleep(realMs(minutes, this.scale.pace), undefined, { signal: this.abort.signal });
  }

  private publishJson(subject: string, body: object): void {
    this.nc.publish(subject, JSON.stringify({ ...body, ts: new Date().toISOString() }));
  }

  private setState(role: string, state: State, taskId?: string): void {
    this.states.set(role, { state, taskId });
    this.sendStatus(role);
  }

  private sendStatus(role: string): void {
    const { state, taskId } = this.states.get(role)!;
    this.publishJson(`${this.scale.prefix}.agents.${role}.status`, {
      state,
      ...(taskId && { task_id: taskId }),
    });
  }

  private event(type: string, role: string, fields: Record<string, unknown> = {}): void {
    this.publishJson(`${this.scale.prefix}.org.events`, { type, role, ...fields });
  }

  private async heartbeatLoop(): Promise<void> {
    const [min, max] = HEARTBEAT_BOUNDS_MS;
    const every = Math.min(max, Math.max(min, realMs(HEARTBEAT_MINUTES, this.scale.pace)));
    for (;;) {
      for (const { role } of this.agents) this.sendStatus(role);
      await sleep(every, undefined, { signal: this.abort.signal });
    }
  }

  private async assignLoop(agent: AgentSpec, plan: Iterator<PlannedTask>): Promise<void> {
    const maxOpen = agent.assignment!.maxOpen ?? Infinity;
    for (;;) {
      // Kept across a failed publish (the loop is re-entered), so no task is skipped or repeated.
      this.nextAssignment.set(agent.role, this.nextAssignment.get(agent.role) ?? plan.next().value);
      const planned = this.nextAssignment.get(agent.role)!;
      if (planned.afterMinutes > 0) await this.wait(planned.afterMinutes);
      while (this.open.get(agent.role)! >= maxOpen) await this.wait(1);
      if (planned.poison) this.poison.add(planned.task.task_id);
      await this.publishTask(agent.role, planned.task, planned.poison, planned.traceparent);
      this.nextAssignment.delete(agent.role);
      this.event("task.assigned", "ceo", { task_id: planned.task.task_id, assignee: agent.role });
    }
  }

  private async publishTask(
    role: string,
    task: TaskMessage,
    poison: boolean,
    traceparent?: string,
  ): Promise<void> {
    this.open.set(role, this.open.get(role)! + 1);
    const h = headers();
    if (traceparent) h.set("traceparent", traceparent);
    try {
      // The task id as message id: a publish retried after a lost reply is stored once.
      const ack = await this.js.publish(tasksSubject(this.scale.prefix, role), JSON.stringify(task), {
        msgID: task.task_id,
        headers: h,
      });
      this.emit("published", { role, task, poison, seq: ack.seq });
    } catch (err) {
      this.open.set(role, this.open.get(role)! - 1);
      throw err;
    }
  }

  private async workLoop(agent: AgentSpec): Promise<void> {
    const consumer = await this.js.consumers.get(taskStreamName(agent.role), workerName(agent.role));
    while (!this.stopping) {
      const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
      if (msg) await this.handleTask(agent, msg);
    }
  }

  private async handleTask(agent: AgentSpec, msg: JsMsg): Promise<void> {
    const { role } = agent;
    let task: TaskMessage;
    try {
      task = msg.json<TaskMessage>();
    } catch {
      // Not one of ours (someone published by hand): an agent would reject it.
      msg.term();
      return;
    }
    const delivery = msg.info.deliveryCount;
    this.setState(role, "busy", task.task_id);
    this.event("task.started", role, { task_id: task.task_id, task_type: task.type, delivery });

    if (agent.behaviour === "flaky" && this.poison.has(task.task_id)) {
      if (delivery >= MAX_DELIVER) {
        this.poison.delete(task.task_id);
        this.open.set(role, this.open.get(role)! - 1);
      }
      const downMinutes = restartMinutes(this.seed, task.task_id, delivery);
      if (poisonReaction(delivery) === "nak") {
        msg.nak(realMs(downMinutes, this.scale.pace));
        this.event("task.rejected", role, { task_id: task.task_id, delivery });
        this.emit("naked", { role, taskId: task.task_id, delivery });
        this.setState(role, "idle");
        return;
      }
      // The agent dies mid-reasoning: no ack, no nak; JetStream redelivers after the ack wait.
      this.setState(role, "error", task.task_id);
      this.event("agent.crashed", role, { task_id: task.task_id, delivery });
      this.emit("crashed", { role, taskId: task.task_id, delivery });
      await this.wait(downMinutes);
      this.setState(role, "idle");
      return;
    }

    const plan = work(this.seed, agent, task.task_id, delivery);
    await this.wait(plan.minutes);
    await msg.ackAck();
    this.open.set(role, this.open.get(role)! - 1);
    this.event(`task.${plan.outcome}`, role, {
      task_id: task.task_id,
      task_type: task.type,
      usage: plan.usage,
      ...(plan.outcome === "failed" && { reason: "changes requested" }),
    });
    this.emit("finished", { role, taskId: task.task_id, outcome: plan.outcome });
    if (plan.outcome === "completed" && task.on_complete) {
      const next = chainedTask(this.seed, task, role, this.scale);
      await this.publishTask(CHAIN_TEMPLATES[task.on_complete.payload_template].role, next, false);
    }
    this.setState(role, "idle");
  }

  private async broadcastLoop(plan: Iterator<PlannedBroadcast>): Promise<void> {
    for (;;) {
      this.nextBroadcast ??= plan.next().value as PlannedBroadcast;
      const planned = this.nextBroadcast;
      await this.wait(planned.afterMinutes);
      const ack = await this.js.publish(
        `${this.scale.prefix}.org.broadcasts`,
        JSON.stringify({ ...planned.message, from: "ceo", ts: new Date().toISOString() }),
        { msgID: planned.message.broadcast_id },
      );
      this.nextBroadcast = undefined;
      this.emit("broadcast", { broadcastId: planned.message.broadcast_id, seq: ack.seq });
    }
  }

  private async broadcastReadLoop(agent: AgentSpec): Promise<void> {
    const consumer = await this.js.consumers.get(BROADCASTS_STREAM, broadcastConsumerName(agent.role));
    while (!this.stopping) {
      const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
      if (!msg) continue;
      let broadcastId = "";
      try {
        broadcastId = String(msg.json<{ broadcast_id?: unknown }>().broadcast_id ?? "");
      } catch {
        // Unreadable announcements are still acknowledged: the agent has seen them.
      }
      await this.wait(broadcastReadMinutes(this.seed, agent.role, broadcastId));
      await msg.ackAck();
      this.event("broadcast.acknowledged", agent.role, { broadcast_id: broadcastId });
      this.emit("broadcast-acked", { role: agent.role, broadcastId });
    }
  }
}
