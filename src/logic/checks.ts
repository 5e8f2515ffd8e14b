// `orgwatch check`: an organization's JetStream setup against the pitfalls the reference
// organization learned the hard way (ack waits shorter than a reasoning turn, no dead-letter path,
// no backpressure, ...). Pure: it reads what a poll saw and returns findings; the command and the
// daemon's findings source do the I/O. Check ids are a public vocabulary (JSON output, the
// `check` label of orgwatch_config_findings): never rename one.
import { formatDuration } from "../config/duration.js";
import { classifySubject, type Kind } from "./classify.js";
import { lagOf } from "./consumer-status.js";
import { subjectMatches } from "./subject-match.js";
import type { ConsumerState, StreamState } from "../model/jetstream.js";

export const FINDING_LEVELS = ["error", "warning", "info"] as const;
export type FindingLevel = (typeof FINDING_LEVELS)[number];

export const CHECK_IDS = [
  "ack_wait_too_short",
  "no_max_deliver",
  "no_deadletter_path",
  "no_stream_limits",
  "memory_storage",
  "broadcast_consumer_missing",
  "broadcast_ack_not_explicit",
  "role_without_consumer",
  "backpressure",
  "ack_sampling_off",
  "single_replica_in_cluster",
  "on_complete_target_unrouted",
  "backlog_outlives_max_age",
] as const;
export type CheckId = (typeof CHECK_IDS)[number];

export interface Finding {
  readonly check: CheckId;
  readonly level: FindingLevel;
  /** The stream concerned, "" when the finding is about a role only. */
  readonly stream: string;
  /** The consumer concerned, "" when none. */
  readonly consumer: string;
  /** The agent role concerned, "" when none. */
  readonly role: string;
  /** What is wrong, with the numbers. */
  readonly what: string;
  /** Why it matters. */
  readonly why: string;
  /** The exact change that fixes it. */
  readonly fix: string;
}

/** A consumer's acknowledgements as seen at one poll, for its observed ack rate. */
export interface AckSample {
  readonly atMs: number;
  /** Ack floor consumer sequence: deliveries acknowledged (or given up) so far. */
  readonly acked: number;
  readonly createdMs: number | undefined;
}

/** Observed acknowledgements per millisecond by consumer key (`stream/consumer`); absent = not observed. */
export type AckRates = ReadonlyMap<string, number>;

export interface CheckInput {
  readonly prefix: string;
  readonly streams: Iterable<StreamState>;
  readonly consumers: Iterable<ConsumerState>;
  /** Agents expected in the organization: configured roles ∪ roles with tasks ∪ roles heard from. */
  readonly roster: readonly string[];
  /** The longest an agent's task takes (`--expected-work`). */
  readonly expectedWorkMs: number;
  /** The longest a backlog may take to drain (`--check.drain-time`). */
  readonly maxDrainMs: number;
  /** The subject dead letters go to (`{prefix}.org.deadletter` unless configured). */
  readonly deadLetterSubject: string;
  /** Something routes max-deliveries advisories to the dead-letter subject (orgwatch itself, usually). */
  readonly deadLetterRouted: boolean;
  /** Observed ack rates; consumers without one are estimated at one task per expected work. */
  readonly ackRates?: AckRates;
  /** The on_complete targets of the latest tasks of each task stream. */
  readonly onCompleteTargets?: readonly OnCompleteTarget[];
  /** Now (epoch ms), for the age of the oldest waiting task. */
  readonly nowMs: number;
}

/** A task's on_complete.publish_to, as read from its stream. */
export interface OnCompleteTarget {
  readonly stream: string;
  readonly role: string;
  readonly taskId: string;
  readonly target: string;
}

/** Kinds whose messages are durable work: losing them on a restart loses work. */
const DURABLE_WORK: ReadonlySet<Kind> = new Set(["tasks", "inbox", "deadletter", "broadcasts"]);
/** Kinds an agent works through with acks that matter for redelivery. */
const WORK: ReadonlySet<Kind> = new Set(["tasks", "inbox"]);

export const LEVEL_RANK: Record<FindingLevel, number> = { error: 0, warning: 1, info: 2 };

/** The ack wait recommended for `expectedWorkMs` of work: half as long again (the reference: 30m for 20m). */
export function recommendedAckWaitMs(expectedWorkMs: number): number {
  const ms = expectedWorkMs * 1.5;
  // Round up to a whole minute (or second below one) so that the fix reads like a person wrote it.
  const unit = ms >= 60_000 ? 60_000 : 1000;
  return Math.ceil(ms / unit) * unit;
}

/** Roles that have a task stream. */
function knownRoles(streams: readonly StreamState[]): Set<string> {
  return new Set(streams.filter((s) => s.kind === "tasks" && s.role !== "").map((s) => s.role));
}

/** How long `lag` messages take at `ratePerMs`; Infinity at a rate of 0. */
function drainMs(lag: number, ratePerMs: number): number {
  return ratePerMs > 0 ? lag / ratePerMs : Infinity;
}

function where(c: ConsumerState): string {
  return `consumer ${c.name} on stream ${c.stream}`;
}

function agent(role: string): string {
  return role === "" ? "" : ` (agent ${role})`;
}

/** Consumers checked between two turns of the event loop (checkSteps). */
const CONSUMERS_PER_STEP = 1_000;

export function evaluateChecks(input: CheckInput): Finding[] {
  const steps = checkSteps(input);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * evaluateChecks step by step: the daemon re-evaluates after every poll, and at 10,000 consumers
 * the whole evaluation in one go held the event loop for 20–35 ms (scrapes and advisories waited).
 */
export function* checkSteps(input: CheckInput): Generator<void, Finding[], void> {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const streams = [...input.streams];
  const streamsByName = new Map(streams.map((s) => [s.name, s]));
  const consumers = [...input.consumers].filter((c) => c.durable);
  const work = formatDuration(input.expectedWorkMs);
  const ackWait = formatDuration(recommendedAckWaitMs(input.expectedWorkMs));

  // --- Consumers ---
  let checked = 0;
  for (const c of consumers) {
    if (++checked % CONSUMERS_PER_STEP === 0) yield;
    if (c.kind === "tasks" && c.ackWaitMs < input.expectedWorkMs) {
      add({
        check: "ack_wait_too_short",
        level: "error",
        stream: c.stream,
        consumer: c.name,
        role: c.role,
        what: `ack wait ${formatDuration(c.ackWaitMs)} is shorter than the expected work of ${work}${agent(c.role)}`,
        why:
          "a task still being reasoned on is redelivered when its ack wait runs out: duplicate work and " +
          "wasted tokens (the reference organization's most common cause of duplicate work)",
        fix: `nats consumer edit ${c.stream} ${c.name} --ack-wait ${ackWait}`,
      });
    }
    if (WORK.has(c.kind) && c.maxDeliver === -1) {
      add({
        check: "no_max_deliver",
        level: c.kind === "tasks" ? "error" : "warning",
        stream: c.stream,
        consumer: c.name,
        role: c.role,
        what: `${where(c)} has unlimited max-deliver${agent(c.role)}`,
        why:
          "a message that always fails is redelivered forever, costs work each time, and never reaches the " +
          "dead letters where someone would see it",
        fix: `nats consumer edit ${c.stream} ${c.name} --max-deliver 3`,
      });
    }
    if (c.kind === "broadcasts" && c.ackPolicy !== "explicit") {
      add({
        check: "broadcast_ack_not_explicit",
        level: "warning",
        stream: c.stream,
        consumer: c.name,
        role: c.role,
        what: `broadcast ${where(c)} acks "${c.ackPolicy}", not explicitly${agent(c.role)}`,
        why:
          "without an explicit ack per broadcast nobody can tell which agents took a policy change in " +
          "(the reference organization flags agents that do not ack within 5 minutes)",
        fix:
          `the ack policy cannot be edited: nats consumer rm ${c.stream} ${c.name} && ` +
          `nats consumer add ${c.stream} ${c.name} --ack explicit --deliver all --pull`,
      });
    }
    if (c.kind === "tasks" && c.sampleFrequency === "") {
      add({
        check: "ack_sampling_off",
        level: "info",
        stream: c.stream,
        consumer: c.name,
        role: c.role,
        what: `${where(c)} does not sample acks${agent(c.role)}`,
        why:
          "processing times (delivery → ack) and chain latencies are then only known to a poll's " +
          "precision instead of exactly",
        fix: `nats consumer edit ${c.stream} ${c.name} --sample 100`,
      });
    }
    const lag = lagOf(c);
    if (c.kind === "tasks" && lag > 0) {
      const observed = input.ackRates?.get(`${c.stream}/${c.name}`);
      const rate = observed ?? 1 / input.expectedWorkMs;
      const drain = drainMs(lag, rate);
      if (drain > input.maxDrainMs) {
        const pace =
          observed !== undefined
            ? `at the observed ${formatRate(observed)}`
            : `at one task per ${work} (no ack rate observed; agents sharing the consumer would be faster)`;
        add({
          check: "backpressure",
          level: "warning",
          stream: c.stream,
          consumer: c.name,
          role: c.role,
          what:
            `${lag} tasks wait for ${where(c)}${agent(c.role)}: ` +
            `${drain === Infinity ? "never drained" : `about ${formatDuration(roundMinutes(drain))} to drain`} ` +
            `${pace}, over the ${formatDuration(input.maxDrainMs)} allowed`,
          why:
            "tasks published faster than the agent completes them wait for hours and miss their SLAs " +
            "(the reference: 50 tasks at one per 30 minutes is a 25-hour backlog)",
          fix:
            `add agents sharing ${c.name} (pull from the same durable consumer, or --deliver-group), ` +
            `or admission control: publishers ask orgwatch (nats req ${input.prefix}.orgwatch.admission ` +
            `'{"role":"${c.role}","tasks":1}') before publishing`,
        });
      }
      // The stream removes its oldest tasks before the agent reaches the last one.
      const stream = streamsByName.get(c.stream);
      const oldestAgeMs = c.oldestUnackedMs === undefined ? 0 : Math.max(0, input.nowMs - c.oldestUnackedMs);
      if (stream && stream.maxAgeMs > 0 && drain !== Infinity && drain + oldestAgeMs > stream.maxAgeMs) {
        add({
          check: "backlog_outlives_max_age",
          level: "error",
          stream: c.stream,
          consumer: c.name,
          role: c.role,
          what:
            `${lag} tasks wait for ${where(c)}${agent(c.role)}: about ${formatDuration(roundMinutes(drain))} ` +
            `to drain, the oldest ${formatDuration(roundMinutes(oldestAgeMs))} old, past the stream's max age ` +
            `of ${formatDuration(stream.maxAgeMs)}`,
          why: "the stream removes the oldest tasks at their max age before the agent reaches them: they are lost",
          fix:
            `nats stream edit ${c.stream} --max-age ${formatDuration(roundMinutes(2 * (drain + oldestAgeMs)))}, ` +
            `and add agents sharing ${c.name} so the backlog drains`,
        });
      }
    }
  }

  // --- Streams ---
  const deadLetterStream = streams.find((s) =>
    s.subjects.some((subject) => subjectMatches(subject, input.deadLetterSubject)),
  );
  for (const s of streams) {
    if (WORK.has(s.kind) && s.maxAgeMs === 0 && s.maxMsgs === -1 && s.maxBytes === -1) {
      add({
        check: "no_stream_limits",
        level: "warning",
        stream: s.name,
        consumer: "",
        role: s.role,
        what: `${s.kind} stream ${s.name} has no max-age, max-msgs or max-bytes${agent(s.role)}`,
        why:
          "unprocessed messages pile up without bound until the server's storage is full; a task " +
          "nobody handled in 3 days has been escalated by the SLA system anyway",
        fix: `nats stream edit ${s.name} --max-age 72h`,
      });
    }
    if (DURABLE_WORK.has(s.kind) && s.storage === "memory") {
      const file = s.kind === "broadcasts" ? "warning" : "error";
      add({
        check: "memory_storage",
        level: file,
        stream: s.name,
        consumer: "",
        role: s.role,
        what: `${s.kind} stream ${s.name} uses memory storage${agent(s.role)}`,
        why: "everything in it, and its consumers' progress, is lost when the NATS server restarts",
        fix:
          `storage cannot be edited: create a file-storage stream and move the work to it, e.g. ` +
          `nats stream add ${s.name}_FILE --subjects '${s.subjects.join(",")}' --storage file --max-age 72h ` +
          `(after draining ${s.name} and removing it, or with ${s.name}_FILE sourcing it)`,
      });
    }
    if (DURABLE_WORK.has(s.kind) && s.cluster !== undefined && s.replicas < 3) {
      add({
        check: "single_replica_in_cluster",
        level: "warning",
        stream: s.name,
        consumer: "",
        role: s.role,
        what: `${s.kind} stream ${s.name} has ${s.replicas} replica${s.replicas === 1 ? "" : "s"} in cluster ${s.cluster}${agent(s.role)}`,
        why: "losing the one node that holds it makes the stream and its consumers unavailable until that node returns",
        fix: `nats stream edit ${s.name} --replicas 3`,
      });
    }
  }

  // --- Dead-letter path ---
  const bounded = consumers.filter((c) => WORK.has(c.kind) && c.maxDeliver > 0);
  if (bounded.length > 0 && deadLetterStream === undefined && !input.deadLetterRouted) {
    const roles = [...new Set(bounded.map((c) => c.role))].sort();
    for (const role of roles) {
      const names = bounded.filter((c) => c.role === role).map((c) => `${c.stream}/${c.name}`);
      add({
        check: "no_deadletter_path",
        level: "warning",
        stream: "",
        consumer: "",
        role,
        what:
          `messages that exhaust max-deliver on ${names.join(", ")} go nowhere: no stream holds ` +
          `${input.deadLetterSubject} and nothing routes dead letters to it`,
        why:
          "a task that failed its last delivery disappears silently from the agent's queue; the reference " +
          "organization routes them to the dead-letter subject and alerts on every one",
        fix:
          `nats stream add ORG_DEADLETTER --subjects '${input.deadLetterSubject}' --storage file --max-age 720h, ` +
          `and run the orgwatch daemon (it routes max-deliveries advisories there; --deadletter.route=true)`,
      });
    }
  }

  // --- Roles ---
  const broadcastStream = streams.find((s) => s.kind === "broadcasts");
  const broadcastConsumers = consumers.filter((c) => c.kind === "broadcasts");
  const taskConsumerRoles = new Set(consumers.filter((c) => c.kind === "tasks").map((c) => c.role));
  const multiRoleTaskStream = streams.find((s) => s.kind === "tasks" && s.role === "");
  for (const s of streams) {
    if (s.kind !== "tasks" || s.role === "" || taskConsumerRoles.has(s.role)) continue;
    add({
      check: "role_without_consumer",
      level: "error",
      stream: s.name,
      consumer: "",
      role: s.role,
      what: `task stream ${s.name} of agent ${s.role} has no durable consumer (${s.messages} messages waiting)`,
      why: "tasks published to the agent are stored but nobody works on them, and no lag is ever reported",
      fix:
        `nats consumer add ${s.name} ${s.role}-worker --ack explicit --deliver all --max-deliver 3 ` +
        `--ack-wait ${ackWait} --pull`,
    });
  }
  // --- on_complete chains whose next step has nowhere to go ---
  const reported = new Set<string>();
  /** Whether some stream stores a target subject, by subject (many tasks chain to the same few). */
  const stored = new Map<string, boolean>();
  for (const t of input.onCompleteTargets ?? []) {
    const key = `${t.stream}\u0000${t.target}`;
    if (reported.has(key)) continue;
    let isStored = stored.get(t.target);
    if (isStored === undefined) {
      isStored = streams.some((s) => s.subjects.some((f) => subjectMatches(f, t.target)));
      stored.set(t.target, isStored);
    }
    if (isStored) continue;
    reported.add(key);
    const { kind, role } = classifySubject(input.prefix, t.target);
    const stream =
      role !== "" ? `AGENT_${role.toUpperCase()}_${kind === "inbox" ? "INBOX" : "TASKS"}` : "STREAM";
    add({
      check: "on_complete_target_unrouted",
      level: "error",
      stream: t.stream,
      consumer: "",
      role: t.role,
      what: `task ${t.taskId} of stream ${t.stream}${agent(t.role)} chains to ${t.target}, which no stream stores`,
      why:
        "when the task completes its next step is published there and NATS drops it: the chain breaks " +
        'silently (orgwatch_chain_links_broken_total{reason="unrouted_target"})',
      fix:
        role !== "" && !knownRoles(streams).has(role)
          ? `fix the task's on_complete.publish_to (no agent "${role}" has a stream), or: nats stream add ${stream} --subjects ${t.target} --retention limits --max-age 72h --storage file`
          : `nats stream add ${stream} --subjects ${t.target} --retention limits --max-age 72h --storage file`,
    });
  }

  const rolesWithTaskStream = new Set(streams.filter((s) => s.kind === "tasks").map((s) => s.role));
  if (multiRoleTaskStream) {
    for (const role of input.roster) {
      if (taskConsumerRoles.has(role) || rolesWithTaskStream.has(role)) continue;
      add({
        check: "role_without_consumer",
        level: "error",
        stream: multiRoleTaskStream.name,
        consumer: "",
        role,
        what: `agent ${role} has no durable consumer for ${input.prefix}.agents.${role}.tasks on ${multiRoleTaskStream.name}`,
        why: "tasks published to the agent are stored but nobody works on them, and no lag is ever reported",
        fix:
          `nats consumer add ${multiRoleTaskStream.name} ${role}-worker --filter ${input.prefix}.agents.${role}.tasks ` +
          `--ack explicit --deliver all --max-deliver 3 --ack-wait ${ackWait} --pull`,
      });
    }
  }
  if (broadcastStream) {
    const covered = new Set(broadcastConsumers.map((c) => c.role));
    for (const role of input.roster) {
      if (covered.has(role)) continue;
      add({
        check: "broadcast_consumer_missing",
        level: "warning",
        stream: broadcastStream.name,
        consumer: "",
        role,
        what: `agent ${role} has no consumer on the broadcasts stream ${broadcastStream.name}`,
        why: "the agent never receives org-wide announcements such as policy changes",
        fix:
          `nats consumer add ${broadcastStream.name} ${role}-broadcasts --ack explicit --deliver all ` +
          `--ack-wait 5m --pull`,
      });
    }
  }

  return sortFindings(findings);
}

/** Errors first, then by check, stream, consumer, role: the same setup always prints the same way. */
export function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort(
    (a, b) =>
      LEVEL_RANK[a.level] - LEVEL_RANK[b.level] ||
      CHECK_IDS.indexOf(a.check) - CHECK_IDS.indexOf(b.check) ||
      a.stream.localeCompare(b.stream) ||
      a.consumer.localeCompare(b.consumer) ||
      a.role.localeCompare(b.role),
  );
}

/** `orgwatch check`'s exit code: 2 on any error, 1 on warnings when strict, else 0. */
export function exitCodeFor(findings: readonly Finding[], strict: boolean): 0 | 1 | 2 {
  if (findings.some((f) => f.level === "error")) return 2;
  if (strict && findings.some((f) => f.level === "warning")) return 1;
  return 0;
}

function roundMinutes(ms: number): number {
  return ms >= 60_000 ? Math.round(ms / 60_000) * 60_000 : Math.round(ms / 1000) * 1000;
}

function formatRate(perMs: number): string {
  const perHour = perMs * 3_600_000;
  return perHour >= 1 ? `${perHour.toFixed(1)} tasks/hour` : `${(perHour * 24).toFixed(2)} tasks/day`;
}

/**
 * Ack rates from two samples per consumer. A consumer re-created between them (another creation
 * time, or an ack floor that went back) or that acked nothing has no observed rate: it is estimated.
 */
export function ackRate(from: AckSample, to: AckSample): number | undefined {
  if (from.createdMs !== to.createdMs || to.acked < from.acked || to.atMs <= from.atMs) return undefined;
  const acked = to.acked - from.acked;
  return acked > 0 ? acked / (to.atMs - from.atMs) : undefined;
}

export function ackSampleOf(c: ConsumerState, atMs: number): AckSample {
  return { atMs, acked: c.ackFloorConsumerSequence, createdMs: c.createdMs };
}
