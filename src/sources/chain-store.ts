// Chain state across restarts: every task record and the read position of each task stream, in a
// NATS KV bucket of orgwatch's own (its stream KV_orgwatch_* is skipped by the poller). Bounded: the
// bucket's TTL is chains.retention, and what is loaded back is bounded by chains.max-tasks.
// Writes are batched: the model marks what changed, flush() writes it. Write-ahead: a read position
// is written only after the records of every task read before it, so a crash at any point re-reads
// messages rather than losing them (a restarted orgwatch that lost a parent's record would put the
// rest of its chain in another trace).
import { createHash } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { Logger } from "../log.js";
import type { ExporterHealth } from "../model/exporter-health.js";
import type { LeaseModel } from "../model/lease.js";
import type { ConsumerLedger, LostWorkModel, StreamLedger } from "../model/lost-work.js";
import type { TaskRecord, TasksModel } from "../model/tasks/index.js";
import type { SourceContext } from "./source.js";
import { backgroundTurn } from "../turns.js";

const SAFE_KEY = /^[A-Za-z0-9_-]{1,200}$/;
const LOAD_TIMEOUT_MS = 30_000;
/**
 * whenSaved() callers kept while saving fails; beyond, the oldest are dropped (never resolved:
 * what they wait to acknowledge is delivered again, which is what an unsaved state needs).
 */
const MAX_WAITERS = 10_000;

/** Task records read at once when a replica takes the lease over, and written at once. */
const READ_BATCH = 64;
const WRITE_BATCH = 64;
/** How soon a failed or ended watch of the holder's records is started again. */
const WATCH_RETRY_MS = 1000;
/**
 * How often a replica that lost the lease tries to put on record the spans it sent and could not
 * record (NATS unreachable), and for how long: a replica taking over waits a little before reading
 * the records (TAKEOVER_GRACE_MS in task-observer.ts), longer than this interval.
 */
const OWED_RETRY_MS = 250;
const OWED_FOR_MS = 60_000;

/** KV keys allow few characters: ids that are not plain tokens are hashed. */
function keyPart(value: string): string {
  return SAFE_KEY.test(value) ? `r_${value}` : `h_${createHash("sha256").update(value).digest("hex")}`;
}
export function taskKey(taskId: string): string {
  return `t.${keyPart(taskId)}`;
}
export function cursorKey(stream: string): string {
  return `c.${keyPart(stream)}`;
}
/** Lost-work state: one entry per consumer, one per stream. */
export function consumerLedgerKey(stream: string, consumer: string): string {
  return `l.${keyPart(`${stream}/${consumer}`)}`;
}
export function streamLedgerKey(stream: string): string {
  return `s.${keyPart(stream)}`;
}

function isConsumerLedger(v: unknown): v is ConsumerLedger {
  if (v === null || typeof v !== "object") return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r["stream"] === "string" &&
    typeof r["consumer"] === "string" &&
    typeof r["totals"] === "object" &&
    Array.isArray(r["named"]) &&
    Array.isArray(r["dead"])
  );
}

function isStreamLedger(v: unknown): v is StreamLedger {
  if (v === null || typeof v !== "object") return false;
  const r = v as Record<string, unknown>;
  const e = r["extent"] as Record<string, unknown> | undefined;
  return (
    typeof r["stream"] === "string" &&
    typeof e === "object" &&
    typeof e["first"] === "number" &&
    typeof e["last"] === "number" &&
    Array.isArray(e["deleted"])
  );
}

function isTaskRecord(v: unknown): v is TaskRecord {
  if (v === null || typeof v !== "object") return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r["taskId"] === "string" &&
    typeof r["subject"] === "string" &&
    typeof r["stream"] === "string" &&
    typeof r["streamSequence"] === "number" &&
    typeof r["publishedMs"] === "number" &&
    typeof r["sla"] === "object" &&
    Array.isArray(r["events"]) &&
    Array.isArray(r["slaBreached"])
  );
}

/** The parts of the model whose state is saved. */
export interface PersistedModels {
  readonly tasks: TasksModel;
  readonly lostWork: LostWorkModel;
  readonly health: ExporterHealth;
  /** Only the lease holder writes (DESIGN.md §10); the other replica's changes are let go. */
  readonly lease: LeaseModel;
}

export interface ChainStore {
  /** Reads everything stored back into the model. */
  load(models: PersistedModels): Promise<{ tasks: number; cursors: number; consumers: number }>;
  /**
   * Writes what changed in the model since the last flush; false when it could not. Lost-work
   * state first: a crash after it and before the task records leaves tasks open that the restored
   * lost-work state names (the task model ends them from it), never a loss counted twice.
   */
  flush(models: PersistedModels): Promise<boolean>;
  /** The stored records of these tasks (the last lease holder's), those that can be read. */
  storedRecords(taskIds: readonly string[]): Promise<TaskRecord[]>;
  /**
   * Calls `written` with each task record written from now on (after this replica's own last
   * write, when it has one): the other replica's span ids and exports, followed while this one does
   * not hold the lease. A watch that fails or ends is started again from the last revision it read,
   * so that nothing written meanwhile is missed. Stopped by the result.
   */
  watchRecords(written: (record: TaskRecord) => void): () => void;
}

export async function openChainStore(ctx: SourceContext): Promise<ChainStore | undefined> {
  const { config, log, nc } = ctx;
  const bucket = config["chains.kv-bucket"];
  if (!bucket) return undefined;
  const kvm = new Kvm(nc);
  let kv: KV;
  try {
    kv = await kvm.create(bucket, {
      history: 1,
      ttl: config["chains.retention"],
      replicas: config["own-streams.replicas"],
    });
  } catch (err) {
    // Created earlier with other limits: use it as it is.
    log.debug({ err: (err as Error).message, bucket }, "chain state bucket exists with other settings");
    kv = await kvm.open(bucket);
  }
  return createChainStore(kv, log);
}

function createChainStore(kv: KV, log: Logger): ChainStore {
  const encoder = new TextEncoder();
  /** Records taken from the model but not written yet (kept on failure, retried next flush). */
  const pendingTasks = new Map<string, TaskRecord>();
  const pendingCursors = new Map<string, number>();
  /** Lost-work entries by key (a newer one replaces an older), and their exported-totals callbacks. */
  const pendingLedgers = new Map<string, ConsumerLedger | StreamLedger>();
  let ledgersSaved: (() => void)[] = [];
  let waiters: (() => void)[] = [];
  let flushing: Promise<boolean> = Promise.resolve(true);
  /** The bucket's last revision this replica wrote or read (where a watch of it resumes). */
  let lastRevision: number | undefined;
  const noteRevision = (revision: number) => {
    lastRevision = Math.max(lastRevision ?? 0, revision);
  };
  /**
   * Records of spans this replica sent while it held the lease and had not written when it lost
   * it (NATS unreachable: the renewal failed too), as they were then, with when they became owed.
   * Written as soon as NATS answers again, unless the record says the span was sent already: a
   * replica taking over reads the records to know what not to send again.
   */
  const owed = new Map<string, { bytes: Uint8Array; sinceMs: number }>();
  let owedTimer: NodeJS.Timeout | undefined;
  let writingOwed = false;
  let heldAtLastFlush = false;

  async function writeOwed(): Promise<void> {
    if (writingOwed) return;
    writingOwed = true;
    let written = 0;
    try {
      const now = Date.now();
      for (const [id, { sinceMs }] of owed) if (now - sinceMs > OWED_FOR_MS) owed.delete(id);
      const entries = [...owed];
      for (let i = 0; i < entries.length; i += WRITE_BATCH) {
        await Promise.all(
          entries.slice(i, i + WRITE_BATCH).map(async ([id, { bytes }]) => {
            const key = taskKey(id);
            const stored = await kv.get(key);
            let sentAlready = false;
            if (stored?.operation === "PUT") {
              try {
                sentAlready = (stored.json() as Partial<TaskRecord>).spanSent === true;
              } catch {
                // unreadable: replaced by what this replica knows
              }
            }
            // Only where the record does not say sent, and only over the version read (a write
            // of the new holder's meanwhile is read again on the next try).
            if (!sentAlready)
              noteRevision(
                stored ? await kv.update(key, bytes, stored.revision) : await kv.create(key, bytes),
              );
            owed.delete(id);
            if (!sentAlready) written++;
          }),
        );
      }
    } catch {
      // NATS still unreachable, or the record changed meanwhile: tried again soon.
    } finally {
      writingOwed = false;
      if (written > 0) log.info({ written }, "spans sent before the lease was lost now on record");
      clearTimeout(owedTimer);
      owedTimer = owed.size > 0 ? setTimeout(() => void writeOwed(), OWED_RETRY_MS).unref() : undefined;
    }
  }

  /**
   * Writes what is pending when it starts, records first. What a later flush adds meanwhile is not
   * written by this one: a read position added then may be ahead of records not written yet.
   */
  async function writeAll(): Promise<void> {
    const records = new Map(pendingTasks);
    const cursors = new Map(pendingCursors);
    const ledgers = new Map(pendingLedgers);
    const ledgerCallbacks = ledgersSaved;
    const saved = waiters;
    pendingTasks.clear();
    pendingCursors.clear();
    pendingLedgers.clear();
    ledgersSaved = [];
    waiters = [];
    try {
      // In parallel batches too (each consumer's entry is its own key), a turn of the loop apart
      // that gives a /metrics response its head start (turns.ts): the first save after a start
      // writes every consumer's entry (10,000 at 10,000 consumers), one by one it took 4–6 s, and
      // scrapes meanwhile took 100–350 ms.
      const entries = [...ledgers];
      for (let i = 0; i < entries.length; i += WRITE_BATCH) {
        if (i > 0) await backgroundTurn();
        await Promise.all(
          entries.slice(i, i + WRITE_BATCH).map(async ([key, ledger]) => {
            noteRevision(await kv.put(key, encoder.encode(JSON.stringify(ledger))));
            ledgers.delete(key);
          }),
        );
      }
      for (const done of ledgerCallbacks.splice(0)) done();
      // Records in parallel batches (their order does not matter, only that they precede the read
      // positions): a sent span is on record soon, for the other replica of a pair.
      const recordEntries = [...records];
      for (let i = 0; i < recordEntries.length; i += WRITE_BATCH) {
        const batch = recordEntries.slice(i, i + WRITE_BATCH);
        await Promise.all(
          batch.map(async ([id, record]) => {
            noteRevision(await kv.put(taskKey(id), encoder.encode(JSON.stringify(record))));
            records.delete(id);
          }),
        );
      }
      for (const [stream, seq] of cursors) {
        noteRevision(await kv.put(cursorKey(stream), encoder.encode(JSON.stringify({ stream, seq }))));
        cursors.delete(stream);
      }
    } catch (err) {
      // What was not written goes back, unless a later flush has it already (a newer state).
      for (const [id, record] of records) if (!pendingTasks.has(id)) pendingTasks.set(id, record);
      for (const [stream, seq] of cursors) if (!pendingCursors.has(stream)) pendingCursors.set(stream, seq);
      for (const [key, l] of ledgers) if (!pendingLedgers.has(key)) pendingLedgers.set(key, l);
      ledgersSaved = [...ledgerCallbacks, ...ledgersSaved];
      waiters = [...saved, ...waiters].slice(-MAX_WAITERS);
      throw err;
    }
    for (const resolve of saved) resolve();
  }

  return {
    async storedRecords(taskIds) {
      const records: TaskRecord[] = [];
      for (let i = 0; i < taskIds.length; i += READ_BATCH) {
        const batch = taskIds.slice(i, i + READ_BATCH);
        const entries = await Promise.all(batch.map((id) => kv.get(taskKey(id)).catch(() => null)));
        for (const entry of entries) {
          if (entry?.operation !== "PUT") continue;
          try {
            const value: unknown = entry.json();
            if (isTaskRecord(value)) records.push(value);
          } catch {
            // unreadable: not known to be sent, so it is sent
          }
        }
      }
      return records;
    },

    watchRecords(written) {
      let stopped = false;
      let watch: { stop(): void } | undefined;
      let retry: NodeJS.Timeout | undefined;
      let failing = false;
      const follow = async () => {
        if (stopped) return;
        try {
          // From this replica's own last write, or from now: the other replica's writes after it.
          lastRevision ??= (await kv.status()).streamInfo.state.last_seq;
          const w = await kv.watch({ key: "t.>", resumeFromRevision: lastRevision + 1, ignoreDeletes: true });
          if (stopped) return w.stop();
          watch = w;
          if (failing) log.info("the lease holder's span exports followed again");
          failing = false;
          for await (const entry of w) {
            noteRevision(entry.revision);
            try {
              const value: unknown = entry.json();
              if (isTaskRecord(value)) written(value);
            } catch {
              // unreadable: nothing known of it
            }
          }
          if (!stopped) log.debug("task record watch ended; started again");
        } catch (err) {
          if (!failing && !stopped)
            log.warn(
              { err: (err as Error).message },
              "the lease holder's span exports not followed; trying again",
            );
          failing = true;
        } finally {
          watch = undefined;
        }
        if (!stopped) retry = setTimeout(() => void follow(), WATCH_RETRY_MS).unref();
      };
      void follow();
      return () => {
        stopped = true;
        clearTimeout(retry);
        watch?.stop();
      };
    },

    async load({ tasks, lostWork }) {
      const status = await kv.status();
      // What a watch of the other replica's writes follows from (watchRecords), at the latest
      // entry read below when there are entries.
      noteRevision(status.streamInfo.state.last_seq);
      if (status.values === 0) return { tasks: 0, cursors: 0, consumers: 0 };
      const records: TaskRecord[] = [];
      const cursors: [string, number][] = [];
      const consumers: ConsumerLedger[] = [];
      const streams: StreamLedger[] = [];
      const watch = await kv.watch({ ignoreDeletes: true });
      const timer = setTimeout(() => watch.stop(), LOAD_TIMEOUT_MS);
      try {
        for await (const entry of watch) {
          noteRevision(entry.revision);
          if (entry.operation === "PUT") {
            try {
              const value: unknown = entry.json();
              if (entry.key.startsWith("t.") && isTaskRecord(value)) records.push(value);
              else if (entry.key.startsWith("l.") && isConsumerLedger(value)) consumers.push(value);
              else if (entry.key.startsWith("s.") && isStreamLedger(value)) streams.push(value);
              else if (entry.key.startsWith("c.")) {
                const c = value as { stream?: unknown; seq?: unknown };
                if (typeof c.stream === "string" && typeof c.seq === "number")
                  cursors.push([c.stream, c.seq]);
              }
            } catch {
              log.debug({ key: entry.key }, "unreadable chain state entry skipped");
            }
          }
          if (entry.delta === 0) break;
        }
      } finally {
        clearTimeout(timer);
        watch.stop();
      }
      lostWork.restore({ consumers, streams });
      tasks.restore(records, cursors);
      return { tasks: records.length, cursors: cursors.length, consumers: consumers.length };
    },

    async flush({ tasks, lostWork, health, lease }) {
      const takenAt = Date.now();
      if (!lease.held) {
        // The holder writes the pair's state; this replica's changes are let go (it writes its
        // whole state when it takes over), and what waits for a save goes on as if saved. But for
        // the spans it sent as the holder and has not on record: those are owed (see `owed`).
        const lost = lostWork.takeDirty();
        const dirty = tasks.takeDirty();
        // Those not written yet, and, just after the loss, those whose sending ended since the
        // last save (an export under way when the lease was lost).
        const sent = [...pendingTasks.values(), ...(heldAtLastFlush ? dirty.tasks : [])];
        heldAtLastFlush = false;
        for (const record of sent)
          if (record.spanSent === true)
            owed.set(record.taskId, { bytes: encoder.encode(JSON.stringify(record)), sinceMs: takenAt });
        if (owed.size > 0) void writeOwed();
        pendingTasks.clear();
        pendingCursors.clear();
        pendingLedgers.clear();
        for (const done of [...ledgersSaved.splice(0), lost.saved]) done();
        for (const resolve of [...waiters.splice(0), ...dirty.saved]) resolve();
        health.lastStateSavedMs = takenAt;
        return true;
      }
      // Holding, not taken over yet: nothing is written until takeOver() marks the whole state.
      // What this replica read as a follower was let go above, so a flush now would write the
      // cursors its reads advanced without the records behind them, and a replica restoring them
      // would never read those tasks (their spans lost: the pair test's second kill).
      if (tasks.takingOverLease) return true;
      // Holding again: its whole state is written (takeOver), the owed records with it.
      owed.clear();
      heldAtLastFlush = true;
      const lost = lostWork.takeDirty();
      for (const l of lost.snapshot.consumers) pendingLedgers.set(consumerLedgerKey(l.stream, l.consumer), l);
      for (const s of lost.snapshot.streams) pendingLedgers.set(streamLedgerKey(s.stream), s);
      ledgersSaved.push(lost.saved);
      const dirty = tasks.takeDirty();
      waiters.push(...dirty.saved);
      for (const t of dirty.tasks) pendingTasks.set(t.taskId, t);
      for (const [stream, seq] of dirty.cursors) pendingCursors.set(stream, seq);
      // Flushes run one after the other; each writes everything pending when it starts.
      flushing = flushing.then(() =>
        writeAll().then(
          () => {
            health.lastStateSavedMs = takenAt;
            return true;
          },
          (err: unknown) => {
            log.warn({ err: (err as Error).message }, "chain state not saved; retrying on the next flush");
            return false;
          },
        ),
      );
      return flushing;
    },
  };
}
