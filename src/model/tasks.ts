// Tasks and on_complete chains: every task seen on a tasks subject, its lifecycle, its links.
// The task observer (sources/task-observer.ts) reports each task message; the poll's consumer
// states (deliveries, ack floors) arrive through model.jetstream; other sources report what they
// learn about a task through recordCompletionSignal (org events), recordAck / recordNak /
// recordDeadLetter (advisories). This model decides what it means for the task, its span and its
// chain, and emits what the exporters need (metrics, spans) as events.
//
// Lifecycle: published → first delivery → redeliveries / naks → ended: completed (ack floor passing
// its sequence, a sampled ack, a task.completed event), failed (task.failed event), dead-lettered,
// or timed out (still open after chains.task-timeout). A task's span is exported once, when it ends
// and its link is decided; its ids are derived from task ids (logic/task-trace.ts) and frozen then.
import { EventEmitter } from "node:events";
import { inferParent, type InferenceCandidate, type LinkKind } from "../logic/chain-link.js";
import { isOverdue, isSlaBreached, SLA_KINDS, type SlaKind } from "../logic/sla.js";
import { subjectMatches } from "../logic/subject-match.js";
import type { TaskMessage, TaskSla, TraceParent } from "../logic/task-message.js";
import { chainTraceId, taskSpanId } from "../logic/task-trace.js";
import {
  consumerGroupOf,
  consumerKey,
  type ConsumerState,
  type JetStreamModel,
  type PollResult,
} from "./jetstream.js";

export interface CompletionSignal {
  readonly taskId: string;
  readonly outcome: "completed" | "failed";
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

export type TaskOutcome = "completed" | "failed" | "dead_letter" | "timeout";
export const TASK_OUTCOMES: readonly TaskOutcome[] = ["completed", "failed", "dead_letter", "timeout"];

export type TaskEventName = "delivery" | "redelivery" | "nak" | "dead_letter" | "completed" | "failed";

export interface TaskEvent {
  readonly name: TaskEventName;
  readonly atMs: number;
  /** The delivery this event is about (1 = first delivery), when known. */
  readonly delivery?: number;
  /** The consumer group that got the delivery (see consumerGroupOf). */
  readonly consumer?: string;
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

export interface ChainSummary {
  readonly rootTaskId: string;
  readonly lastTaskId: string;
  readonly traceId: string;
  readonly durationSeconds: number;
  readonly steps: number;
}

interface TaskEvents {
  published: [task: TaskRecord];
  /** First delivery seen: published → first delivery. `traceId` as known at that moment. */
  delivered: [task: TaskRecord, queueSeconds: number, traceId: string];
  slaBreach: [task: TaskRecord, sla: SlaKind];
  /** The task ended and its span ids are frozen: export it. */
  finished: [task: TaskRecord];
  /** Restored at start: exported by an earlier orgwatch whose span may not have been sent. Send it again. */
  resend: [task: TaskRecord];
  chainFinished: [chain: ChainSummary];
}

export interface TasksSettings {
  readonly inferWindowMs: number;
  readonly taskTimeoutMs: number;
  /** Tasks kept in memory at most; the oldest ended ones go first. */
  readonly maxTasks: number;
  /** Ended tasks older than this (since published) are forgotten. */
  readonly retentionMs: number;
}

/** Signals about tasks not seen yet (the observer may lag the event or the advisory). */
const MAX_PENDING_SIGNALS = 10_000;
/** Span events kept per task (a task redelivered without end must not grow without bound). */
const MAX_EVENTS = 128;
/** Ancestor walks stop here: a parent_task_id cycle must not hang the daemon. */
const MAX_DEPTH = 1000;

/** How far the observer's reader of one task stream has read. */
interface ReadProgress {
  /** Stored time of the last message read. */
  throughMs: number;
  /** Nothing was left to read after it (the stream's end at that moment). */
  atEnd: boolean;
  /** When it was read (this process's clock). */
  readAtMs: number;
}

type PendingRefSignal = { kind: "ack" | "nak" | "dead_letter"; ref: StreamMessageRef };

function refKey(stream: string, seq: number): string {
  return `${stream}\u0000${seq}`;
}

export class TasksModel extends EventEmitter<TaskEvents> {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly bySequence = new Map<string, string>();
  /** Task ids by the on_complete subject they publish their follow-up to (inference candidates). */
  private readonly byPublishTo = new Map<string, Set<string>>();
  /** Tasks not exported yet. */
  private readonly open = new Set<string>();
  private readonly pendingCompletions = new Map<string, CompletionSignal>();
  private readonly pendingRefs = new Map<string, PendingRefSignal[]>();
  /** Tasks changed since the last takeDirty() (persistence). */
  private readonly dirty = new Set<string>();
  /** Highest stream sequence observed per task stream (where the observer resumes). */
  private readonly cursors = new Map<string, number>();
  private readonly dirtyCursors = new Set<string>();
  /** How far each task stream has been read by this process (see parentMayStillBeRead). */
  private readonly progress = new Map<string, ReadProgress>();
  /** Exported tasks whose chain-end evaluation is still to do. */
  private readonly chainPending = new Set<string>();
  private settleScheduled = false;
  /** Tasks changed since the last settle: a settle after a message looks at these only. */
  private readonly touched = new Set<string>();
  /** Open tasks whose link is not decided yet, by subject (the follow-ups inference may still link). */
  private readonly undecided = new Map<string, Set<string>>();
  /** Durable consumers of each stream, per poll result (a task looks up its consumers when it arrives). */
  private readonly durableByStream = new WeakMap<PollResult, Map<string, ConsumerState[]>>();

  /** Valid tasks observed (replays of known ones not counted). */
  observed = 0;
  /**
   * A trace exporter will confirm each span it sent (confirmSpanSent); until then the task keeps its
   * span events and is saved as not sent. False: nothing exports spans, exported means done.
   */
  confirmsSpans = false;
  /** Chain state is saved (sources/chain-store.ts): whenSaved() waits for it. */
  persisted = false;
  /** Callers of whenSaved() since the last takeDirty(). */
  private saveWaiters: (() => void)[] = [];

  constructor(
    readonly settings: TasksSettings,
    private readonly jetstream?: JetStreamModel,
  ) {
    super();
    jetstream?.on("polled", (result, previous) => this.applyPoll(result, previous));
  }

  get size(): number {
    return this.tasks.size;
  }

  get(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  cursor(stream: string): number | undefined {
    return this.cursors.get(stream);
  }

  /** A task message read from its stream by the observer. */
  observePublished(observed: ObservedTask, nowMs = Date.now()): void {
    this.advanceCursor(observed.stream, observed.streamSequence);
    const { message } = observed;
    if (this.tasks.has(message.taskId)) return; // a replay, or the same id published again
    const task: TaskRecord = {
      taskId: message.taskId,
      subject: observed.subject,
      role: observed.role,
      type: message.type,
      stream: observed.stream,
      streamSequence: observed.streamSequence,
      publishedMs: observed.storedMs,
      sla: message.sla,
      onCompletePublishTo: message.onCompletePublishTo,
      parentTaskId: message.parentTaskId,
      traceparent: observed.traceparent,
      consumer: undefined,
      firstDeliveryMs: undefined,
      deliveries: 0,
      events: [],
      doneMs: undefined,
      outcome: undefined,
      link: observed.traceparent ? "traceparent" : message.parentTaskId ? "parent_task_id" : undefined,
      inferredParentId: undefined,
      linkDecided: observed.traceparent !== undefined || message.parentTaskId !== undefined,
      followUpKnown: false,
      ids: undefined,
      exported: false,
      slaBreached: [],
      chainChecked: false,
      chainClosed: false,
    };
    this.insert(task);
    this.observed++;
    this.emit("published", task);

    // What the last poll already says about it (the observer can lag the poll).
    const poll = this.jetstream?.current;
    if (poll)
      for (const c of this.taskConsumersOf(poll, task)) this.applyConsumer(task, c, undefined, poll.at);

    const completion = this.pendingCompletions.get(task.taskId);
    if (completion) {
      this.pendingCompletions.delete(task.taskId);
      this.recordCompletionSignal(completion);
    }
    const refs = this.pendingRefs.get(refKey(task.stream, task.streamSequence));
    if (refs) {
      this.pendingRefs.delete(refKey(task.stream, task.streamSequence));
      for (const r of refs) this.applyRef(task, r);
    }
    this.scheduleSettle(nowMs);
  }

  /** A `task.completed` / `task.failed` event with a task_id (sources/org-events.ts). */
  recordCompletionSignal(signal: CompletionSignal): void {
    const task = this.tasks.get(signal.taskId);
    if (!task) {
      this.remember(this.pendingCompletions, signal.taskId, signal);
      return;
    }
    if (task.doneMs === undefined) {
      this.addEvent(task, { name: signal.outcome, atMs: signal.atMs });
      this.end(task, signal.outcome === "completed" ? "completed" : "failed", signal.atMs);
    } else if (signal.outcome === "failed" && task.outcome === "completed" && !task.exported) {
      // An explicit failure wins over a completion only inferred from an ack.
      task.outcome = "failed";
      this.addEvent(task, { name: "failed", atMs: signal.atMs });
      this.markDirty(task);
    }
    this.scheduleSettle();
  }

  /** A sampled ack ($JS.EVENT.METRIC.CONSUMER.ACK) of a message: the task was acknowledged. */
  recordAck(ref: StreamMessageRef): SignalOutcome {
    return this.recordRef({ kind: "ack", ref });
  }

  /** A nak advisory for a message. */
  recordNak(ref: StreamMessageRef): SignalOutcome {
    return this.recordRef({ kind: "nak", ref });
  }

  /** The message exhausted max-deliver (or was terminated) and went to the dead letters. */
  recordDeadLetter(ref: StreamMessageRef): SignalOutcome {
    return this.recordRef({ kind: "dead_letter", ref });
  }

  /** Time passes: timeouts, SLA breaches of open tasks, pending link decisions, chain ends, eviction. */
  tick(nowMs = Date.now()): void {
    this.settle(nowMs, true);
    this.evict(nowMs);
  }

  /** Open tasks past their SLA, by role. */
  overdue(nowMs = Date.now()): Map<string, Record<SlaKind, number>> {
    const byRole = new Map<string, Record<SlaKind, number>>();
    for (const id of this.open) {
      const task = this.tasks.get(id);
      if (!task || task.doneMs !== undefined) continue;
      for (const kind of SLA_KINDS) {
        if (!isOverdue(task, kind, nowMs)) continue;
        let counts = byRole.get(task.role);
        if (!counts) byRole.set(task.role, (counts = { ack: 0, complete: 0 }));
        counts[kind]++;
      }
    }
    return byRole;
  }

  /** Roles of the tasks in memory (so overdue gauges can be reset to 0). */
  roles(): Set<string> {
    const roles = new Set<string>();
    for (const id of this.open) {
      const t = this.tasks.get(id);
      if (t) roles.add(t.role);
    }
    return roles;
  }

  /** Records restored from persistence at start, before any observation. */
  restore(records: Iterable<TaskRecord>, cursors: Iterable<[string, number]>): void {
    for (const [stream, seq] of cursors) this.advanceCursor(stream, seq);
    this.dirtyCursors.clear();
    const unsent: TaskRecord[] = [];
    for (const record of records) {
      if (this.tasks.has(record.taskId)) continue;
      this.insert(record);
      if (record.exported && record.spanSent === false) unsent.push(record);
    }
    this.evict(Date.now());
    for (const task of unsent) if (this.tasks.has(task.taskId)) this.emit("resend", task);
  }

  /** The trace exporter sent the span of an exported task. */
  confirmSpanSent(taskId: string): void {
    const task = this.tasks.get(taskId);
    if (!task || !task.exported || task.spanSent !== false) return;
    task.spanSent = true;
    // Its events are not needed any more (memory, persisted size).
    task.events = [];
    this.markDirty(task);
  }

  /**
   * Resolves once what the model knows now is saved (at once when nothing is saved). A source that
   * acknowledges what it read (the advisory consumer) does so only then: acknowledged before, a
   * completion or dead letter would be lost with a crash before the next save.
   */
  whenSaved(): Promise<void> {
    if (!this.persisted) return Promise.resolve();
    return new Promise((resolve) => this.saveWaiters.push(resolve));
  }

  /**
   * Tasks and cursors changed since the last call, for persistence. Records first, then cursors;
   * `saved` resolves the whenSaved() callers once they are written.
   */
  takeDirty(): { tasks: TaskRecord[]; cursors: [string, number][]; saved: (() => void)[] } {
    const tasks: TaskRecord[] = [];
    for (const id of this.dirty) {
      const t = this.tasks.get(id);
      if (t) tasks.push(t);
    }
    this.dirty.clear();
    const cursors: [string, number][] = [];
    for (const stream of this.dirtyCursors) cursors.push([stream, this.cursors.get(stream)!]);
    this.dirtyCursors.clear();
    const saved = this.saveWaiters;
    this.saveWaiters = [];
    return { tasks, cursors, saved };
  }

  /** The span ids a task has now (frozen ones, else provisional). */
  spanIds(task: TaskRecord): SpanIds {
    return this.resolveIds(task, false, 0);
  }

  // --- internals ---

  private insert(task: TaskRecord): void {
    this.tasks.set(task.taskId, task);
    this.bySequence.set(refKey(task.stream, task.streamSequence), task.taskId);
    if (task.onCompletePublishTo) {
      let set = this.byPublishTo.get(task.onCompletePublishTo);
      if (!set) this.byPublishTo.set(task.onCompletePublishTo, (set = new Set()));
      set.add(task.taskId);
    }
    if (!task.exported) this.open.add(task.taskId);
    if (!task.exported && !task.linkDecided) {
      let set = this.undecided.get(task.subject);
      if (!set) this.undecided.set(task.subject, (set = new Set()));
      set.add(task.taskId);
    } else if (!task.chainChecked) this.chainPending.add(task.taskId);
    this.markDirty(task);
    // An explicit link to a known parent on its on_complete subject is that parent's follow-up.
    if (task.parentTaskId) this.noteFollowUp(task.parentTaskId, task);
  }

  private noteFollowUp(parentId: string, child: TaskRecord): void {
    const parent = this.tasks.get(parentId);
    if (parent && parent.onCompletePublishTo === child.subject && !parent.followUpKnown) {
      parent.followUpKnown = true;
      this.markDirty(parent);
    }
  }

  private markDirty(task: TaskRecord): void {
    this.dirty.add(task.taskId);
    this.touched.add(task.taskId);
  }

  private setLinkDecided(task: TaskRecord): void {
    task.linkDecided = true;
    const set = this.undecided.get(task.subject);
    set?.delete(task.taskId);
    if (set?.size === 0) this.undecided.delete(task.subject);
  }

  /**
   * A message of a task stream was read (valid or not): the observer resumes after it. `storedMs`
   * is its stored time, `atEnd` whether it was the last message of the stream when it was read.
   */
  noteRead(stream: string, seq: number, storedMs?: number, atEnd = false): void {
    this.advanceCursor(stream, seq);
    if (storedMs !== undefined) {
      const p = this.progress.get(stream);
      this.progress.set(stream, {
        throughMs: Math.max(p?.throughMs ?? 0, storedMs),
        atEnd,
        readAtMs: Date.now(),
      });
    }
  }

  /** The reader of a task stream stopped: what it read says nothing about the next one. */
  readerStopped(stream: string): void {
    this.progress.delete(stream);
  }

  /**
   * A task, or one of its ancestors, names a parent (parent_task_id) orgwatch has not seen. That
   * parent was published before the task naming it, so it may still come from a task stream not
   * read that far yet: a reader catching up after a restart, or one started later. The span waits
   * (fixing its ids now would take the parent as the chain's first task and put the chain in two
   * traces) until every task stream has been read through that publication, or for
   * chains.task-timeout at most.
   */
  private parentMayStillBeRead(task: TaskRecord, nowMs: number): boolean {
    let t = task;
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      // Ids fixed, or a trace joined from traceparent: what is above does not change them.
      if (t.ids || t.traceparent) return false;
      const parentId = t.parentTaskId ?? t.inferredParentId;
      if (parentId === undefined) return false;
      const parent = this.tasks.get(parentId);
      if (!parent)
        return nowMs - t.publishedMs <= this.settings.taskTimeoutMs && !this.readThrough(t.publishedMs);
      if (parent === task) return false; // a cycle
      t = parent;
    }
    return false;
  }

  /** Every task stream has been read through what was stored before `ms` (stored time). */
  private readThrough(ms: number): boolean {
    if (!this.jetstream) return true;
    const poll = this.jetstream.current;
    if (!poll) return false; // which task streams there are is not known yet
    for (const stream of poll.streams.values()) {
      if (stream.kind !== "tasks") continue;
      const p = this.progress.get(stream.name);
      // A message stored at or after `ms` was read: so was everything before it.
      if (p && p.throughMs >= ms) continue;
      // Nothing was left to read at a moment after `ms`.
      if (p?.atEnd && p.readAtMs >= ms) continue;
      // A poll after `ms` saw the stream end where this process's reading is.
      if (poll.at >= ms && (this.cursors.get(stream.name) ?? 0) >= stream.lastSequence) continue;
      return false;
    }
    return true;
  }

  private advanceCursor(stream: string, seq: number): void {
    const cursor = this.cursors.get(stream);
    if (cursor === undefined || cursor < seq) {
      this.cursors.set(stream, seq);
      this.dirtyCursors.add(stream);
    }
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.set(key, value);
    if (map.size > MAX_PENDING_SIGNALS) map.delete(map.keys().next().value!);
  }

  private recordRef(signal: PendingRefSignal): SignalOutcome {
    const { stream, streamSequence } = signal.ref;
    const id = this.bySequence.get(refKey(stream, streamSequence));
    const task = id === undefined ? undefined : this.tasks.get(id);
    if (!task) {
      // Sampled acks and advisories come for every stream; only task streams' are worth keeping
      // (before the first poll and the restored state, which streams those are is not known yet).
      const poll = this.jetstream?.current;
      const cursor = this.cursors.get(stream);
      if (poll && poll.streams.get(stream)?.kind !== "tasks" && cursor === undefined) return "ignored";
      // Read already, and not a task (or one forgotten): none will come.
      if (cursor !== undefined && cursor >= streamSequence) return "ignored";
      const key = refKey(stream, streamSequence);
      const list = this.pendingRefs.get(key) ?? [];
      list.push(signal);
      this.remember(this.pendingRefs, key, list);
      return "waiting";
    }
    this.applyRef(task, signal);
    this.scheduleSettle();
    return "applied";
  }

  private applyRef(task: TaskRecord, { kind, ref }: PendingRefSignal): void {
    if (task.doneMs !== undefined && task.exported) return;
    const group = this.groupOf(ref);
    if (ref.deliveries !== undefined) this.noteDeliveries(task, ref.deliveries, ref.atMs, group);
    else if (task.firstDeliveryMs === undefined) this.noteDeliveries(task, 1, ref.atMs, group);
    if (kind === "nak") {
      this.addEvent(task, { name: "nak", atMs: ref.atMs, consumer: group, delivery: ref.deliveries });
    } else if (kind === "dead_letter") {
      this.addEvent(task, {
        name: "dead_letter",
        atMs: ref.atMs,
        consumer: group,
        delivery: ref.deliveries,
      });
      // A dead letter overrides a completion orgwatch inferred but did not export yet (a 2.10+
      // server moves the ack floor past a message that exhausted max-deliver).
      if (task.outcome === "completed" && !task.exported) task.outcome = "dead_letter";
      else if (task.doneMs === undefined) this.end(task, "dead_letter", ref.atMs);
    } else if (task.doneMs === undefined) {
      this.end(task, "completed", ref.atMs);
    }
    this.markDirty(task);
  }

  /** The consumer group of the consumer an advisory or ack sample names, as the last poll saw it. */
  private groupOf(ref: StreamMessageRef): string {
    const c = this.jetstream?.current?.consumers.get(consumerKey(ref.stream, ref.consumer));
    return c ? consumerGroupOf(c) : ref.consumer;
  }

  /** Deliveries up to `count` happened by `atMs` to consumer group `consumer`: record those not seen yet. */
  private noteDeliveries(task: TaskRecord, count: number, atMs: number, consumer: string | undefined): void {
    if (task.consumer === undefined && consumer !== undefined) task.consumer = consumer;
    for (let n = task.deliveries + 1; n <= count; n++) {
      if (n === 1) {
        task.firstDeliveryMs = Math.max(atMs, task.publishedMs);
        this.addEvent(task, { name: "delivery", atMs: task.firstDeliveryMs, delivery: 1, consumer });
        const ids = this.resolveIds(task, false, 0);
        this.emit("delivered", task, (task.firstDeliveryMs - task.publishedMs) / 1000, ids.traceId);
      } else {
        this.addEvent(task, {
          name: "redelivery",
          atMs: Math.max(atMs, task.publishedMs),
          delivery: n,
          consumer,
        });
      }
    }
    if (count > task.deliveries) {
      task.deliveries = count;
      this.markDirty(task);
    }
  }

  private end(task: TaskRecord, outcome: TaskOutcome, atMs: number): void {
    if (task.doneMs !== undefined) return;
    task.doneMs = Math.max(atMs, task.firstDeliveryMs ?? task.publishedMs);
    task.outcome = outcome;
    this.markDirty(task);
  }

  /** The durable consumers of a task's stream whose filter takes the task's subject. */
  private *taskConsumersOf(poll: PollResult, task: TaskRecord): Iterable<ConsumerState> {
    let byStream = this.durableByStream.get(poll);
    if (!byStream) {
      byStream = new Map();
      for (const c of poll.consumers.values()) {
        if (!c.durable) continue;
        const list = byStream.get(c.stream) ?? [];
        list.push(c);
        byStream.set(c.stream, list);
      }
      this.durableByStream.set(poll, byStream);
    }
    for (const c of byStream.get(task.stream) ?? []) {
      if (c.filterSubjects.length > 0 && !c.filterSubjects.some((f) => subjectMatches(f, task.subject)))
        continue;
      yield c;
    }
  }

  /**
   * What one consumer's state says about one task. Times come from the consumer's last delivery /
   * last ack when they fall after the previous poll (exact for the last message), else the poll's
   * time (an upper bound, at poll resolution).
   */
  private applyConsumer(
    task: TaskRecord,
    c: ConsumerState,
    previousPollMs: number | undefined,
    pollMs: number,
  ): void {
    if (task.exported) return;
    const within = (ms: number | undefined) =>
      ms !== undefined && ms <= pollMs && (previousPollMs === undefined || ms > previousPollMs) ? ms : pollMs;
    const seq = task.streamSequence;
    if (seq <= c.deliveredStreamSequence && task.firstDeliveryMs === undefined) {
      this.noteDeliveries(task, 1, within(c.lastDeliveryMs), consumerGroupOf(c));
    }
    if (task.doneMs !== undefined) return;
    if (seq <= c.ackFloorStreamSequence) {
      this.end(task, "completed", within(c.lastAckMs));
    } else if (
      c.ackPending === 0 &&
      seq <= c.deliveredStreamSequence &&
      c.oldestUnackedSequence !== seq &&
      seq !== c.ackFloorStreamSequence + 1
    ) {
      // Nothing delivered waits for an ack, yet the floor is below: a message before it exhausted
      // max-deliver and holds the floor (nats-server 2.9). Everything else delivered was acked.
      this.end(task, "completed", within(c.lastAckMs));
    }
  }

  private applyPoll(result: PollResult, previous: PollResult | undefined): void {
    const taskConsumers = [...result.consumers.values()].filter(
      (c) => c.durable && (c.kind === "tasks" || this.cursors.has(c.stream)),
    );
    if (taskConsumers.length > 0) {
      const byStream = new Map<string, TaskRecord[]>();
      for (const id of this.open) {
        const t = this.tasks.get(id);
        if (!t) continue;
        let list = byStream.get(t.stream);
        if (!list) byStream.set(t.stream, (list = []));
        list.push(t);
      }
      for (const c of taskConsumers) {
        const tasks = (byStream.get(c.stream) ?? []).filter(
          (t) => c.filterSubjects.length === 0 || c.filterSubjects.some((f) => subjectMatches(f, t.subject)),
        );
        if (tasks.length === 0) continue;
        const prev = previous?.consumers.get(`${c.stream}/${c.name}`);
        const firstDeliveriesBefore = tasks.filter((t) => t.firstDeliveryMs !== undefined).length;
        for (const t of tasks) this.applyConsumer(t, c, previous?.at, result.at);
        this.attributeRedeliveries(c, prev, tasks, firstDeliveriesBefore, result.at);
      }
    }
    this.settle(Date.now(), true);
  }

  /**
   * Redeliveries (ack wait expired, nak) show in the consumer as deliveries that are not new
   * messages. They are attributed to a task only when exactly one delivered task of the consumer
   * waits for its ack (otherwise which one was redelivered is unknown; advisories and sampled acks
   * still report delivery counts per message).
   */
  private attributeRedeliveries(
    c: ConsumerState,
    prev: ConsumerState | undefined,
    tasks: TaskRecord[],
    firstDeliveriesBefore: number,
    atMs: number,
  ): void {
    if (!prev || prev.createdMs !== c.createdMs) return;
    const deliveries = c.deliveredConsumerSequence - prev.deliveredConsumerSequence;
    const newMessages = c.deliveredStreamSequence - prev.deliveredStreamSequence;
    const firstDeliveriesNow = tasks.filter((t) => t.firstDeliveryMs !== undefined).length;
    const redeliveries = deliveries - Math.max(newMessages, firstDeliveriesNow - firstDeliveriesBefore);
    if (redeliveries <= 0) return;
    const waiting = tasks.filter(
      (t) => t.firstDeliveryMs !== undefined && t.streamSequence > c.ackFloorStreamSequence && !t.exported,
    );
    const only = waiting.length === 1 ? waiting[0] : undefined;
    if (only) this.noteDeliveries(only, only.deliveries + redeliveries, atMs, consumerGroupOf(c));
  }

  /** Per-message changes settle once, after the current batch of messages. */
  private scheduleSettle(nowMs?: number): void {
    if (this.settleScheduled) return;
    this.settleScheduled = true;
    queueMicrotask(() => this.settle(nowMs ?? Date.now()));
  }

  /**
   * Decides what changed: timeouts, SLA breaches, link decisions, exports in publication order.
   * A full settle (tick, poll) looks at every open task and at chain ends; one after a message
   * only at the tasks it touched and at the follow-ups a completed task may now be inferred for.
   */
  private settle(nowMs: number, full = false): void {
    this.settleScheduled = false;
    let ids: Iterable<string> = this.open;
    if (!full) {
      const set = new Set<string>();
      for (const id of this.touched) {
        set.add(id);
        const t = this.tasks.get(id);
        if (t?.doneMs !== undefined && t.onCompletePublishTo) {
          for (const u of this.undecided.get(t.onCompletePublishTo) ?? []) set.add(u);
        }
      }
      ids = set;
    }
    this.touched.clear();
    const open = [...ids]
      .map((id) => this.tasks.get(id))
      .filter((t): t is TaskRecord => t !== undefined && !t.exported);
    open.sort((a, b) => a.publishedMs - b.publishedMs || a.streamSequence - b.streamSequence);
    for (const task of open) {
      if (task.doneMs === undefined && nowMs - task.publishedMs > this.settings.taskTimeoutMs) {
        this.end(task, "timeout", task.publishedMs + this.settings.taskTimeoutMs);
      }
      for (const kind of SLA_KINDS) {
        if (!task.slaBreached.includes(kind) && isSlaBreached(task, kind, nowMs)) {
          task.slaBreached.push(kind);
          this.markDirty(task);
          this.emit("slaBreach", task, kind);
        }
      }
      if (!task.linkDecided) this.decideInference(task, nowMs, task.doneMs !== undefined);
    }
    // Export in publication order: a parent ended in the same poll as its child goes first.
    for (const task of open) {
      if (task.doneMs === undefined || task.exported || !task.linkDecided) continue;
      if (this.parentMayStillBeRead(task, nowMs)) continue;
      task.ids = this.resolveIds(task, true, 0);
      task.exported = true;
      task.spanSent = !this.confirmsSpans;
      this.open.delete(task.taskId);
      this.chainPending.add(task.taskId);
      this.emit("finished", task);
      // Its events are kept until its span is sent (a restart sends it again, events included).
      if (task.spanSent) task.events = [];
      this.markDirty(task);
    }
    if (full) this.checkChainEnds(nowMs);
  }

  private addEvent(task: TaskRecord, event: TaskEvent): void {
    // The same signal handled twice (an advisory delivered again after a restart) is one event.
    const known = task.events.some(
      (e) => e.name === event.name && e.atMs === event.atMs && e.delivery === event.delivery,
    );
    if (!known && task.events.length < MAX_EVENTS) task.events.push(event);
  }

  private decideInference(task: TaskRecord, nowMs: number, final: boolean): void {
    const ids = this.byPublishTo.get(task.subject);
    const candidates: InferenceCandidate[] = [];
    for (const id of ids ?? []) {
      const c = this.tasks.get(id);
      if (!c || c.taskId === task.taskId) continue;
      // Never a candidate again: its follow-up is accounted for, it did not complete, or it
      // completed too long before this task for any later one on this subject (one stream, read in
      // order) to fall within the window of it.
      const stale =
        c.followUpKnown ||
        c.followUpClaimed === true ||
        (c.doneMs !== undefined &&
          (c.outcome !== "completed" || c.doneMs + 2 * this.settings.inferWindowMs < task.publishedMs));
      if (stale) {
        ids?.delete(id);
        continue;
      }
      candidates.push({
        taskId: c.taskId,
        onCompletePublishTo: c.onCompletePublishTo,
        publishedMs: c.publishedMs,
        doneMs: c.doneMs,
        completed: c.outcome === "completed",
        followUpKnown: c.followUpKnown || c.followUpClaimed === true,
      });
    }
    const decision = inferParent(task, candidates, this.settings.inferWindowMs, nowMs, final);
    if (decision.kind === "wait") return;
    this.setLinkDecided(task);
    if (decision.kind === "ambiguous") {
      for (const id of decision.candidateTaskIds) {
        const c = this.tasks.get(id);
        if (c) {
          c.followUpClaimed = true;
          this.markDirty(c);
        }
      }
    }
    if (decision.kind === "link" && !this.isAncestor(task.taskId, decision.parentTaskId)) {
      task.link = "inferred";
      task.inferredParentId = decision.parentTaskId;
      this.noteFollowUp(decision.parentTaskId, task);
    }
    this.markDirty(task);
  }

  /** Whether `ancestorId` is `taskId` itself or above it (an inferred link must not make a cycle). */
  private isAncestor(ancestorId: string, taskId: string): boolean {
    let current: string | undefined = taskId;
    for (let i = 0; current !== undefined && i < MAX_DEPTH; i++) {
      if (current === ancestorId) return true;
      const t = this.tasks.get(current);
      current = t?.parentTaskId ?? t?.inferredParentId;
    }
    return false;
  }

  /**
   * A task's span ids. The trace is its chain's: the `traceparent`'s when the task carries one, else
   * its parent's, else its own (a chain's first task). A parent orgwatch never saw is treated as
   * the first task of the chain, which is what its own span would have been. With `freeze`, the ids
   * (and its ancestors') are fixed for good: exported spans never move to another trace.
   */
  private resolveIds(task: TaskRecord, freeze: boolean, depth: number): SpanIds {
    if (task.ids) return task.ids;
    const spanId = taskSpanId(task.taskId);
    let ids: SpanIds;
    const parentId = task.parentTaskId ?? task.inferredParentId;
    if (task.traceparent) {
      ids = {
        traceId: task.traceparent.traceId,
        spanId,
        parentSpanId: task.traceparent.spanId,
        rootTaskId: task.taskId,
        depth: 0,
        parentSampled: task.traceparent.sampled,
      };
    } else if (parentId !== undefined && depth < MAX_DEPTH) {
      const parent = this.tasks.get(parentId);
      if (parent && !this.isAncestor(task.taskId, parentId)) {
        const p = this.resolveIds(parent, freeze, depth + 1);
        ids = { ...p, spanId, parentSpanId: p.spanId, depth: p.depth + 1 };
      } else {
        ids = {
          traceId: chainTraceId(parentId),
          spanId,
          parentSpanId: taskSpanId(parentId),
          rootTaskId: parentId,
          depth: 1,
          parentSampled: undefined,
        };
      }
    } else {
      ids = {
        traceId: chainTraceId(task.taskId),
        spanId,
        parentSpanId: undefined,
        rootTaskId: task.taskId,
        depth: 0,
        parentSampled: undefined,
      };
    }
    if (freeze) {
      task.ids = ids;
      // Its link can no longer change, or descendants' spans would be in another trace than its own.
      this.setLinkDecided(task);
      this.markDirty(task);
    }
    return ids;
  }

  /**
   * A chain ends at an exported task that has no follow-up to wait for: it failed, it has no
   * on_complete, or its on_complete follow-up did not appear within the inference window. Then
   * the chain's duration (first task published → this one ended) and steps are observed, once per
   * chain.
   */
  private checkChainEnds(nowMs: number): void {
    if (this.chainPending.size === 0) return;
    // Latest publication of an undecided open task per subject: a follow-up that may still be inferred.
    const undecided = new Map<string, number>();
    for (const id of this.open) {
      const t = this.tasks.get(id);
      if (t && !t.linkDecided)
        undecided.set(t.subject, Math.max(undecided.get(t.subject) ?? 0, t.publishedMs));
    }
    for (const id of this.chainPending) {
      const task = this.tasks.get(id);
      if (!task || task.chainChecked || !task.ids) {
        this.chainPending.delete(id);
        continue;
      }
      if (task.outcome === "completed" && task.onCompletePublishTo) {
        if (task.followUpKnown) {
          task.chainChecked = true;
          this.chainPending.delete(id);
          continue;
        }
        const mayFollow = (undecided.get(task.onCompletePublishTo) ?? 0) > task.publishedMs;
        if (nowMs <= (task.doneMs ?? 0) + this.settings.inferWindowMs || mayFollow) continue;
      }
      task.chainChecked = true;
      this.chainPending.delete(id);
      this.markDirty(task);
      const root = this.tasks.get(task.ids.rootTaskId);
      if (root?.chainClosed) continue;
      if (root) {
        root.chainClosed = true;
        this.markDirty(root);
      }
      const startMs = root?.publishedMs ?? task.publishedMs;
      this.emit("chainFinished", {
        rootTaskId: task.ids.rootTaskId,
        lastTaskId: task.taskId,
        traceId: task.ids.traceId,
        durationSeconds: Math.max(0, ((task.doneMs ?? nowMs) - startMs) / 1000),
        steps: task.ids.depth + 1,
      });
    }
  }

  /** Forget ended tasks past the retention, and the oldest ended ones beyond the size bound. */
  private evict(nowMs: number): void {
    const cutoff = nowMs - this.settings.retentionMs;
    const over = this.tasks.size - this.settings.maxTasks;
    const victims: TaskRecord[] = [];
    for (const task of this.tasks.values()) {
      if (!task.exported) continue;
      if (task.publishedMs < cutoff) victims.push(task);
    }
    if (over > victims.length) {
      const ended = [...this.tasks.values()]
        .filter((t) => t.exported && t.publishedMs >= cutoff)
        .sort((a, b) => a.publishedMs - b.publishedMs);
      victims.push(...ended.slice(0, over - victims.length));
    }
    for (const task of victims) this.forget(task);
  }

  private forget(task: TaskRecord): void {
    this.tasks.delete(task.taskId);
    this.open.delete(task.taskId);
    this.chainPending.delete(task.taskId);
    this.touched.delete(task.taskId);
    this.undecided.get(task.subject)?.delete(task.taskId);
    this.bySequence.delete(refKey(task.stream, task.streamSequence));
    if (task.onCompletePublishTo) {
      const set = this.byPublishTo.get(task.onCompletePublishTo);
      set?.delete(task.taskId);
      if (set?.size === 0) this.byPublishTo.delete(task.onCompletePublishTo);
    }
  }
}
