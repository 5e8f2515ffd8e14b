// The task lifecycle: every task seen on a tasks subject, from publication to its end.
// The task observer (sources/task-observer.ts) reports each task message; the poll's consumer
// states (deliveries, ack floors) arrive through model.jetstream; other sources report what they
// learn about a task through recordCompletionSignal (org events), recordAck / recordNak /
// recordDeadLetter (advisories); the lost-work model (model/lost-work.ts) names tasks that left
// their stream unacknowledged (markLost). This model decides what it means for the task, its span
// and its chain (chain-links.ts), and emits what the exporters need (metrics, spans) as events.
//
// Lifecycle: published → first delivery → redeliveries / naks → ended: completed (ack floor passing
// its sequence, a sampled ack, a task.completed event, or removed from its stream after an ack),
// failed (task.failed event), dead-lettered, lost (left its stream unacknowledged), or timed out
// (still open after chains.task-timeout). A task's span is exported once, when it ends and its link
// is decided; its ids are derived from task ids (logic/task-trace.ts) and frozen then.
//
// The books balance: every task published ends exactly once, so for every role, published =
// completed + failed + dead_letter + lost + timeout + open (openByRole).
import { EventEmitter } from "node:events";
import { isSameConsumer } from "../../logic/consumer-status.js";
import { isHeld, type RemovalReason } from "../../logic/removal.js";
import { isOverdue, isSlaBreached, SLA_KINDS, type SlaKind } from "../../logic/sla.js";
import { subjectMatches } from "../../logic/subject-match.js";
import {
  consumerGroupOf,
  consumerKey,
  type ConsumerState,
  type JetStreamModel,
  type PollResult,
} from "../jetstream.js";
import { extentOf, type TaskIndex } from "../lost-work.js";
import { ChainLinks } from "./chain-links.js";
import {
  MAX_EVENTS,
  MAX_PENDING_SIGNALS,
  refKey,
  type CompletionSignal,
  type ObservedTask,
  type PendingRefSignal,
  type SignalOutcome,
  type SpanIds,
  type StreamMessageRef,
  type TaskEvent,
  type TaskEvents,
  type TaskOutcome,
  type TaskRecord,
  type TasksSettings,
} from "./records.js";
import { TaskStore } from "./store.js";

export class TasksModel extends EventEmitter<TaskEvents> implements TaskIndex {
  private readonly store = new TaskStore();
  private readonly links: ChainLinks;
  private readonly pendingCompletions = new Map<string, CompletionSignal>();
  private readonly pendingRefs = new Map<string, PendingRefSignal[]>();
  private settleScheduled = false;
  /** Durable consumers of each stream, per poll result (a task looks up its consumers when it arrives). */
  private readonly durableByStream = new WeakMap<PollResult, Map<string, ConsumerState[]>>();
  /**
   * Open tasks whose stream no longer holds them and that no consumer's loss named, by id: the
   * time the poll saw them gone. Acknowledged before they went (an ack above the floor orgwatch did
   * not see), they end completed one poll later, once a late MSG_TERMINATED could have named them.
   */
  private readonly gone = new Map<string, number>();
  /** Consumers that lost a task some other consumer of it may still have acknowledged (markLost). */
  private readonly lostBy = new Map<string, Set<string>>();
  /** Completed tasks whose on_complete next step has not arrived yet (see checkNextSteps). */
  private readonly awaitingNext = new Set<string>();
  /**
   * The lease holder's records of tasks this replica had not exported (or not read) when it read
   * them (followHolder): the span ids of those not read yet, and whether the holder sent the span.
   * Applied when the task is read and when this replica exports it: a follower lags the holder
   * (its reader, the completion's signal), and a span the holder sent must not be sent again when
   * this replica, holding the lease by then, exports the task itself.
   */
  private readonly fromHolder = new Map<string, { ids: SpanIds | undefined; sent: boolean }>();
  /**
   * This replica acquired the lease and reads the last holder's records (prepareTakeOver, then
   * takeOver or abandonTakeOver): exports wait meanwhile, or a task it ended in those milliseconds
   * whose span the last holder sent would be sent again.
   */
  private takingOver = false;

  /** Valid tasks observed (replays of known ones not counted). */
  observed = 0;
  /**
   * A trace exporter will confirm each span it sent (confirmSpanSent); until then the task keeps its
   * span events and is saved as not sent. False: nothing exports spans, exported means done.
   */
  confirmsSpans = false;

  constructor(
    readonly settings: TasksSettings,
    private readonly jetstream?: JetStreamModel,
  ) {
    super();
    this.links = new ChainLinks(this.store, settings, jetstream, (chain) =>
      this.emit("chainFinished", chain),
    );
    jetstream?.on("polled", (result, previous) => this.applyPoll(result, previous));
  }

  /** Chain state is saved (sources/chain-store.ts): whenSaved() waits for it. */
  get persisted(): boolean {
    return this.store.persisted;
  }

  set persisted(value: boolean) {
    this.store.persisted = value;
  }

  get size(): number {
    return this.store.tasks.size;
  }

  get(taskId: string): TaskRecord | undefined {
    return this.store.tasks.get(taskId);
  }

  /** Every task in memory (read-only: the console's flow graph and chains). */
  all(): IterableIterator<TaskRecord> {
    return this.store.tasks.values();
  }

  /** The task stored at a stream sequence, when orgwatch read it. */
  taskAt(stream: string, seq: number): TaskRecord | undefined {
    return this.store.bySeq(stream, seq);
  }

  cursor(stream: string): number | undefined {
    return this.store.cursor(stream);
  }

  /** A task message read from its stream by the observer. */
  observePublished(observed: ObservedTask, nowMs = Date.now()): void {
    this.store.advanceCursor(observed.stream, observed.streamSequence);
    const { message } = observed;
    if (this.store.tasks.has(message.taskId)) return; // a replay, or the same id published again
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
    const held = this.fromHolder.get(task.taskId);
    if (held?.ids) this.links.adoptIds(task, held.ids);
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
    const task = this.store.tasks.get(signal.taskId);
    if (!task) {
      this.remember(this.pendingCompletions, signal.taskId, signal);
      return;
    }
    if (signal.usage && !task.exported) {
      const u = task.usage;
      task.usage = {
        inputTokens: (u?.inputTokens ?? 0) + signal.usage.inputTokens,
        outputTokens: (u?.outputTokens ?? 0) + signal.usage.outputTokens,
        costUsd: (u?.costUsd ?? 0) + signal.usage.costUsd,
        model: signal.usage.model ?? u?.model,
      };
      this.store.markDirty(task);
    }
    if (task.doneMs === undefined) {
      this.addEvent(task, { name: signal.outcome, atMs: signal.atMs });
      this.end(task, signal.outcome === "completed" ? "completed" : "failed", signal.atMs);
    } else if (signal.outcome === "failed" && task.outcome === "completed" && !task.exported) {
      // An explicit failure wins over a completion only inferred from an ack.
      task.outcome = "failed";
      this.addEvent(task, { name: "failed", atMs: signal.atMs });
      this.store.markDirty(task);
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
    this.checkNextSteps(nowMs);
    this.evict(nowMs);
  }

  /** Open tasks past their SLA, by role. */
  overdue(nowMs = Date.now()): Map<string, Record<SlaKind, number>> {
    const byRole = new Map<string, Record<SlaKind, number>>();
    for (const id of this.store.open) {
      const task = this.store.tasks.get(id);
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
    for (const id of this.store.open) {
      const t = this.store.tasks.get(id);
      if (t) roles.add(t.role);
    }
    return roles;
  }

  /** Records restored from persistence at start, before any observation. */
  restore(records: Iterable<TaskRecord>, cursors: Iterable<[string, number]>): void {
    for (const [stream, seq] of cursors) this.store.advanceCursor(stream, seq);
    this.store.cursorsSaved();
    const unsent: TaskRecord[] = [];
    for (const record of records) {
      if (this.store.tasks.has(record.taskId)) continue;
      this.insert(record);
      // Still open: this process will end it, so it counts it as published too (the books of each
      // process balance; docs/lost-work.md).
      if (!record.exported) this.emit("published", record);
      if (record.exported && record.spanSent === false) unsent.push(record);
    }
    this.evict(Date.now());
    for (const task of unsent) if (this.store.tasks.has(task.taskId)) this.emit("resend", task);
  }

  /**
   * This replica took the lease over: its whole state is written (the holder's writes stopped), and
   * the spans it has not seen sent, by itself or by the last holder (`holderRecords`: the stored
   * records of the tasks notSeenSent() names), are sent, in the holder's traces; those it has not
   * exported yet are sent when it does, unless the holder's record says they were.
   */
  takeOver(holderRecords: Iterable<TaskRecord>): void {
    for (const record of holderRecords) this.followHolder(record);
    this.store.markAllDirty();
    const unsent = [...this.store.tasks.values()].filter((t) => t.exported && t.spanSent === false);
    this.links.rebaseUnsent(unsent);
    for (const task of unsent) this.emit("resend", task);
    this.resumeExports();
  }

  /** Between prepareTakeOver() and takeOver() (or abandonTakeOver()). */
  get takingOverLease(): boolean {
    return this.takingOver;
  }

  /** This replica acquired the lease: exports wait until takeOver() has the last holder's records. */
  prepareTakeOver(): void {
    this.takingOver = true;
  }

  /** The lease was lost (or this process stops) before the last holder's records were read. */
  abandonTakeOver(): void {
    this.resumeExports();
  }

  private resumeExports(): void {
    if (!this.takingOver) return;
    this.takingOver = false;
    // What ended meanwhile, untouched since, is exported now rather than at the next tick.
    this.settle(Date.now(), true);
  }

  /**
   * The lease holder's record of a task, followed by the other replica of a pair: its span ids
   * (so that this replica's spans, if it takes over, join the holder's traces) and whether its span
   * was sent (so that it is not sent again).
   */
  followHolder(record: TaskRecord): void {
    if (record.chainClosed) this.links.holderClosedChain(record.taskId);
    const task = this.store.tasks.get(record.taskId);
    if (task && record.ids) this.links.adoptIds(task, record.ids);
    if (task?.exported) {
      if (record.spanSent === true) this.confirmSpanSent(task.taskId);
      return;
    }
    // Not ended or not read here yet: kept for when it is (see fromHolder).
    if (record.spanSent === true || (!task && record.ids))
      this.remember(this.fromHolder, record.taskId, {
        ids: task ? undefined : record.ids,
        sent: record.spanSent === true,
      });
  }

  /**
   * Tasks whose span this replica has not seen sent, by itself or by the holder: the ended ones not
   * confirmed, and with `open`, the open ones and the first tasks of chains not closed here (a
   * holder it followed may have ended them and sent their spans, or closed their chains, before
   * this replica did). What a replica taking over asks the last holder's records about.
   */
  notSeenSent(open: boolean): string[] {
    const ids = open ? this.links.unclosedRoots() : new Set<string>();
    for (const task of this.store.tasks.values())
      if (task.exported ? task.spanSent === false : open && this.fromHolder.get(task.taskId)?.sent !== true)
        ids.add(task.taskId);
    return [...ids];
  }

  /** The trace exporter sent the span of an exported task. */
  confirmSpanSent(taskId: string): void {
    const task = this.store.tasks.get(taskId);
    if (!task || !task.exported || task.spanSent !== false) return;
    task.spanSent = true;
    // Its events are not needed any more (memory, persisted size).
    task.events = [];
    this.store.markDirty(task);
    this.emit("spanSent", task);
  }

  /**
   * Resolves once what the model knows now is saved (at once when nothing is saved). A source that
   * acknowledges what it read (the advisory consumer) does so only then: acknowledged before, a
   * completion or dead letter would be lost with a crash before the next save.
   */
  whenSaved(): Promise<void> {
    return this.store.whenSaved();
  }

  /**
   * Tasks and cursors changed since the last call, for persistence. Records first, then cursors;
   * `saved` resolves the whenSaved() callers once they are written.
   */
  takeDirty(): { tasks: TaskRecord[]; cursors: [string, number][]; saved: (() => void)[] } {
    return this.store.takeDirty();
  }

  /** The span ids a task has now (frozen ones, else provisional). */
  spanIds(task: TaskRecord): SpanIds {
    return this.links.resolveIds(task, false, 0);
  }

  /**
   * A message of a task stream was read (valid or not): the observer resumes after it. `storedMs`
   * is its stored time, `atEnd` whether it was the last message of the stream when it was read.
   */
  noteRead(stream: string, seq: number, storedMs?: number, atEnd = false): void {
    this.store.noteRead(stream, seq, storedMs, atEnd);
  }

  /**
   * Task streams not yet read through a task that waits for it (its inferred parent, or an unseen
   * parent, may still come from them). The task observer asks them for their end.
   */
  streamsToConfirm(): string[] {
    const ms = this.links.waitingForReadThroughMs;
    return ms === undefined ? [] : this.links.readBehind(ms);
  }

  /** A task stream's last sequence, asked at `askedAtMs` (see streamsToConfirm). */
  noteStreamEnd(stream: string, lastSequence: number, askedAtMs: number): void {
    this.store.noteReadToEnd(stream, lastSequence, askedAtMs);
  }

  /** The reader of a task stream stopped: what it read says nothing about the next one. */
  readerStopped(stream: string): void {
    this.store.progress.delete(stream);
  }

  /** The on_complete targets of the latest tasks of each stream (at most `perStream` each). */
  latestOnCompleteTargets(
    perStream = 20,
  ): { stream: string; role: string; taskId: string; target: string }[] {
    const byStream = new Map<string, TaskRecord[]>();
    for (const t of this.store.tasks.values()) {
      if (t.onCompletePublishTo === undefined) continue;
      const list = byStream.get(t.stream) ?? [];
      list.push(t);
      byStream.set(t.stream, list);
    }
    const out: { stream: string; role: string; taskId: string; target: string }[] = [];
    for (const list of byStream.values()) {
      list.sort((a, b) => b.streamSequence - a.streamSequence);
      for (const t of list.slice(0, perStream))
        out.push({ stream: t.stream, role: t.role, taskId: t.taskId, target: t.onCompletePublishTo! });
    }
    return out;
  }

  /** Open tasks per role (the ledger's last term): tasks seen and not yet ended for good. */
  openByRole(): Map<string, number> {
    const byRole = new Map<string, number>();
    for (const id of this.store.open) {
      const t = this.store.tasks.get(id);
      if (t) byRole.set(t.role, (byRole.get(t.role) ?? 0) + 1);
    }
    return byRole;
  }

  // --- what the lost-work model asks (TaskIndex) ---

  newestStoredMs(stream: string, lo: number, hi: number): number | undefined {
    let newest: number | undefined;
    for (let seq = hi; seq > lo && hi - seq < 10_000; seq--) {
      const t = this.store.bySeq(stream, seq);
      if (t) {
        newest = t.publishedMs;
        break;
      }
    }
    return newest;
  }

  openGone(
    stream: string,
    lo: number,
    hi: number,
    held: (seq: number) => boolean,
    subject?: (s: string) => boolean,
  ): number[] {
    const seqs: number[] = [];
    for (const id of this.store.open) {
      const t = this.store.tasks.get(id);
      if (!t || t.stream !== stream || t.doneMs !== undefined) continue;
      if (t.streamSequence <= lo || t.streamSequence > hi || held(t.streamSequence)) continue;
      if (subject && !subject(t.subject)) continue;
      seqs.push(t.streamSequence);
    }
    return seqs.sort((a, b) => a - b);
  }

  /**
   * `consumer`: the consumer whose loss this is. A task several consumers owe is lost once each of
   * them lost it (one that acknowledged it completed it); undefined: lost for all (saved state).
   */
  markLost(stream: string, seq: number, reason: RemovalReason, atMs: number, consumer?: string): void {
    const task = this.store.bySeq(stream, seq);
    if (!task || task.exported) return;
    const poll = this.jetstream?.current;
    if (consumer !== undefined && poll) {
      const by = this.lostBy.get(task.taskId) ?? new Set<string>();
      by.add(consumer);
      this.lostBy.set(task.taskId, by);
      for (const c of this.taskConsumersOf(poll, task)) if (!by.has(c.name)) return;
    }
    this.lostBy.delete(task.taskId);
    this.gone.delete(task.taskId);
    if (task.doneMs !== undefined && task.outcome !== "completed") return;
    // A completion orgwatch only inferred (the floor moved past a removed message) gives way.
    if (task.doneMs !== undefined) task.doneMs = undefined;
    task.lostReason = reason;
    this.addEvent(task, { name: "lost", atMs, reason });
    this.end(task, "lost", atMs);
    this.scheduleSettle();
  }
  // --- internals ---

  private insert(task: TaskRecord): void {
    this.store.tasks.set(task.taskId, task);
    this.store.bySequence.set(refKey(task.stream, task.streamSequence), task.taskId);
    if (!task.exported) this.store.open.add(task.taskId);
    this.awaitNext(task);
    this.links.added(task);
    this.store.markDirty(task);
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.set(key, value);
    if (map.size > MAX_PENDING_SIGNALS) map.delete(map.keys().next().value!);
  }

  private recordRef(signal: PendingRefSignal): SignalOutcome {
    const { stream, streamSequence } = signal.ref;
    const task = this.store.bySeq(stream, streamSequence);
    if (!task) {
      // Sampled acks and advisories come for every stream; only task streams' are worth keeping
      // (before the first poll and the restored state, which streams those are is not known yet).
      const poll = this.jetstream?.current;
      const cursor = this.store.cursor(stream);
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
    this.store.markDirty(task);
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
        const ids = this.links.resolveIds(task, false, 0);
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
      this.store.markDirty(task);
    }
  }

  private end(task: TaskRecord, outcome: TaskOutcome, atMs: number): void {
    if (task.doneMs !== undefined) return;
    task.doneMs = Math.max(atMs, task.firstDeliveryMs ?? task.publishedMs);
    task.outcome = outcome;
    this.awaitNext(task);
    this.store.markDirty(task);
  }

  /** A completed task with an on_complete next step: watched until that step arrives (checkNextSteps). */
  private awaitNext(task: TaskRecord): void {
    if (
      task.outcome === "completed" &&
      task.onCompletePublishTo !== undefined &&
      task.brokenLink === undefined &&
      !task.followUpKnown &&
      task.followUpClaimed !== true
    )
      this.awaitingNext.add(task.taskId);
  }

  /**
   * Broken chain links: a completed task whose on_complete target no stream stores (its next step
   * would vanish: unrouted_target), or whose next step did not arrive within chains.next-window
   * (next_missing). Each task's link breaks at most once.
   */
  private checkNextSteps(nowMs: number): void {
    const poll = this.jetstream?.current;
    for (const id of this.awaitingNext) {
      const t = this.store.tasks.get(id);
      if (!t || t.outcome !== "completed" || t.followUpKnown || t.followUpClaimed === true || t.brokenLink) {
        this.awaitingNext.delete(id);
        continue;
      }
      const target = t.onCompletePublishTo!;
      const stored =
        poll === undefined ||
        [...poll.streams.values()].some((s) => s.subjects.some((f) => subjectMatches(f, target)));
      const reason = !stored
        ? "unrouted_target"
        : nowMs > (t.doneMs ?? nowMs) + this.settings.nextWindowMs
          ? "next_missing"
          : undefined;
      if (!reason) continue;
      t.brokenLink = reason;
      this.awaitingNext.delete(id);
      this.store.markDirty(t);
      this.emit("linkBroken", t, reason);
    }
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
      (c) => c.durable && (c.kind === "tasks" || this.store.hasCursor(c.stream)),
    );
    const goneNow = this.settleGone(result, taskConsumers);
    if (taskConsumers.length > 0) {
      const byStream = new Map<string, TaskRecord[]>();
      for (const id of this.store.open) {
        const t = this.store.tasks.get(id);
        if (!t || goneNow.has(t.taskId)) continue;
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
   * Open tasks their stream no longer holds, that the lost-work model did not name lost (it ran on
   * this poll first). Never delivered to any of its consumers: lost (no consumer's count could
   * tell, e.g. the first poll after a start without saved state: reason unknown). Delivered: it
   * was acknowledged and then removed, or its MSG_TERMINATED is on its way; it ends completed one
   * poll later unless named lost meanwhile. Returns the ids of the tasks gone now.
   */
  private settleGone(result: PollResult, consumers: ConsumerState[]): Set<string> {
    const goneNow = new Set<string>();
    const extents = new Map<string, ReturnType<typeof extentOf>>();
    for (const id of this.store.open) {
      const t = this.store.tasks.get(id);
      if (!t || t.doneMs !== undefined) continue;
      const stream = result.streams.get(t.stream);
      // Published after the poll listed its stream: not gone, newer than what the poll saw.
      if (!stream || t.streamSequence > stream.lastSequence) continue;
      let extent = extents.get(stream.name);
      if (!extent) extents.set(stream.name, (extent = extentOf(stream)));
      if (isHeld(extent, t.streamSequence)) continue;
      goneNow.add(t.taskId);
      const mine = consumers.filter(
        (c) =>
          c.stream === t.stream &&
          (c.filterSubjects.length === 0 || c.filterSubjects.some((f) => subjectMatches(f, t.subject))),
      );
      if (mine.length > 0 && mine.every((c) => t.streamSequence > c.deliveredStreamSequence)) {
        this.markLost(t.stream, t.streamSequence, "unknown", result.at);
        continue;
      }
      const since = this.gone.get(t.taskId);
      if (since === undefined) this.gone.set(t.taskId, result.at);
      else {
        this.gone.delete(t.taskId);
        this.end(t, "completed", since);
      }
    }
    for (const id of this.gone.keys()) if (!goneNow.has(id)) this.gone.delete(id);
    return goneNow;
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
    if (!prev || !isSameConsumer(prev.createdMs, c.createdMs)) return;
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
    let ids: Iterable<string> = this.store.open;
    if (!full) {
      const set = new Set<string>();
      for (const id of this.store.touched) {
        set.add(id);
        const t = this.store.tasks.get(id);
        if (t?.doneMs !== undefined && t.onCompletePublishTo) {
          for (const u of this.links.undecidedOn(t.onCompletePublishTo)) set.add(u);
        }
      }
      ids = set;
    }
    this.store.touched.clear();
    const open = [...ids]
      .map((id) => this.store.tasks.get(id))
      .filter((t): t is TaskRecord => t !== undefined && !t.exported);
    open.sort((a, b) => a.publishedMs - b.publishedMs || a.streamSequence - b.streamSequence);
    const readThroughMs = open.length > 0 ? this.links.readThroughMs() : Infinity;
    if (full) this.links.waitingForReadThroughMs = undefined;
    for (const task of open) {
      if (task.doneMs === undefined && nowMs - task.publishedMs > this.settings.taskTimeoutMs) {
        this.end(task, "timeout", task.publishedMs + this.settings.taskTimeoutMs);
      }
      for (const kind of SLA_KINDS) {
        if (!task.slaBreached.includes(kind) && isSlaBreached(task, kind, nowMs)) {
          task.slaBreached.push(kind);
          this.store.markDirty(task);
          this.emit("slaBreach", task, kind);
        }
      }
      if (!task.linkDecided)
        this.links.decideInference(task, nowMs, task.doneMs !== undefined, readThroughMs);
    }
    if (!this.takingOver) this.exportEnded(open, nowMs, readThroughMs);
    if (full) this.links.checkChainEnds(nowMs);
  }

  /** Exports the ended tasks among `open` whose links are settled. */
  private exportEnded(open: TaskRecord[], nowMs: number, readThroughMs: number): void {
    // In publication order: a parent ended in the same poll as its child goes first.
    for (const task of open) {
      if (task.doneMs === undefined || task.exported || !task.linkDecided) continue;
      if (this.links.parentMayStillBeRead(task, nowMs, readThroughMs)) continue;
      task.ids = this.links.resolveIds(task, true, 0);
      task.exported = true;
      // Sent by the lease holder before this replica ended it: not sent again (see fromHolder).
      const sentByHolder = this.fromHolder.get(task.taskId)?.sent === true;
      this.fromHolder.delete(task.taskId);
      task.spanSent = !this.confirmsSpans || sentByHolder;
      this.store.open.delete(task.taskId);
      this.links.chainPending.add(task.taskId);
      this.links.exported(task);
      this.emit("finished", task);
      // Its events are kept until its span is sent (a restart sends it again, events included).
      if (task.spanSent) task.events = [];
      this.store.markDirty(task);
    }
  }

  private addEvent(task: TaskRecord, event: TaskEvent): void {
    // The same signal handled twice (an advisory delivered again after a restart) is one event.
    const known = task.events.some(
      (e) => e.name === event.name && e.atMs === event.atMs && e.delivery === event.delivery,
    );
    if (!known && task.events.length < MAX_EVENTS) task.events.push(event);
  }

  /** Forget ended tasks past the retention, and the oldest ended ones beyond the size bound. */
  private evict(nowMs: number): void {
    const cutoff = nowMs - this.settings.retentionMs;
    const over = this.store.tasks.size - this.settings.maxTasks;
    const victims: TaskRecord[] = [];
    for (const task of this.store.tasks.values()) {
      if (!task.exported) continue;
      if (task.publishedMs < cutoff) victims.push(task);
    }
    if (over > victims.length) {
      const ended = [...this.store.tasks.values()]
        .filter((t) => t.exported && t.publishedMs >= cutoff)
        .sort((a, b) => a.publishedMs - b.publishedMs);
      victims.push(...ended.slice(0, over - victims.length));
    }
    for (const task of victims) this.forget(task);
  }

  private forget(task: TaskRecord): void {
    this.store.tasks.delete(task.taskId);
    this.store.open.delete(task.taskId);
    this.store.touched.delete(task.taskId);
    this.store.bySequence.delete(refKey(task.stream, task.streamSequence));
    this.gone.delete(task.taskId);
    this.awaitingNext.delete(task.taskId);
    this.lostBy.delete(task.taskId);
    this.links.removed(task);
  }
}
