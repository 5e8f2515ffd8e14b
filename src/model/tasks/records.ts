// What orgwatch knows of a task, and the vocabulary the task model speaks: records (plain data,
// persisted as JSON by sources/chain-store.ts), the signals sources report, the events exporters hear.
import type { LinkKind } from "../../logic/chain-link.js";
import type { SlaKind } from "../../logic/sla.js";
import type { TaskMessage, TaskSla, TraceParent } from "../../logic/task-message.js";
import type { RemovalReason } from "../../logic/removal.js";
import type { Usage } from "../../logic/event-message.js";

export interface CompletionSignal {
  readonly taskId: string;
  readonly outcome: "completed" | "failed";
  /** Tokens and cost the agent reported for the work. */
  readonly usage?: Usage;
  /** Epoch ms (the event's ts when given, else arrival). */
  readonly atMs: number;
  readonly role?: string;
}

export interface StreamMessageRef {
  readonly stream: string;
  readonly streamSequence: number;
  readonly consumer: string;
  /** How many times it was delivered (when known). */
  readonly deliveries?: number;
  readonly atMs: number;
}

/**
 * What became of a signal about a stream message: applied to its task; waiting for the task to be
 * read (kept in memory only: a source that can have it delivered again should not acknowledge it
 * yet); or ignored (not a task orgwatch traces, or one it has forgotten).
 */
export type SignalOutcome = "applied" | "waiting" | "ignored";

export type TaskOutcome = "completed" | "failed" | "dead_letter" | "lost" | "timeout";
export const TASK_OUTCOMES: readonly TaskOutcome[] = [
  "completed",
  "failed",
  "dead_letter",
  "lost",
  "timeout",
];

export type TaskEventName =
  "delivery" | "redelivery" | "nak" | "dead_letter" | "lost" | "completed" | "failed";

export interface TaskEvent {
  readonly name: TaskEventName;
  readonly atMs: number;
  /** The delivery this event is about (1 = first delivery), when known. */
  readonly delivery?: number;
  /** The consumer group that got the delivery (see consumerGroupOf). */
  readonly consumer?: string;
  /** Why a `lost` task left its stream. */
  readonly reason?: RemovalReason;
}

/** The ids a task's span is exported with. */
export interface SpanIds {
  readonly traceId: string;
  readonly spanId: string;
  /** The parent span: the parent task's, or the publisher's from `traceparent`; none for a root. */
  readonly parentSpanId: string | undefined;
  /** The first task of the chain orgwatch knows of. */
  readonly rootTaskId: string;
  /** 0 for the first task of the chain. */
  readonly depth: number;
  /** The `traceparent` sampled flag the chain joined; undefined when the chain started here. */
  readonly parentSampled: boolean | undefined;
}

/** What orgwatch knows of one task. Plain data: persisted as JSON (sources/chain-store.ts). */
export interface TaskRecord {
  readonly taskId: string;
  readonly subject: string;
  readonly role: string;
  readonly type: string;
  readonly stream: string;
  readonly streamSequence: number;
  /** The message's stored time in the stream. */
  readonly publishedMs: number;
  readonly sla: TaskSla;
  readonly onCompletePublishTo: string | undefined;
  readonly parentTaskId: string | undefined;
  readonly traceparent: TraceParent | undefined;
  /** The consumer group it was first delivered to (see consumerGroupOf). */
  consumer: string | undefined;
  firstDeliveryMs: number | undefined;
  /** Highest delivery count known. */
  deliveries: number;
  events: TaskEvent[];
  doneMs: number | undefined;
  outcome: TaskOutcome | undefined;
  /** Tokens and cost reported for it (summed over its completion events). */
  usage?: Usage;
  /** Why it left its stream unacknowledged (outcome `lost`). */
  lostReason?: RemovalReason;
  /** Its on_complete next step broke (counted once): see logic/removal.ts' BrokenLinkReason. */
  brokenLink?: "unrouted_target" | "next_missing";
  /** How it is linked to its parent; undefined for a chain's first task. */
  link: LinkKind | undefined;
  inferredParentId: string | undefined;
  /** The link is settled: explicit, inferred, or known to be none. */
  linkDecided: boolean;
  /** A task linked to it arrived on its on_complete subject. */
  followUpKnown: boolean;
  /** An ambiguous inference counted it (its follow-up is one of the tasks that met it). */
  followUpClaimed?: boolean;
  /** Frozen when its span (or a descendant's) is exported. */
  ids: SpanIds | undefined;
  exported: boolean;
  /**
   * The trace exporter confirmed its span was sent (false: exported but not confirmed yet, so a
   * restarted orgwatch sends it again, same ids). Absent in records saved by older versions: sent.
   */
  spanSent?: boolean;
  slaBreached: SlaKind[];
  /** Chain-end evaluation done for this task. */
  chainChecked: boolean;
  /** Set on a chain's first task when the chain's duration and steps were observed. */
  chainClosed: boolean;
}

export interface ObservedTask {
  readonly message: TaskMessage;
  readonly traceparent: TraceParent | undefined;
  readonly subject: string;
  readonly role: string;
  readonly stream: string;
  readonly streamSequence: number;
  readonly storedMs: number;
}

export interface ChainUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
}

export interface ChainSummary {
  readonly rootTaskId: string;
  readonly lastTaskId: string;
  readonly traceId: string;
  /** The first task's publication and the last one's end. */
  readonly startMs: number;
  readonly endMs: number;
  readonly durationSeconds: number;
  readonly steps: number;
  /** The sampled flag of the traceparent the chain joined, if it joined one. */
  readonly parentSampled: boolean | undefined;
  /** What its tasks reported, when any did (summed). */
  readonly usage?: ChainUsage;
  /** The lease holder closed it first (its chain span sent): a replica closing it after does not send it. */
  readonly closedByHolder?: boolean;
}

export interface TaskEvents {
  published: [task: TaskRecord];
  /** First delivery seen: published → first delivery. `traceId` as known at that moment. */
  delivered: [task: TaskRecord, queueSeconds: number, traceId: string];
  slaBreach: [task: TaskRecord, sla: SlaKind];
  /** The task ended and its span ids are frozen: export it. */
  finished: [task: TaskRecord];
  /**
   * Restored at start, or held by a replica that took the lease over: exported by an earlier
   * orgwatch whose span may not have been sent. Send it again.
   */
  resend: [task: TaskRecord];
  /** Its span was sent (saved at once: the other replica of a pair must not send it again). */
  spanSent: [task: TaskRecord];
  chainFinished: [chain: ChainSummary];
  /** A completed task's on_complete next step broke: its target is stored by no stream, or it never came. */
  linkBroken: [task: TaskRecord, reason: "unrouted_target" | "next_missing"];
}

export interface TasksSettings {
  readonly inferWindowMs: number;
  readonly taskTimeoutMs: number;
  /** Tasks kept in memory at most; the oldest ended ones go first. */
  readonly maxTasks: number;
  /** Ended tasks older than this (since published) are forgotten. */
  readonly retentionMs: number;
  /** A completed task's on_complete next step not seen within this is a broken link (next_missing). */
  readonly nextWindowMs: number;
}

/** Signals about tasks not seen yet (the observer may lag the event or the advisory). */
export const MAX_PENDING_SIGNALS = 10_000;
/** Span events kept per task (a task redelivered without end must not grow without bound). */
export const MAX_EVENTS = 128;
/** Ancestor walks stop here: a parent_task_id cycle must not hang the daemon. */
export const MAX_DEPTH = 1000;

/** How far the observer's reader of one task stream has read. */
export interface ReadProgress {
  /** Stored time of the last message read. */
  throughMs: number;
  /** Nothing was left to read after it (the stream's end at that moment). */
  atEnd: boolean;
  /** When it was read (this process's clock). */
  readAtMs: number;
}

export type PendingRefSignal = { kind: "ack" | "nak" | "dead_letter"; ref: StreamMessageRef };

export function refKey(stream: string, seq: number): string {
  return `${stream}\u0000${seq}`;
}
