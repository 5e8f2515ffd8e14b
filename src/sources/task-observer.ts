// Task observation: every message on the task subjects, with its headers, stream sequence and
// stored time, read by orgwatch's own ordered consumers (ephemeral, never acking anything, so the
// agents' durable consumers are not disturbed). One reader per task stream the poller discovers,
// started where the last run stopped (chain state in KV), or, the first time, at the agents'
// oldest unacknowledged task (what is already acknowledged is history, not work to trace), or, for a
// stream that appeared while orgwatch runs, at its first message (all of it was published since).
// That first position is saved before reading, so a crash never moves the next start past what was
// read.
// A timer lets time pass in the model (timeouts, SLAs, chain ends) and saves chain state.
import { DeliverPolicy, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { classifySubject } from "../logic/classify.js";
import { parseTaskMessage, parseTraceparent } from "../logic/task-message.js";
import type { PollResult, StreamState } from "../model/jetstream.js";
import { openChainStore, type ChainStore } from "./chain-store.js";
import { invalidReporter } from "./invalid-input.js";
import { ownConsumerNamePrefix, type RunningSource, type SourceContext } from "./source.js";

/** How often time passes in the task model and chain state is saved. */
const TICK_MS = 1000;
const NS_PER_MS = 1_000_000;
/** Stream info requests a tick may make to confirm idle task streams are read to their end. */
const MAX_CONFIRMS_PER_TICK = 64;
/** How long stopping waits for the last chain state to be saved. */
const STOP_FLUSH_MS = 2000;
/**
 * A reader behind its stream's last sequence that has read nothing for this long is started again
 * from where it stopped. The client's ordered consumer recovers by itself from most losses, but
 * after a stream leader's loss it waits out its own backoff (30 s) and, on the 3-node failover
 * test, sometimes never resumed: its tasks were never seen, so never exported.
 */
const READER_STALL_MS = 5000;
/**
 * How long a replica that followed another holder waits, having acquired the lease, before it
 * reads the last holder's records: longer than the interval at which a holder that lost the lease
 * for want of NATS tries to record the spans it sent (chain-store.ts, OWED_RETRY_MS).
 */
const TAKEOVER_GRACE_MS = 1000;
/** How long a replica that took the lease over goes on following the last holder's records. */
const FOLLOW_AFTER_TAKEOVER_MS = 60_000;

interface Reader {
  readonly stream: string;
  /** When it last read a message (or started). */
  progressAtMs: number;
  stop(): void;
}

/** Where a reader of `stream` starts when orgwatch has no read position for it. */
function firstUnackedSequence(stream: StreamState, poll: PollResult): number {
  let floor: number | undefined;
  for (const c of poll.consumers.values()) {
    if (c.stream !== stream.name || !c.durable) continue;
    floor = Math.min(floor ?? Infinity, c.ackFloorStreamSequence);
  }
  return Math.max(stream.firstSequence, (floor ?? 0) + 1, 1);
}

export async function startTaskObserver(ctx: SourceContext): Promise<RunningSource> {
  const { js, org, log, config } = ctx;
  const prefix = config["subject-prefix"];
  const tasks = org.tasks;
  const refuse = invalidReporter(org.health, log, "task");
  const readers = new Map<string, Reader>();
  /** The task streams of the first poll this process saw (the ones that existed before it). */
  let existing: Set<string> | undefined;
  let stopped = false;

  let store: ChainStore | undefined;
  try {
    store = await openChainStore(ctx);
    if (store) {
      const loaded = await store.load(org);
      log.info(loaded, "chain state restored");
      tasks.persisted = true;
      org.lostWork.persisted = true;
    }
  } catch (err) {
    // Chains still work, but do not survive a restart.
    log.warn({ err: (err as Error).message }, "chain state bucket unavailable; chains are not persisted");
    store = undefined;
  }

  function handle(stream: string, m: JsMsg): void {
    const storedMs = Math.floor(m.info.timestampNanos / NS_PER_MS);
    tasks.noteRead(stream, m.seq, storedMs, m.info.pending === 0);
    const { kind, role } = classifySubject(prefix, m.subject);
    if (kind !== "tasks" || role === "") return; // another subject of a mixed stream
    const parsed = parseTaskMessage(m.data);
    if (!parsed.ok) return refuse(parsed.reason, m.subject);
    tasks.observePublished({
      message: parsed.value,
      traceparent: parseTraceparent(m.headers?.get("traceparent") || undefined),
      subject: m.subject,
      role,
      stream,
      streamSequence: m.seq,
      storedMs,
    });
  }

  function startReader(stream: StreamState, poll: PollResult): Reader {
    const cursor = tasks.cursor(stream.name);
    const startSeq =
      cursor !== undefined
        ? Math.max(cursor + 1, stream.firstSequence, 1)
        : existing?.has(stream.name) === false
          ? Math.max(stream.firstSequence, 1)
          : firstUnackedSequence(stream, poll);
    let messages: ConsumerMessages | undefined;
    let done = false;
    const reader: Reader = {
      stream: stream.name,
      progressAtMs: Date.now(),
      stop() {
        done = true;
        tasks.readerStopped(stream.name);
        void messages?.close().catch(() => undefined);
      },
    };
    void (async () => {
      try {
        if (cursor === undefined) {
          tasks.noteRead(stream.name, startSeq - 1);
          await store?.flush(org);
        }
        if (done) return;
        const consumer = await js.consumers.get(stream.name, {
          // Named as orgwatch's own, so the poller does not report it as one of the organization's.
          name_prefix: ownConsumerNamePrefix(),
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: startSeq,
        });
        if (done) return;
        messages = await consumer.consume();
        for await (const m of messages) {
          // A stopped reader's buffered messages are its successor's to read.
          if (done) break;
          reader.progressAtMs = Date.now();
          try {
            handle(stream.name, m);
          } catch (err) {
            // Input never throws (it is counted); this guards the reader against a bug downstream.
            log.error({ err: (err as Error).message, stream: stream.name }, "task handler failed");
          }
        }
      } catch (err) {
        if (!done) log.warn({ err: (err as Error).message, stream: stream.name }, "task reader stopped");
      } finally {
        // A reader that ended by itself (stream deleted, error) is started again after the next poll.
        if (readers.get(stream.name) === reader) {
          readers.delete(stream.name);
          tasks.readerStopped(stream.name);
        }
      }
    })();
    return reader;
  }

  function syncReaders(poll: PollResult): void {
    if (stopped) return;
    existing ??= new Set([...poll.streams.values()].filter((s) => s.kind === "tasks").map((s) => s.name));
    const now = Date.now();
    for (const stream of poll.streams.values()) {
      if (stream.kind !== "tasks") continue;
      const reader = readers.get(stream.name);
      if (reader) {
        const behind = stream.lastSequence > (tasks.cursor(stream.name) ?? 0);
        if (!behind || now - reader.progressAtMs < READER_STALL_MS) continue;
        log.warn(
          { stream: stream.name, readThrough: tasks.cursor(stream.name), last: stream.lastSequence },
          "task reader stalled behind its stream; started again",
        );
        reader.stop();
      }
      readers.set(stream.name, startReader(stream, poll));
    }
    for (const [name, reader] of readers) {
      if (!poll.streams.has(name)) {
        reader.stop();
        readers.delete(name);
      }
    }
  }

  const onPolled = (poll: PollResult) => {
    syncReaders(poll);
    // What a poll changed (lost work above all: its counts are shown once saved) is saved at once.
    void store?.flush(org);
  };
  org.jetstream.on("polled", onPolled);
  if (org.jetstream.current) syncReaders(org.jetstream.current);

  /**
   * Tasks waiting for every task stream to be read through them (to infer a parent, or to find one
   * not seen) would otherwise wait for the next poll: an idle stream read to its end says nothing
   * of what was stored since. Its last sequence, asked now, does.
   */
  let confirming = false;
  async function confirmStreamEnds(): Promise<void> {
    const names = tasks
      .streamsToConfirm()
      .filter((name) => readers.has(name))
      .slice(0, MAX_CONFIRMS_PER_TICK);
    if (confirming || names.length === 0) return;
    confirming = true;
    try {
      const askedAtMs = Date.now();
      const infos = await Promise.allSettled(names.map((name) => ctx.jsm.streams.info(name)));
      infos.forEach((r, i) => {
        if (r.status === "fulfilled") tasks.noteStreamEnd(names[i]!, r.value.state.last_seq, askedAtMs);
      });
      tasks.tick();
    } finally {
      confirming = false;
    }
  }

  // A pair (DESIGN.md §10): the lease holder writes chain state and exports spans. The other
  // replica keeps its model warm from the same streams and follows the holder's span exports, so
  // that taking over sends only what the holder did not.
  const lease = org.lease;
  let stopWatch: (() => void) | undefined;
  /**
   * This replica followed a holder since it started: taking over, it asks the holder's records
   * about its open tasks too. One that never followed (a single orgwatch) has its own records.
   */
  let followed = false;
  const followHolder = () => {
    if (!store || stopped || lease.held || stopWatch) return;
    followed = true;
    stopWatch = store.watchRecords((record) => tasks.followHolder(record));
  };
  let stopFollowing: NodeJS.Timeout | undefined;
  const onLost = () => {
    clearTimeout(stopFollowing);
    followHolder();
  };
  const onAcquired = () => {
    tasks.prepareTakeOver();
    void (async () => {
      // A holder that stood down for want of NATS puts the spans it sent on record once NATS
      // answers again, which may be just when this replica could acquire the lease: given a
      // moment, still following (exports wait meanwhile).
      if (followed) await new Promise((resolve) => setTimeout(resolve, TAKEOVER_GRACE_MS).unref());
      if (!lease.held || stopped) return tasks.abandonTakeOver();
      // Still followed for a while: what the last holder writes late (a write it had under way
      // when NATS stopped answering, its owed records) is kept for the tasks this replica has not
      // read yet, which the read below cannot name. What this replica writes comes back through
      // the same watch, and changes nothing.
      clearTimeout(stopFollowing);
      stopFollowing = setTimeout(() => {
        if (!lease.held) return;
        stopWatch?.();
        stopWatch = undefined;
      }, FOLLOW_AFTER_TAKEOVER_MS).unref();
      const notSeenSent = tasks.notSeenSent(followed);
      const stored = await (store ? store.storedRecords(notSeenSent) : Promise.resolve([])).catch(
        (err: unknown) => {
          // Not known which were sent: all are (a duplicate span rather than a lost one).
          log.warn(
            { err: (err as Error).message },
            "the last holder's sent spans not read; all not seen sent are sent",
          );
          return [];
        },
      );
      if (!lease.held || stopped) return tasks.abandonTakeOver();
      tasks.takeOver(stored);
      if (notSeenSent.length > 0)
        log.info(
          { notSeenSent: notSeenSent.length, sentByHolder: stored.filter((r) => r.spanSent === true).length },
          "took over: spans not seen sent are sent (the open tasks' when they end)",
        );
      await store?.flush(org);
    })();
  };
  /** A sent span is saved soon, so that a replica taking over does not send it again. */
  let flushSoon: NodeJS.Immediate | undefined;
  const onSpanSent = () => {
    flushSoon ??= setImmediate(() => {
      flushSoon = undefined;
      void store?.flush(org);
    });
  };
  lease.on("acquired", onAcquired);
  lease.on("lost", onLost);
  tasks.on("spanSent", onSpanSent);
  if (lease.held) onAcquired();
  else followHolder();

  const timer = setInterval(() => {
    tasks.tick();
    void store?.flush(org);
    if (!stopped) void confirmStreamEnds().catch(() => undefined);
  }, TICK_MS);
  timer.unref();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      org.jetstream.off("polled", onPolled);
      lease.off("acquired", onAcquired);
      lease.off("lost", onLost);
      tasks.off("spanSent", onSpanSent);
      clearTimeout(stopFollowing);
      stopWatch?.();
      for (const reader of readers.values()) reader.stop();
      readers.clear();
      tasks.tick();
      // Bounded: with NATS unreachable the daemon must still stop in time (the next run re-reads).
      if (store)
        await Promise.race([store.flush(org), new Promise((r) => setTimeout(r, STOP_FLUSH_MS).unref())]);
    },
  };
}
