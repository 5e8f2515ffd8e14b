// What the simulated organization does, decided ahead of time from the seed: who is in it, what
// the CEO assigns to whom and when, how long each task takes, which tasks are poison. Pure: the
// runtime (simulator.ts) only carries these decisions out over NATS.
import { seededRandom, type Random } from "./random.js";

/** The reference's agents reason for up to 20 minutes; everything below is in simulated minutes. */
export const REFERENCE_TURN_MINUTES = 20;
export const ACK_WAIT_MINUTES = 30;
export const BROADCAST_ACK_WAIT_MINUTES = 5;
export const MAX_DELIVER = 3;

export type Behaviour =
  /** Assigns the work, and approves releases at the end of each chain. */
  | "ceo"
  /** Keeps up with its work. */
  | "steady"
  /** Reviews what the CTO built; rejects some reviews (task.failed). */
  | "reviewer"
  /** Gets work faster than it can do it: its lag grows past 5. */
  | "overloaded"
  /** Crashes on poison tasks, never acking them, until they reach the dead letters. */
  | "flaky"
  /** Never reads the broadcasts stream. */
  | "ignores-broadcasts";

export interface Sla {
  readonly ackWithinMinutes: number;
  readonly completeWithinMinutes: number;
}

export interface Assignment {
  readonly type: string;
  readonly titles: readonly string[];
  /** Simulated minutes between two assignments to this agent. */
  readonly everyMinutes: readonly [number, number];
  readonly sla: Sla;
  /** Tasks assigned at once when the organization starts. */
  readonly burst?: number;
  /** The CEO holds further assignments while this many of the agent's tasks are open. */
  readonly maxOpen?: number;
  /** The on_complete chain this assignment starts. */
  readonly onComplete?: ChainTemplate;
  /** Probability that a task after the first is poison (the first one always is). */
  readonly poison?: number;
}

export interface AgentSpec {
  readonly role: string;
  readonly behaviour: Behaviour;
  /** What the CEO assigns to this agent; absent for agents that only receive chained work. */
  readonly assignment?: Assignment;
  readonly workMinutes: readonly [number, number];
}

export type ChainTemplate = "security_review" | "release_approval";

interface TemplateSpec {
  readonly role: string;
  readonly title: (parentTitle: string) => string;
  readonly sla: Sla;
  readonly next?: ChainTemplate;
}

/** The chain the CEO starts on every CTO task: CTO implements → Security reviews → CEO approves. */
export const CHAIN_TEMPLATES: Record<ChainTemplate, TemplateSpec> = {
  security_review: {
    role: "security",
    title: (parent) => `Security review: ${parent}`,
    sla: { ackWithinMinutes: 30, completeWithinMinutes: 60 },
    next: "release_approval",
  },
  release_approval: {
    role: "ceo",
    title: (parent) => `Approve release: ${parent.replace(/^Security review: /, "")}`,
    sla: { ackWithinMinutes: 30, completeWithinMinutes: 45 },
  },
};

// Work stays well under the 30-minute ack wait, as in the reference: a redelivery in the demo means
// a crash, never a slow turn (the margin also absorbs timer lag on a loaded machine at high pace).
const STORY: readonly AgentSpec[] = [
  { role: "ceo", behaviour: "ceo", workMinutes: [1, 3] },
  {
    role: "cto",
    behaviour: "steady",
    workMinutes: [8, 20],
    assignment: {
      type: "feature_implementation",
      titles: [
        "Add rate limiting to API gateway",
        "Migrate billing to the new ledger",
        "Cache tenant configuration",
        "Split the reporting service",
        "Add audit log export",
        "Retry failed webhook deliveries",
      ],
      everyMinutes: [35, 50],
      sla: { ackWithinMinutes: 30, completeWithinMinutes: 60 },
      burst: 1,
      onComplete: "security_review",
    },
  },
  { role: "security", behaviour: "reviewer", workMinutes: [4, 12] },
  {
    role: "marketing",
    behaviour: "overloaded",
    workMinutes: [16, 22],
    assignment: {
      type: "campaign_brief",
      titles: ["Launch post for rate limiting", "Q3 newsletter", "Case study draft", "Webinar landing page"],
      everyMinutes: [8, 12],
      sla: { ackWithinMinutes: 15, completeWithinMinutes: 120 },
      burst: 4,
      maxOpen: 15,
    },
  },
  {
    role: "devops",
    behaviour: "flaky",
    workMinutes: [5, 14],
    assignment: {
      type: "infrastructure_change",
      titles: ["Rotate TLS certificates", "Resize the build cluster", "Upgrade NATS", "Patch base images"],
      everyMinutes: [12, 18],
      sla: { ackWithinMinutes: 30, completeWithinMinutes: 60 },
      burst: 1,
      poison: 0.25,
    },
  },
  {
    role: "finance",
    behaviour: "ignores-broadcasts",
    workMinutes: [8, 18],
    assignment: {
      type: "budget_review",
      titles: ["Review cloud spend", "Forecast token costs", "Reconcile vendor invoices"],
      everyMinutes: [40, 60],
      sla: { ackWithinMinutes: 30, completeWithinMinutes: 120 },
    },
  },
];

const EXTRA_ROLES = ["research", "support", "legal", "sales", "data", "design"];

export const MIN_AGENTS = 3;
export const STORY_AGENTS = STORY.length;

/**
 * The story's agents with nothing going wrong: marketing gets work no faster than it does it,
 * devops gets no poison tasks, finance reads the broadcasts. A healthy organization, for the test
 * that a healthy day raises no alert.
 */
function healthy(agent: AgentSpec): AgentSpec {
  if (
    agent.behaviour !== "overloaded" &&
    agent.behaviour !== "flaky" &&
    agent.behaviour !== "ignores-broadcasts"
  )
    return agent;
  const { type, titles, sla } = agent.assignment!;
  const workMax = agent.workMinutes[1];
  return {
    ...agent,
    behaviour: "steady",
    // Work arrives less often than the longest turn takes; no burst, no poison.
    assignment: { type, titles, sla, everyMinutes: [workMax + 10, workMax + 25] },
  };
}

/**
 * The first `size` agents: the story's six in order, then steady agents doing analysis. With
 * `healthy`, the story's troubled agents behave.
 */
export function roster(size: number, { healthy: allHealthy = false } = {}): AgentSpec[] {
  if (!Number.isInteger(size) || size < MIN_AGENTS) throw new RangeError(`at least ${MIN_AGENTS} agents`);
  const agents = STORY.slice(0, size).map((a) => (allHealthy ? healthy(a) : a));
  for (let i = agents.length; i < size; i++) {
    const extra = i - STORY.length;
    agents.push({
      role: EXTRA_ROLES[extra] ?? `agent${i + 1}`,
      behaviour: "steady",
      workMinutes: [10, 20],
      assignment: {
        type: "analysis",
        titles: ["Summarise customer feedback", "Analyse churn", "Draft a proposal", "Compare vendors"],
        everyMinutes: [45, 75],
        sla: { ackWithinMinutes: 30, completeWithinMinutes: 90 },
      },
    });
  }
  return agents;
}

/** A task as agents publish it (DESIGN.md §1), with the SLA already scaled to real time. */
export interface TaskMessage {
  readonly task_id: string;
  readonly type: string;
  readonly title: string;
  readonly assigned_by: string;
  readonly sla: { readonly ack_within_seconds: number; readonly complete_within_minutes: number };
  readonly on_complete?: { readonly publish_to: string; readonly payload_template: ChainTemplate };
  readonly parent_task_id?: string;
}

export interface PlannedTask {
  /** Simulated minutes to wait before assigning it. */
  readonly afterMinutes: number;
  readonly role: string;
  readonly task: TaskMessage;
  /**
   * The W3C trace context the CEO (an instrumented publisher) sends with the assignment as a
   * `traceparent` header, so the chain joins the CEO's trace; chained tasks link by parent_task_id.
   */
  readonly traceparent: string;
  readonly poison: boolean;
}

/** Everything that turns simulated time into the real time written into messages and configs. */
export interface Scale {
  readonly prefix: string;
  readonly pace: number;
}

export function tasksSubject(prefix: string, role: string): string {
  return `${prefix}.agents.${role}.tasks`;
}

/**
 * SLAs are promises in real time, so they shrink with the pace like everything else. Seconds stay
 * whole (at least 1); minutes keep three decimals, as a number (60 at pace 1, 0.1 at pace 600).
 */
export function scaledSla(sla: Sla, pace: number): TaskMessage["sla"] {
  return {
    ack_within_seconds: Math.max(1, Math.round((sla.ackWithinMinutes * 60) / pace)),
    complete_within_minutes: Math.max(0.001, Math.round((sla.completeWithinMinutes * 1000) / pace) / 1000),
  };
}

function taskId(random: Random): string {
  return `task-${random.hex(12)}`;
}

/**
 * The CEO's assignments to one agent, in order. Each agent has its own generator, so the tasks in
 * each agent's stream are the same for a seed whatever the timing.
 */
export function* assignments(seed: number, agent: AgentSpec, scale: Scale): Generator<PlannedTask> {
  const plan = agent.assignment;
  if (!plan) return;
  const random = seededRandom(seed, "assign", agent.role);
  for (let i = 0; ; i++) {
    const afterMinutes = i < (plan.burst ?? 0) ? 0 : random.int(plan.everyMinutes[0], plan.everyMinutes[1]);
    const id = taskId(random);
    const title = random.pick(plan.titles);
    const poison = plan.poison !== undefined && (i === 0 || random.chance(plan.poison));
    const traceparent = `00-${random.hex(32)}-${random.hex(16)}-01`;
    const task: TaskMessage = {
      task_id: id,
      type: plan.type,
      title,
      assigned_by: "ceo",
      sla: scaledSla(plan.sla, scale.pace),
      ...(plan.onComplete && {
        on_complete: {
          publish_to: tasksSubject(scale.prefix, CHAIN_TEMPLATES[plan.onComplete].role),
          payload_template: plan.onComplete,
        },
      }),
    };
    yield { afterMinutes, role: agent.role, task, traceparent, poison };
  }
}

/** The task an agent publishes to `on_complete.publish_to` when it completes `parent`. */
export function chainedTask(seed: number, parent: TaskMessage, actor: string, scale: Scale): TaskMessage {
  const template = parent.on_complete!.payload_template;
  const spec = CHAIN_TEMPLATES[template];
  const random = seededRandom(seed, "chain", parent.task_id, template);
  return {
    task_id: taskId(random),
    type: template,
    title: spec.title(parent.title),
    assigned_by: actor,
    sla: scaledSla(spec.sla, scale.pace),
    parent_task_id: parent.task_id,
    ...(spec.next && {
      on_complete: {
        publish_to: tasksSubject(scale.prefix, CHAIN_TEMPLATES[spec.next].role),
        payload_template: spec.next,
      },
    }),
  };
}

export interface WorkPlan {
  readonly minutes: number;
  readonly outcome: "completed" | "failed";
  /** What the reasoning cost, reported on the completion event (the OTel GenAI names' values). */
  readonly usage: { input_tokens: number; output_tokens: number; cost_usd: number; model: string };
}

/** A demo model's price: $3 per million input tokens, $15 per million output tokens. */
const PRICE_PER_TOKEN = { input: 3e-6, output: 15e-6 };

/** How one delivery of one task goes: keyed by the task and the delivery, not by arrival order. */
export function work(seed: number, agent: AgentSpec, taskIdValue: string, delivery: number): WorkPlan {
  const random = seededRandom(seed, "work", agent.role, taskIdValue, delivery);
  const minutes = random.int(agent.workMinutes[0], agent.workMinutes[1]);
  const outcome = agent.behaviour === "reviewer" && random.chance(0.15) ? "failed" : "completed";
  // About 2,000 input and 400 output tokens a minute of reasoning.
  const input = minutes * random.int(1500, 2500);
  const output = minutes * random.int(300, 500);
  const cost = Math.round((input * PRICE_PER_TOKEN.input + output * PRICE_PER_TOKEN.output) * 1e6) / 1e6;
  return {
    minutes,
    outcome,
    usage: { input_tokens: input, output_tokens: output, cost_usd: cost, model: "demo-reasoner-1" },
  };
}

/**
 * What the flaky agent does with a poison task at each delivery. It crashes mid-reasoning (no ack:
 * JetStream redelivers after the ack wait); handed the task again, it recognises it and gives it
 * back at once (a nak, delayed by its restart time); the third time it crashes for good, and the
 * task, out of deliveries, is orgwatch's to route to the dead letters.
 */
export function poisonReaction(delivery: number): "crash" | "nak" {
  return delivery === 2 ? "nak" : "crash";
}

/** How long the flaky agent is down after crashing on a poison task (and the delay of its nak). */
export function restartMinutes(seed: number, taskIdValue: string, delivery: number): number {
  return seededRandom(seed, "restart", taskIdValue, delivery).int(2, 4);
}

export interface PlannedBroadcast {
  readonly afterMinutes: number;
  readonly message: { readonly broadcast_id: string; readonly type: "policy_update"; readonly title: string };
}

const BROADCAST_TITLES = [
  "New code review policy: two approvals for production",
  "Token budget cut by 10% this week",
  "Freeze on infrastructure changes during the audit",
  "Incident review every Friday",
];

/** The CEO's org-wide announcements: the first soon after start, then every two hours. */
export function* broadcasts(seed: number): Generator<PlannedBroadcast> {
  const random = seededRandom(seed, "broadcasts");
  for (let i = 1; ; i++) {
    yield {
      afterMinutes: i === 1 ? 5 : 120,
      message: {
        broadcast_id: `bc-${String(i).padStart(4, "0")}`,
        type: "policy_update",
        title: random.pick(BROADCAST_TITLES),
      },
    };
  }
}

/** How long an agent takes to read and acknowledge a broadcast (under the 5-minute window). */
export function broadcastReadMinutes(seed: number, role: string, broadcastId: string): number {
  return seededRandom(seed, "read", role, broadcastId).int(1, 3);
}
