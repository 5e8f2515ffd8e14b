// The task model on its own: poll results and signals in, lifecycle, links and chain ends out.
import { describe, expect, it } from "vitest";
import { JetStreamModel, type ConsumerState, type PollResult } from "../../src/model/jetstream.js";
import {
  TasksModel,
  type ChainSummary,
  type ObservedTask,
  type TaskRecord,
} from "../../src/model/tasks/index.js";
import type { TaskMessage } from "../../src/logic/task-message.js";
import { chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
import { consumerState, pollResult, streamState } from "../helpers/jetstream-fixtures.js";

const STREAM = "AGENT_CTO_TASKS";
const SUBJECT = "genbrain.agents.cto.tasks";
/** The model's own timers use the real clock: the workload's times are offsets from now. */
const T0 = Date.now();
const SETTINGS = {
  inferWindowMs: 60_000,
  taskTimeoutMs: 3_600_000,
  maxTasks: 1000,
  retentionMs: 86_400_000,
  nextWindowMs: 600_000,
};

function consumer(over: Partial<ConsumerState>): ConsumerState {
  return consumerState(STREAM, "cto-worker", { role: "cto", ackWaitMs: 30_000, ...over });
}

function poll(at: number, consumers: ConsumerState[]): PollResult {
  return pollResult(at, [streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1 })], consumers);
}

function observed(
  seq: number,
  message: Partial<TaskMessage> & { taskId: string },
  storedMs = T0 + seq * 1000,
): ObservedTask {
  return {
    message: {
      type: "work",
      parentTaskId: undefined,
      sla: { ackWithinSeconds: undefined, completeWithinMinutes: undefined },
      onCompletePublishTo: undefined,
      ...message,
    },
    traceparent: undefined,
    subject: SUBJECT,
    role: "cto",
    stream: STREAM,
    streamSequence: seq,
    storedMs,
  };
}

/**
 * A task read from its stream, as the task observer reads it: the stream is read through its stored
 * time (nothing published before it can still come from there).
 */
function observe(tasks: TasksModel, task: ObservedTask, nowMs?: number): void {
  tasks.observePublished(task, nowMs);
  tasks.noteRead(task.stream, task.streamSequence, task.storedMs, true);
}

function setup(settings = SETTINGS) {
  const js = new JetStreamModel();
  // The first poll names the task streams (until then, any of them may hold a task's parent).
  js.applyPoll(poll(T0, []));
  const tasks = new TasksModel(settings, js);
  const finished: TaskRecord[] = [];
  const chains: ChainSummary[] = [];
  tasks.on("finished", (t) => finished.push({ ...t }));
  tasks.on("chainFinished", (c) => chains.push(c));
  const settled = () => new Promise((r) => setTimeout(r, 0));
  return { js, tasks, finished, chains, settled };
}

describe("TasksModel", () => {
  it("completes tasks as the ack floor passes them, with delivery times from the poll", async () => {
    const { js, tasks, finished, settled } = setup();
    observe(tasks, observed(1, { taskId: "a" }), T0 + 1000);
    observe(tasks, observed(2, { taskId: "b" }), T0 + 2000);
    await settled();
    js.applyPoll(
      poll(T0 + 5000, [
        consumer({
          deliveredStreamSequence: 2,
          deliveredConsumerSequence: 2,
          ackFloorStreamSequence: 1,
          ackPending: 1,
        }),
      ]),
    );
    expect(finished.map((t) => [t.taskId, t.outcome, t.doneMs, t.firstDeliveryMs])).toEqual([
      ["a", "completed", T0 + 5000, T0 + 5000],
    ]);
    expect(tasks.get("b")?.firstDeliveryMs).toBe(T0 + 5000);
    expect(tasks.get("b")?.consumer).toBe("cto-worker");
  });

  it("on a 2.9 server, a dead message holding the ack floor does not hide the completion of later ones", async () => {
    const { js, tasks, finished, settled } = setup();
    for (const [seq, id] of [
      [1, "dead"],
      [2, "ok-1"],
      [3, "ok-2"],
    ] as const)
      observe(tasks, observed(seq, { taskId: id }));
    await settled();
    // Everything delivered, nothing waits for an ack, but the floor stays at 0 behind message 1.
    js.applyPoll(
      poll(T0 + 9000, [
        consumer({
          deliveredStreamSequence: 3,
          deliveredConsumerSequence: 5,
          ackFloorStreamSequence: 0,
          oldestUnackedSequence: 1,
        }),
      ]),
    );
    expect(finished.map((t) => t.taskId).sort()).toEqual(["ok-1", "ok-2"]);
    tasks.recordDeadLetter({
      stream: STREAM,
      streamSequence: 1,
      consumer: "cto-worker",
      deliveries: 3,
      atMs: T0 + 9500,
    });
    await settled();
    const dead = finished.find((t) => t.taskId === "dead")!;
    expect(dead.outcome).toBe("dead_letter");
    expect(dead.deliveries).toBe(3);
    expect(dead.events.map((e) => e.name)).toEqual(["delivery", "redelivery", "redelivery", "dead_letter"]);
  });

  it("names the deliver group its members share as the task's consumer group, else the consumer", async () => {
    const { js, tasks, finished, settled } = setup();
    // The poll sees the first task delivered; advisories and sampled acks name the consumer.
    const queue = consumer({ name: "cto-push", deliverGroup: "cto-workers", deliveredStreamSequence: 1 });
    observe(tasks, observed(1, { taskId: "queued" }));
    observe(tasks, observed(2, { taskId: "nakked" }));
    await settled();
    js.applyPoll(poll(T0 + 5000, [queue, consumer({})]));
    tasks.recordNak({
      stream: STREAM,
      streamSequence: 2,
      consumer: "cto-push",
      deliveries: 1,
      atMs: T0 + 5100,
    });
    tasks.recordAck({
      stream: STREAM,
      streamSequence: 1,
      consumer: "cto-push",
      deliveries: 1,
      atMs: T0 + 5200,
    });
    tasks.recordAck({
      stream: STREAM,
      streamSequence: 2,
      consumer: "cto-worker",
      deliveries: 2,
      atMs: T0 + 5300,
    });
    await settled();
    expect(
      finished.map((t) => [t.taskId, t.consumer, t.events.map((e) => `${e.name}:${e.consumer}`)]),
    ).toEqual([
      ["queued", "cto-workers", ["delivery:cto-workers"]],
      ["nakked", "cto-workers", ["delivery:cto-workers", "nak:cto-workers", "redelivery:cto-worker"]],
    ]);
  });

  it("applies signals that arrive before the task is observed", async () => {
    const { js, tasks, finished, settled } = setup();
    js.applyPoll(poll(T0, []));
    // A sampled ack of another kind of stream is not kept waiting for a task.
    tasks.recordAck({ stream: "ORG_BROADCASTS", streamSequence: 2, consumer: "x", atMs: T0 });
    tasks.recordCompletionSignal({ taskId: "early", outcome: "failed", atMs: T0 + 5000 });
    tasks.recordAck({
      stream: STREAM,
      streamSequence: 2,
      consumer: "cto-worker",
      deliveries: 2,
      atMs: T0 + 6000,
    });
    observe(tasks, observed(1, { taskId: "early" }));
    observe(tasks, observed(2, { taskId: "acked" }));
    await settled();
    expect(finished.map((t) => [t.taskId, t.outcome, t.doneMs, t.deliveries])).toEqual([
      ["early", "failed", T0 + 5000, 0],
      ["acked", "completed", T0 + 6000, 2],
    ]);
  });

  it("times out a task still open after the maximum, and counts its SLA breaches once", () => {
    const { tasks, finished } = setup({ ...SETTINGS, taskTimeoutMs: 10_000 });
    const breaches: string[] = [];
    tasks.on("slaBreach", (t, sla) => breaches.push(`${t.taskId}:${sla}`));
    observe(
      tasks,
      observed(1, { taskId: "slow", sla: { ackWithinSeconds: 2, completeWithinMinutes: 0.1 } }, T0 + 1000),
    );
    tasks.tick(T0 + 2000);
    expect(tasks.overdue(T0 + 2000).size).toBe(0);
    tasks.tick(T0 + 3500);
    expect(tasks.overdue(T0 + 3500).get("cto")).toEqual({ ack: 1, complete: 0 });
    tasks.tick(T0 + 8000);
    expect(tasks.overdue(T0 + 8000).get("cto")).toEqual({ ack: 1, complete: 1 });
    tasks.tick(T0 + 12_000);
    expect(breaches).toEqual(["slow:ack", "slow:complete"]);
    expect(finished.map((t) => [t.taskId, t.outcome, t.doneMs])).toEqual([["slow", "timeout", T0 + 11_000]]);
    expect(tasks.overdue(T0 + 12_000).size).toBe(0);
  });

  it("ends a chain when its last task has no follow-up, or when the follow-up did not come within the window", async () => {
    const { tasks, chains, settled } = setup();
    observe(
      tasks,
      observed(1, { taskId: "p", onCompletePublishTo: "genbrain.agents.security.tasks" }, T0 + 1000),
    );
    tasks.recordCompletionSignal({ taskId: "p", outcome: "completed", atMs: T0 + 4000 });
    await settled();
    tasks.tick(T0 + 5000);
    expect(chains).toEqual([]); // its follow-up may still come
    tasks.tick(T0 + 4000 + 60_001);
    expect(chains).toEqual([
      {
        rootTaskId: "p",
        lastTaskId: "p",
        traceId: expect.any(String),
        startMs: T0 + 1000,
        endMs: T0 + 4000,
        durationSeconds: 3,
        steps: 1,
        parentSampled: undefined,
      },
    ]);
  });

  it("survives a parent_task_id cycle", async () => {
    const { tasks, finished, settled } = setup();
    observe(tasks, observed(1, { taskId: "a", parentTaskId: "b" }));
    observe(tasks, observed(2, { taskId: "b", parentTaskId: "a" }));
    tasks.recordCompletionSignal({ taskId: "a", outcome: "completed", atMs: T0 + 3000 });
    tasks.recordCompletionSignal({ taskId: "b", outcome: "completed", atMs: T0 + 4000 });
    await settled();
    expect(finished.map((t) => t.taskId)).toEqual(["a", "b"]);
  });

  it("keeps at most max-tasks, forgetting the oldest ended first, and restores what was saved", async () => {
    const { tasks, settled } = setup({ ...SETTINGS, maxTasks: 2 });
    for (let i = 1; i <= 3; i++) {
      observe(tasks, observed(i, { taskId: `t${i}` }, Date.now()));
      tasks.recordCompletionSignal({ taskId: `t${i}`, outcome: "completed", atMs: Date.now() });
    }
    await settled();
    tasks.tick();
    expect(tasks.size).toBe(2);
    expect(tasks.get("t1")).toBeUndefined();
    const saved = tasks.takeDirty();
    expect(saved.cursors).toEqual([[STREAM, 3]]);

    const { tasks: again } = setup();
    again.restore(saved.tasks, saved.cursors);
    expect(again.cursor(STREAM)).toBe(3);
    expect(again.get("t3")?.exported).toBe(true);
    expect(again.get("t3")?.ids).toEqual(tasks.get("t3")?.ids);
  });

  it("holds a task whose parent is not seen yet until every task stream is read through its publication", async () => {
    const { js, tasks, finished, settled } = setup();
    const PARENTS = "AGENT_CEO_TASKS";
    // The parent's stream holds 4 messages; this process has read up to 2 (a restart re-reading it).
    const streams = [
      streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1, lastSequence: 1 }),
      streamState(PARENTS, { kind: "tasks", role: "ceo", firstSequence: 1, lastSequence: 4 }),
    ];
    js.applyPoll(pollResult(T0, streams, []));
    tasks.noteRead(PARENTS, 2, T0 - 5000, false);
    tasks.noteRead(STREAM, 1, T0 + 1000, true);
    observe(tasks, observed(1, { taskId: "child", parentTaskId: "parent" }), T0 + 1000);
    tasks.recordCompletionSignal({ taskId: "child", outcome: "completed", atMs: T0 + 2000 });
    await settled();
    tasks.tick();
    expect(finished).toEqual([]);
    // The parent comes (published before its child): the child is its child, in its trace.
    tasks.noteRead(PARENTS, 3, T0 + 500, false);
    observe(tasks, { ...observed(3, { taskId: "parent" }, T0 + 500), stream: PARENTS }, T0 + 1000);
    tasks.recordCompletionSignal({ taskId: "parent", outcome: "completed", atMs: T0 + 900 });
    await settled();
    tasks.tick();
    expect(finished.map((t) => [t.taskId, t.ids?.traceId, t.ids?.parentSpanId])).toEqual([
      ["parent", chainTraceId("parent"), undefined],
      ["child", chainTraceId("parent"), taskSpanId("parent")],
    ]);
  });

  it("holds a chain whose unseen task is further up: the grandparent of the task that ended", async () => {
    const { js, tasks, finished, settled } = setup();
    const MIDDLE = "AGENT_CEO_TASKS";
    // root → middle (not read yet, on another stream) → parent → child.
    const streams = [
      streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1, lastSequence: 3 }),
      streamState(MIDDLE, { kind: "tasks", role: "ceo", firstSequence: 1, lastSequence: 1 }),
    ];
    js.applyPoll(pollResult(T0, streams, []));
    tasks.noteRead(STREAM, 3, T0 + 3000, true);
    observe(tasks, observed(1, { taskId: "root" }, T0 + 500), T0 + 500);
    observe(tasks, observed(2, { taskId: "parent", parentTaskId: "middle" }, T0 + 2000), T0 + 2000);
    observe(tasks, observed(3, { taskId: "child", parentTaskId: "parent" }, T0 + 3000), T0 + 3000);
    for (const id of ["root", "parent", "child"])
      tasks.recordCompletionSignal({ taskId: id, outcome: "completed", atMs: T0 + 3500 });
    await settled();
    tasks.tick();
    // Nothing is exported: the chain waits for its unseen middle, and even root (no link of its
    // own) waits, since the unread stream may hold a task root was published to follow.
    expect(finished.map((t) => t.taskId)).toEqual([]);
    tasks.noteRead(MIDDLE, 1, T0 + 1000, true);
    observe(
      tasks,
      { ...observed(1, { taskId: "middle", parentTaskId: "root" }, T0 + 1000), stream: MIDDLE },
      T0 + 3600,
    );
    tasks.recordCompletionSignal({ taskId: "middle", outcome: "completed", atMs: T0 + 1900 });
    await settled();
    tasks.tick();
    expect(finished.map((t) => [t.taskId, t.ids?.traceId, t.ids?.depth])).toEqual([
      ["root", chainTraceId("root"), 0],
      ["middle", chainTraceId("root"), 1],
      ["parent", chainTraceId("root"), 2],
      ["child", chainTraceId("root"), 3],
    ]);
  });

  it("takes a parent never seen as the chain's first task once every stream is read through", async () => {
    const { js, tasks, finished, settled } = setup();
    const OTHER = "AGENT_CEO_TASKS";
    const streams = [
      streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1, lastSequence: 1 }),
      streamState(OTHER, { kind: "tasks", role: "ceo", firstSequence: 1, lastSequence: 2 }),
    ];
    js.applyPoll(pollResult(T0, streams, []));
    tasks.noteRead(OTHER, 1, T0 - 100, false);
    tasks.noteRead(STREAM, 1, T0 + 1000, true);
    observe(tasks, observed(1, { taskId: "orphan", parentTaskId: "gone" }), T0 + 1000);
    tasks.recordCompletionSignal({ taskId: "orphan", outcome: "completed", atMs: T0 + 2000 });
    await settled();
    tasks.tick();
    expect(finished).toEqual([]);
    tasks.noteRead(OTHER, 2, T0 + 3000, true); // not the parent: the other stream's last message
    tasks.tick();
    expect(finished.map((t) => [t.taskId, t.ids?.traceId, t.ids?.parentSpanId])).toEqual([
      ["orphan", chainTraceId("gone"), taskSpanId("gone")],
    ]);
  });

  it("infers a follow-up's parent when the follow-up is read before it (another stream, read later)", async () => {
    const { js, tasks, finished, settled } = setup();
    const CEO = "AGENT_CEO_TASKS";
    const streams = [
      streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1, lastSequence: 1 }),
      streamState(CEO, { kind: "tasks", role: "ceo", firstSequence: 1, lastSequence: 1 }),
    ];
    js.applyPoll(pollResult(T0 - 10_000, streams, []));
    // Times are in the past: the streams are read after they were written, as they always are.
    // The follow-up (no link of its own) is read first; the CEO stream is not read yet.
    observe(tasks, observed(1, { taskId: "follow-up" }, T0 - 4000), T0 - 4000);
    await settled();
    tasks.tick();
    expect(tasks.get("follow-up")?.linkDecided).toBe(false);
    observeCeoParent(tasks, T0 - 3900);
    tasks.recordCompletionSignal({ taskId: "parent", outcome: "completed", atMs: T0 - 3500 });
    tasks.recordCompletionSignal({ taskId: "follow-up", outcome: "completed", atMs: T0 - 3000 });
    await settled();
    tasks.tick();
    expect(finished.map((t) => [t.taskId, t.link, t.ids?.traceId])).toEqual([
      ["parent", undefined, chainTraceId("parent")],
      ["follow-up", "inferred", chainTraceId("parent")],
    ]);
  });

  it("takes a parent whose explicit follow-up was read first out of later inference", async () => {
    const { js, tasks, finished, settled } = setup();
    const CEO = "AGENT_CEO_TASKS";
    const streams = [
      streamState(STREAM, { kind: "tasks", role: "cto", firstSequence: 1, lastSequence: 2 }),
      streamState(CEO, { kind: "tasks", role: "ceo", firstSequence: 1, lastSequence: 1 }),
    ];
    js.applyPoll(pollResult(T0 - 10_000, streams, []));
    observe(tasks, observed(1, { taskId: "child", parentTaskId: "parent" }, T0 - 4000), T0 - 4000);
    observeCeoParent(tasks, T0 - 3900);
    tasks.recordCompletionSignal({ taskId: "parent", outcome: "completed", atMs: T0 - 3500 });
    // A task with no link, published right after: the parent's follow-up is the child, not this one.
    observe(tasks, observed(2, { taskId: "unlinked" }, T0 - 3000), T0 - 3000);
    for (const id of ["child", "unlinked"])
      tasks.recordCompletionSignal({ taskId: id, outcome: "completed", atMs: T0 - 2000 });
    await settled();
    tasks.tick();
    expect(finished.map((t) => [t.taskId, t.link, t.ids?.traceId])).toEqual([
      ["parent", undefined, chainTraceId("parent")],
      ["child", "parent_task_id", chainTraceId("parent")],
      ["unlinked", undefined, chainTraceId("unlinked")],
    ]);
  });

  it("keeps an exported span unsent until confirmed, and has a restarted model send it again", async () => {
    const { tasks, finished, settled } = setup();
    tasks.confirmsSpans = true;
    for (const id of ["sent", "unsent"]) {
      observe(tasks, observed(id === "sent" ? 1 : 2, { taskId: id }), T0);
      tasks.recordCompletionSignal({ taskId: id, outcome: "completed", atMs: T0 + 500 });
    }
    await settled();
    expect(finished.map((t) => [t.taskId, t.spanSent, t.events.length])).toEqual([
      ["sent", false, 1],
      ["unsent", false, 1],
    ]);
    tasks.confirmSpanSent("sent");
    expect(tasks.get("sent")).toMatchObject({ spanSent: true, events: [] });
    const saved = tasks.takeDirty();

    const { tasks: again } = setup();
    const resent: TaskRecord[] = [];
    again.on("resend", (t) => resent.push(t));
    again.restore(saved.tasks, saved.cursors);
    expect(resent.map((t) => [t.taskId, t.ids])).toEqual([["unsent", tasks.get("unsent")?.ids]]);
  });

  it("takes the lease holder's span ids, and sends what it takes over in the holder's traces", async () => {
    const { tasks, finished, settled } = setup();
    tasks.confirmsSpans = true;
    observe(tasks, observed(1, { taskId: "parent" }), T0);
    observe(tasks, observed(2, { taskId: "child", parentTaskId: "parent" }), T0);
    observe(tasks, observed(3, { taskId: "other", parentTaskId: "parent" }), T0);
    for (const id of ["parent", "child", "other"])
      tasks.recordCompletionSignal({ taskId: id, outcome: "completed", atMs: T0 + 500 });
    await settled();
    // This replica took "parent" as its chain's first task; the holder knew its parent "grand".
    expect(finished.map((t) => t.ids?.traceId)).toEqual(Array(3).fill(chainTraceId("parent")));
    const grand = { traceId: chainTraceId("grand"), rootTaskId: "grand", parentSampled: undefined };
    const holderIds = (id: string, parent: string, depth: number) => ({
      ...grand,
      spanId: taskSpanId(id),
      parentSpanId: taskSpanId(parent),
      depth,
    });
    const record = (id: string, ids: ReturnType<typeof holderIds>, spanSent: boolean) => ({
      ...tasks.get(id)!,
      ids,
      spanSent,
    });
    tasks.followHolder(record("parent", holderIds("parent", "grand", 1), true));
    expect(tasks.get("parent")).toMatchObject({ spanSent: true, ids: holderIds("parent", "grand", 1) });

    const resent: TaskRecord[] = [];
    tasks.on("resend", (t) => resent.push(t));
    // The holder's record of "other" (exported, not sent) is read at the takeover: its ids as they are.
    const otherIds = { ...holderIds("other", "parent", 2), traceId: "f".repeat(32) };
    tasks.takeOver([record("other", otherIds, false)]);
    expect(resent.map((t) => [t.taskId, t.ids])).toEqual([
      ["child", holderIds("child", "parent", 2)],
      ["other", otherIds],
    ]);
  });

  it("does not send again, once it holds the lease, a span the holder sent before this replica ended or read its task", async () => {
    const { tasks, finished, settled } = setup();
    tasks.confirmsSpans = true;
    const resent: TaskRecord[] = [];
    tasks.on("resend", (t) => resent.push(t));
    observe(tasks, observed(1, { taskId: "lagging" }), T0);
    observe(tasks, observed(2, { taskId: "open" }), T0);
    // The holder's records: "lagging" sent (this replica has no completion for it yet), "unread"
    // sent (this replica has not read it), "open" exported but not sent.
    const holderIds = (id: string) => ({
      traceId: chainTraceId("grand"),
      spanId: taskSpanId(id),
      parentSpanId: taskSpanId("grand"),
      rootTaskId: "grand",
      depth: 1,
      parentSampled: undefined,
    });
    const sentRecord = (id: string, seq: number, spanSent: boolean): TaskRecord => ({
      ...(tasks.get(id) ?? { ...tasks.get("lagging")!, taskId: id, streamSequence: seq }),
      ids: holderIds(id),
      exported: true,
      spanSent,
      doneMs: T0 + 500,
      outcome: "completed",
    });
    const unread = sentRecord("unread", 3, true);
    tasks.followHolder(sentRecord("lagging", 1, true));
    tasks.followHolder(unread);
    tasks.followHolder(sentRecord("open", 2, false));
    // Asked about at a takeover: what is not seen sent (the open tasks only when it followed a holder).
    expect(tasks.notSeenSent(true)).toEqual(["open"]);
    expect(tasks.notSeenSent(false)).toEqual([]);

    // This replica takes the lease over; ends and reads the tasks after.
    tasks.prepareTakeOver();
    for (const id of ["lagging", "open"])
      tasks.recordCompletionSignal({ taskId: id, outcome: "completed", atMs: T0 + 500 });
    await settled();
    expect(finished).toEqual([]); // exports wait for the last holder's records
    tasks.takeOver([]);
    observe(tasks, observed(3, { taskId: "unread" }), T0);
    tasks.recordCompletionSignal({ taskId: "unread", outcome: "completed", atMs: T0 + 600 });
    await settled();
    expect(finished.map((t) => [t.taskId, t.spanSent, t.ids])).toEqual([
      ["lagging", true, holderIds("lagging")],
      ["open", false, holderIds("open")],
      ["unread", true, holderIds("unread")],
    ]);
    expect(resent).toEqual([]);
  });

  it("asks the holder's records about chains it has not closed, and marks one the holder closed first", async () => {
    const { tasks, chains, settled } = setup({ ...SETTINGS, inferWindowMs: 1000 });
    tasks.confirmsSpans = true;
    // A chain's first task, completed, its on_complete follow-up not seen: the chain may go on.
    const publishTo = "genbrain.agents.security.tasks";
    observe(tasks, observed(1, { taskId: "first", onCompletePublishTo: publishTo }, T0 - 5000), T0 - 5000);
    tasks.recordCompletionSignal({ taskId: "first", outcome: "completed", atMs: T0 - 4000 });
    await settled();
    tasks.tick(T0 - 3500);
    tasks.confirmSpanSent("first");
    expect(chains).toEqual([]);
    expect(tasks.notSeenSent(true)).toEqual(["first"]);
    expect(tasks.notSeenSent(false)).toEqual([]);
    // The holder closed it (its follow-up never came): asked no more; closed here, it says so.
    tasks.followHolder({ ...tasks.get("first")!, chainChecked: true, chainClosed: true });
    expect(tasks.notSeenSent(true)).toEqual([]);
    tasks.tick(T0);
    expect(chains.map((c) => [c.rootTaskId, c.closedByHolder])).toEqual([["first", true]]);
  });

  it("exports what ended while a takeover read the holder's records once that read is given up", async () => {
    const { tasks, finished, settled } = setup();
    tasks.confirmsSpans = true;
    observe(tasks, observed(1, { taskId: "t" }), T0);
    tasks.prepareTakeOver();
    tasks.recordCompletionSignal({ taskId: "t", outcome: "completed", atMs: T0 + 500 });
    await settled();
    tasks.tick();
    expect(finished).toEqual([]);
    tasks.abandonTakeOver();
    expect(finished.map((t) => [t.taskId, t.spanSent])).toEqual([["t", false]]);
  });

  it("resolves whenSaved() callers with the save that takes their state", async () => {
    const { tasks } = setup();
    await tasks.whenSaved(); // nothing persisted: at once
    tasks.persisted = true;
    let resolved = false;
    const waiting = tasks.whenSaved().then(() => (resolved = true));
    const { saved } = tasks.takeDirty();
    expect(tasks.takeDirty().saved).toEqual([]);
    await new Promise((r) => setTimeout(r, 0));
    expect(resolved).toBe(false);
    for (const resolve of saved) resolve();
    await waiting;
    expect(resolved).toBe(true);
  });
});

/** The CEO's task "parent" (published at T0 - 5 s, its follow-up due on SUBJECT), read at `readAtMs`. */
function observeCeoParent(tasks: Parameters<typeof observe>[0], readAtMs: number): void {
  observe(
    tasks,
    {
      ...observed(1, { taskId: "parent", onCompletePublishTo: SUBJECT }, T0 - 5000),
      stream: "AGENT_CEO_TASKS",
      subject: "genbrain.agents.ceo.tasks",
      role: "ceo",
    },
    readAtMs,
  );
}
