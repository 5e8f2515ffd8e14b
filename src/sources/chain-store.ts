// Chain state across restarts: every task record and the read position of each task stream, in a
// NATS KV bucket of orgwatch's own (its stream KV_orgwatch_* is skipped by the poller). Bounded: the
// bucket's TTL is chains.retention, and what is loaded back is bounded by chains.max-tasks.
// Writes are batched: the model marks what changed, flush() writes it. Write-ahead: a read position
// is written only after the records of every task read before it, so a crash at any point re-reads
// messages rather than losing them (a restarted orgwatch that lost a parent's record would put the
// rest of its chain in another trace).
import { createHash } from "node:crypto";
import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
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
   * Calls `written` with each task record written from now on: the other replica's span ids and
   * exports, followed while this one does not hold the lease. Stopped by the result.
   */
  watchRecords(written: (record: TaskRecord) => void): Promise<() => void>;
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
            await kv.put(key, encoder.encode(JSON.stringify(ledger)));
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
            await kv.put(taskKey(id), encoder.encode(JSON.stringify(record)));
            records.delete(id);
          }),
        );
      }
      for (const [stream, seq] of cursors) {
        await kv.put(cursorKey(stream), encoder.encode(JSON.stringify({ stream, seq })));
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

    async watchRecords(written) {
      const watch = await kv.watch({ key: "t.>", include: KvWatchInclude.UpdatesOnly, ignoreDeletes: true });
      void (async () => {
        for await (const entry of watch) {
          try {
            const value: unknown = entry.json();
            if (isTaskRecord(value)) written(value);
          } catch {
            // unreadable: nothing known of it
          }
        }
      })().catch((err: unknown) => log.debug({ err: (err as Error).message }, "task record watch ended"));
      return () => watch.stop();
    },

    async load({ tasks, lostWork }) {
      const status = await kv.status();
      if (status.values === 0) return { tasks: 0, cursors: 0, consumers: 0 };
      const records: TaskRecord[] = [];
      const cursors: [string, number][] = [];
      const consumers: ConsumerLedger[] = [];
      const streams: StreamLedger[] = [];
      const watch = await kv.watch({ ignoreDeletes: true });
      const timer = setTimeout(() => watch.stop(), LOAD_TIMEOUT_MS);
      try {
        for await (const entry of watch) {
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
        // whole state when it takes over), and what waits for a save goes on as if saved.
        const lost = lostWork.takeDirty();
        const dirty = tasks.takeDirty();
        pendingTasks.clear();
        pendingCursors.clear();
        pendingLedgers.clear();
        for (const done of [...ledgersSaved.splice(0), lost.saved]) done();
        for (const resolve of [...waiters.splice(0), ...dirty.saved]) resolve();
        health.lastStateSavedMs = takenAt;
        return true;
      }
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
