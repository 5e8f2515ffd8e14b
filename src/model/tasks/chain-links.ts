// Chain linking: which task caused which (traceparent, parent_task_id, or inferred from on_complete),
// the span ids that follow from it, and when a chain has ended. Works on the task store shared
// with the lifecycle (lifecycle.ts), which calls in at insert, settle and forget.
import { inferParent, type InferenceCandidate } from "../../logic/chain-link.js";
import { chainTraceId, taskSpanId } from "../../logic/task-trace.js";
import type { JetStreamModel } from "../jetstream.js";
import {
  MAX_DEPTH,
  MAX_PENDING_SIGNALS,
  type ChainSummary,
  type ChainUsage,
  type SpanIds,
  type TaskRecord,
  type TasksSettings,
} from "./records.js";
import type { TaskStore } from "./store.js";

export class ChainLinks {
  /** Task ids by the on_complete subject they publish their follow-up to (inference candidates). */
  private readonly byPublishTo = new Map<string, Set<string>>();
  /** Open tasks whose link is not decided yet, by subject (the follow-ups inference may still link). */
  private readonly undecided = new Map<string, Set<string>>();
  /** Tasks naming a parent by parent_task_id, by that parent (a child may be read before it). */
  private readonly childrenOf = new Map<string, Set<string>>();
  /** Exported tasks whose chain-end evaluation is still to do. */
  readonly chainPending = new Set<string>();
  /** Usage reported by a chain's exported tasks so far, by its first task (kept in memory only). */
  private readonly chainUsage = new Map<string, ChainUsage>();
  /** Tasks whose span ids were taken from the lease holder's record (adoptIds). */
  private readonly fromHolder = new WeakSet<TaskRecord>();
  /**
   * First tasks of chains the lease holder's records say it closed (its chain span sent) before
   * this replica did: when this one closes them, holding the lease by then, it does not send it again.
   */
  private readonly closedByHolder = new Set<string>();

  constructor(
    private readonly store: TaskStore,
    private readonly settings: TasksSettings,
    private readonly jetstream: JetStreamModel | undefined,
    private readonly chainFinished: (chain: ChainSummary) => void,
  ) {}

  /** A task entered the store (observed, or restored). */
  added(task: TaskRecord): void {
    if (task.onCompletePublishTo) {
      let set = this.byPublishTo.get(task.onCompletePublishTo);
      if (!set) this.byPublishTo.set(task.onCompletePublishTo, (set = new Set()));
      set.add(task.taskId);
    }
    if (!task.exported && !task.linkDecided) {
      let set = this.undecided.get(task.subject);
      if (!set) this.undecided.set(task.subject, (set = new Set()));
      set.add(task.taskId);
    } else if (!task.chainChecked) this.chainPending.add(task.taskId);
    // An explicit link to a known parent on its on_complete subject is that parent's follow-up.
    if (task.parentTaskId) {
      let children = this.childrenOf.get(task.parentTaskId);
      if (!children) this.childrenOf.set(task.parentTaskId, (children = new Set()));
      children.add(task.taskId);
      this.noteFollowUp(task.parentTaskId, task);
    }
    // Its follow-up may have been read first (another stream): it is accounted for, not a candidate.
    for (const id of this.childrenOf.get(task.taskId) ?? []) {
      const child = this.store.tasks.get(id);
      if (child) this.noteFollowUp(task.taskId, child);
    }
  }

  /** A task's span was exported (its ids frozen): its usage counts for its chain. */
  exported(task: TaskRecord): void {
    if (!task.usage || !task.ids) return;
    const u = this.chainUsage.get(task.ids.rootTaskId) ?? { inputTokens: 0, outputTokens: 0, costUsd: 0 };
    this.chainUsage.set(task.ids.rootTaskId, {
      inputTokens: u.inputTokens + task.usage.inputTokens,
      outputTokens: u.outputTokens + task.usage.outputTokens,
      costUsd: u.costUsd + task.usage.costUsd,
    });
  }

  /** A task left the store. */
  removed(task: TaskRecord): void {
    this.chainPending.delete(task.taskId);
    if (task.parentTaskId) {
      const children = this.childrenOf.get(task.parentTaskId);
      children?.delete(task.taskId);
      if (children?.size === 0) this.childrenOf.delete(task.parentTaskId);
    }
    this.undecided.get(task.subject)?.delete(task.taskId);
    if (task.onCompletePublishTo) {
      const set = this.byPublishTo.get(task.onCompletePublishTo);
      set?.delete(task.taskId);
      if (set?.size === 0) this.byPublishTo.delete(task.onCompletePublishTo);
    }
  }

  /** Undecided open tasks on a subject: follow-ups a task completing with that on_complete may link. */
  undecidedOn(subject: string): Iterable<string> {
    return this.undecided.get(subject) ?? [];
  }

  private noteFollowUp(parentId: string, child: TaskRecord): void {
    const parent = this.store.tasks.get(parentId);
    if (parent && parent.onCompletePublishTo === child.subject && !parent.followUpKnown) {
      parent.followUpKnown = true;
      this.store.markDirty(parent);
    }
  }

  private setLinkDecided(task: TaskRecord): void {
    task.linkDecided = true;
    const set = this.undecided.get(task.subject);
    set?.delete(task.taskId);
    if (set?.size === 0) this.undecided.delete(task.subject);
  }

  /**
   * A task, or one of its ancestors, names a parent (parent_task_id) orgwatch has not seen, or has
   * an ancestor whose inferred link is not decided yet. A parent not seen was published before the
   * task naming it, so it may still come from a task stream not
   * read that far yet: a reader catching up after a restart, or one started later. The span waits
   * (fixing its ids now would take the parent as the chain's first task and put the chain in two
   * traces) until every task stream has been read through that publication, or for
   * chains.task-timeout at most.
   */
  parentMayStillBeRead(task: TaskRecord, nowMs: number, readThroughMs: number): boolean {
    let t = task;
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      // Ids fixed, or a trace joined from traceparent: what is above does not change them.
      if (t.ids || t.traceparent) return false;
      const parentId = t.parentTaskId ?? t.inferredParentId;
      if (parentId === undefined) return false;
      const parent = this.store.tasks.get(parentId);
      if (!parent) return this.mayStillBeRead(t, nowMs, readThroughMs);
      if (parent === task) return false; // a cycle
      // An ancestor still deciding its own inferred parent: the chain's first task may change.
      if (!parent.linkDecided && !parent.ids) return true;
      t = parent;
    }
    return false;
  }

  /**
   * The latest publication a settle found waiting for the task streams to be read through it: the
   * task observer confirms idle streams are read to their end (stream info), which lets it decide.
   */
  waitingForReadThroughMs: number | undefined;

  /** Something published before `task` may still come from a task stream not read that far yet. */
  private mayStillBeRead(task: TaskRecord, nowMs: number, readThroughMs: number): boolean {
    const waits = nowMs - task.publishedMs <= this.settings.taskTimeoutMs && readThroughMs < task.publishedMs;
    if (waits) this.waitingForReadThroughMs = Math.max(this.waitingForReadThroughMs ?? 0, task.publishedMs);
    return waits;
  }

  /**
   * The stored time through which every task stream has been read: all messages stored before it
   * have been seen by this process. One figure per settle (it is the same for every task).
   */
  readThroughMs(): number {
    if (!this.jetstream) return Infinity;
    const poll = this.jetstream.current;
    if (!poll) return -Infinity; // which task streams there are is not known yet
    let through = Infinity;
    for (const name of this.taskStreams()) through = Math.min(through, this.streamReadThroughMs(name));
    return through;
  }

  /**
   * Task streams not read through `ms` yet that are read to their end as far as this process knows
   * (the ones whose end the observer may confirm; one still being read gets there by reading).
   */
  readBehind(ms: number): string[] {
    return this.taskStreams().filter(
      (name) => this.store.progress.get(name)?.atEnd !== false && this.streamReadThroughMs(name) < ms,
    );
  }

  private taskStreams(): string[] {
    const poll = this.jetstream?.current;
    if (!poll) return [];
    return [...poll.streams.values()].filter((s) => s.kind === "tasks").map((s) => s.name);
  }

  private streamReadThroughMs(name: string): number {
    const poll = this.jetstream?.current;
    const p = this.store.progress.get(name);
    let through = -Infinity;
    // A message stored at a time was read: so was everything before it.
    if (p) through = p.throughMs;
    // Nothing was left to read at a moment after it.
    if (p?.atEnd) through = Math.max(through, p.readAtMs);
    // A poll saw the stream end where this process's reading is.
    const stream = poll?.streams.get(name);
    if (poll && stream && (this.store.cursor(name) ?? 0) >= stream.lastSequence)
      through = Math.max(through, poll.at);
    return through;
  }

  /**
   * Decides an unlinked task's inferred parent, or leaves it for later. Its parent was published
   * before it, on another task stream, read independently: until every task stream has been read
   * through the task's publication, a parent may still be missing from the candidates (a follow-up
   * read before its parent would otherwise start a chain of its own), so the decision waits — for
   * chains.task-timeout at most.
   */
  decideInference(task: TaskRecord, nowMs: number, final: boolean, readThroughMs: number): void {
    if (this.mayStillBeRead(task, nowMs, readThroughMs)) return;
    const ids = this.byPublishTo.get(task.subject);
    const candidates: InferenceCandidate[] = [];
    for (const id of ids ?? []) {
      const c = this.store.tasks.get(id);
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
        stream: c.stream,
        streamSequence: c.streamSequence,
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
        const c = this.store.tasks.get(id);
        if (c) {
          c.followUpClaimed = true;
          this.store.markDirty(c);
        }
      }
    }
    if (decision.kind === "link" && !this.isAncestor(task.taskId, decision.parentTaskId)) {
      task.link = "inferred";
      task.inferredParentId = decision.parentTaskId;
      this.noteFollowUp(decision.parentTaskId, task);
    }
    this.store.markDirty(task);
  }

  /** Whether `ancestorId` is `taskId` itself or above it (an inferred link must not make a cycle). */
  private isAncestor(ancestorId: string, taskId: string): boolean {
    let current: string | undefined = taskId;
    for (let i = 0; current !== undefined && i < MAX_DEPTH; i++) {
      if (current === ancestorId) return true;
      const t = this.store.tasks.get(current);
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
  resolveIds(task: TaskRecord, freeze: boolean, depth: number): SpanIds {
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
      const parent = this.store.tasks.get(parentId);
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
      this.store.markDirty(task);
    }
    return ids;
  }

  /**
   * The lease holder's span ids for a task (DESIGN.md §10), taken by the other replica of a pair:
   * each replica infers links from what it read, and may decide a link or a chain's first task
   * otherwise; a replica that takes over must send the spans the holder did not in the holder's
   * traces. Ids taken so are kept at a takeover (rebaseUnsent).
   */
  adoptIds(task: TaskRecord, ids: SpanIds): void {
    this.fromHolder.add(task);
    if (task.ids && task.ids.traceId === ids.traceId && task.ids.parentSpanId === ids.parentSpanId) return;
    task.ids = ids;
    this.setLinkDecided(task);
  }

  /** The lease holder closed the chain that `rootTaskId` starts (its record says so). */
  holderClosedChain(rootTaskId: string): void {
    const root = this.store.tasks.get(rootTaskId);
    if (root?.chainClosed) return;
    this.closedByHolder.add(rootTaskId);
    if (this.closedByHolder.size > MAX_PENDING_SIGNALS)
      this.closedByHolder.delete(this.closedByHolder.values().next().value!);
  }

  /** First tasks of chains not closed yet here (what a replica taking over asks the holder's records about). */
  unclosedRoots(): Set<string> {
    const roots = new Set<string>();
    for (const id of this.chainPending) {
      const rootId = this.store.tasks.get(id)?.ids?.rootTaskId;
      if (
        rootId !== undefined &&
        !this.store.tasks.get(rootId)?.chainClosed &&
        !this.closedByHolder.has(rootId)
      )
        roots.add(rootId);
    }
    return roots;
  }

  /**
   * At a takeover: ended tasks whose span is not known to be sent, and whose ids this replica froze
   * itself, take them again from their parent, whose ids may have been taken from the holder
   * since. Parents first (publication order), so that a chain follows its first task's trace.
   */
  rebaseUnsent(unsent: TaskRecord[]): void {
    unsent.sort((a, b) => a.publishedMs - b.publishedMs || a.streamSequence - b.streamSequence);
    for (const task of unsent) {
      if (this.fromHolder.has(task) || task.traceparent) continue;
      const parentId = task.parentTaskId ?? task.inferredParentId;
      const parent = parentId === undefined ? undefined : this.store.tasks.get(parentId);
      if (!parent?.ids) continue;
      task.ids = undefined;
      task.ids = this.resolveIds(task, true, 0);
    }
  }

  /**
   * A chain ends at an exported task that has no follow-up to wait for: it failed, it has no
   * on_complete, or its on_complete follow-up did not appear within the inference window. Then
   * the chain's duration (first task published → this one ended) and steps are observed, once per
   * chain.
   */
  checkChainEnds(nowMs: number): void {
    if (this.chainPending.size === 0) return;
    // Latest publication of an undecided open task per subject: a follow-up that may still be inferred.
    const undecided = new Map<string, number>();
    for (const id of this.store.open) {
      const t = this.store.tasks.get(id);
      if (t && !t.linkDecided)
        undecided.set(t.subject, Math.max(undecided.get(t.subject) ?? 0, t.publishedMs));
    }
    for (const id of this.chainPending) {
      const task = this.store.tasks.get(id);
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
      this.store.markDirty(task);
      const root = this.store.tasks.get(task.ids.rootTaskId);
      if (root?.chainClosed) continue;
      if (root) {
        root.chainClosed = true;
        this.store.markDirty(root);
      }
      const startMs = root?.publishedMs ?? task.publishedMs;
      const endMs = Math.max(task.doneMs ?? nowMs, startMs);
      const usage = this.chainUsage.get(task.ids.rootTaskId);
      this.chainUsage.delete(task.ids.rootTaskId);
      const closedByHolder = this.closedByHolder.delete(task.ids.rootTaskId);
      this.chainFinished({
        rootTaskId: task.ids.rootTaskId,
        lastTaskId: task.taskId,
        traceId: task.ids.traceId,
        startMs,
        endMs,
        durationSeconds: (endMs - startMs) / 1000,
        steps: task.ids.depth + 1,
        parentSampled: task.ids.parentSampled,
        ...(usage ? { usage } : {}),
        ...(closedByHolder ? { closedByHolder } : {}),
      });
    }
  }
}
