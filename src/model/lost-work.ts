// Lost work: messages that left their stream before the consumer that owed them an ack
// acknowledged them (DESIGN.md §7). Per consumer, each poll is compared with the one before
// (logic/removal.ts does the arithmetic); removed messages that were delivered and unacknowledged
// arrive one by one as MSG_TERMINATED advisories (sources/advisories.ts); API audit advisories name
// purges and deletes (sources/api-audit.ts). Tasks orgwatch read are named: the task model ends
// them with outcome `lost`.
//
// Also the dead letters orgwatch knows per consumer: nats-server up to 2.12.8 keeps a dead
// message's redelivered entry and may hold the ack floor below it, and the poller uses these to
// describe the live work only.
//
// Counted once across restarts: the state (the last poll of each consumer, its totals, the
// sequences named) is saved with chain state (sources/chain-store.ts), and the exported totals are
// the saved ones, so a count a crash could repeat is never shown.
import {
  consumerLoss,
  heldIn,
  isHeld,
  removalReason,
  type ConsumerPoint,
  type RemovalReason,
  type StreamExtent,
} from "../logic/removal.js";
import { isSameConsumer } from "../logic/consumer-status.js";
import { subjectMatches } from "../logic/subject-match.js";
import { consumerKey, type ConsumerState, type PollResult, type StreamState } from "./jetstream.js";

/** Sequences remembered per consumer as named lost / dead-lettered (dedup across advisory replays). */
const MAX_NAMED = 1_000;
/** API audit hints kept per stream, and for how long. */
const MAX_HINTS = 100;
const HINT_TTL_MS = 10 * 60_000;
/** Consumers compared with their previous poll between two turns of the event loop. */
const SLICE = 500;
/** How long the state of a consumer gone from the polls is kept for its return. */
const RETIRED_MS = 10 * 60_000;

/** What the lost-work model asks of the task model (the tasks orgwatch read). */
export interface TaskIndex {
  /** Stored time of the newest task in (lo, hi] of a stream, when orgwatch read one. */
  newestStoredMs(stream: string, lo: number, hi: number): number | undefined;
  /** Sequences of open tasks of a stream in (lo, hi] that the stream no longer holds, ascending. */
  openGone(
    stream: string,
    lo: number,
    hi: number,
    held: (seq: number) => boolean,
    subject?: (s: string) => boolean,
  ): number[];
  /** A task was lost (for consumer `consumer`): end it with outcome `lost`. */
  markLost(stream: string, seq: number, reason: RemovalReason, atMs: number, consumer?: string): void;
}

export interface LostLabels {
  readonly stream: string;
  readonly consumer: string;
  readonly role: string;
  readonly kind: string;
}

/** Persisted per consumer. Plain data (JSON). */
export interface ConsumerLedger {
  readonly stream: string;
  readonly consumer: string;
  role: string;
  kind: string;
  createdMs: number | undefined;
  point: ConsumerPoint | undefined;
  totals: Partial<Record<RemovalReason, number>>;
  /** Sequences counted lost by name ([seq, reason]), newest last. */
  named: [number, RemovalReason][];
  /** Sequences orgwatch saw dead-lettered, newest last. */
  dead: number[];
  /**
   * Naks seen and not yet matched by a redelivery: each is redelivered at the consumer's next
   * pull, and a redelivery in an interval would otherwise hide a skipped message (removal.ts).
   */
  naksOutstanding?: number;
  /**
   * Sequences whose last allowed delivery was refused (nak): dead, though the server keeps them
   * pending until it tries to deliver them once more (then the max-deliveries advisory comes).
   */
  refusedLast?: number[];
  /** Sequences a sampled ack named since the last poll: acknowledged, so not lost if purged. */
  ackedSincePoll?: number[];
}

/** Persisted per stream: what it held at the last poll. */
export interface StreamLedger {
  readonly stream: string;
  extent: StreamExtent;
  firstMs: number | undefined;
}

interface Hint {
  readonly kind: "purge" | "delete";
  readonly atMs: number;
  readonly seq?: number;
}

export interface LostWorkSnapshot {
  consumers: ConsumerLedger[];
  streams: StreamLedger[];
}

function sameTotals(
  a: Partial<Record<RemovalReason, number>> | undefined,
  b: Partial<Record<RemovalReason, number>>,
): boolean {
  if (a === undefined) return Object.values(b).every((n) => !n);
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as RemovalReason[]);
  for (const k of keys) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false;
  return true;
}

function coversWholeStream(c: ConsumerState, s: StreamState): boolean {
  if (c.filterSubjects.length === 0) return true;
  return s.subjects.every((subject) => c.filterSubjects.some((f) => subjectMatches(f, subject)));
}

export function extentOf(s: StreamState): StreamExtent {
  return { first: s.firstSequence, last: s.lastSequence, deleted: s.deleted ?? [] };
}

/** The reasons a consumer's series exist for at 0: those its stream's own limits can cause. */
export function expectedReasons(
  s: Pick<StreamState, "maxAgeMs" | "maxMsgs" | "maxBytes" | "maxMsgsPerSubject">,
): RemovalReason[] {
  const reasons: RemovalReason[] = [];
  if (s.maxAgeMs > 0) reasons.push("max_age");
  if (s.maxMsgs > 0 || s.maxBytes > 0 || s.maxMsgsPerSubject > 0) reasons.push("limits");
  return reasons;
}

export class LostWorkModel {
  private readonly ledgers = new Map<string, ConsumerLedger>();
  private readonly streams = new Map<string, StreamLedger>();
  private readonly hints = new Map<string, Hint[]>();
  /** State of consumers gone from the last poll, kept RETIRED_MS (see applyPoll). */
  private readonly retired = new Map<
    string,
    { ledger: ConsumerLedger; saved: Partial<Record<RemovalReason, number>> | undefined; atMs: number }
  >();
  private readonly dirty = new Set<string>();
  private readonly dirtyStreams = new Set<string>();
  /** Totals as last saved (what /metrics shows), by consumer key. */
  private readonly saved = new Map<string, Partial<Record<RemovalReason, number>>>();
  private tasks: TaskIndex | undefined;
  /** Changes whenever what exported() yields may have changed (the exporter caches its text). */
  version = 0;
  /** Saved by sources/chain-store.ts: exported totals follow the saves. */
  persisted = false;
  /** The server the last poll was answered by (a change: it restarted, or another node answers). */
  private serverId: string | undefined;
  /** When the last poll started (API audit hints after it belong to the next interval). */
  private lastPollAt: number | undefined;
  /** Restored state: the first poll ends the tasks it names lost (see applyPoll). */
  private reconcile = false;

  attachTasks(tasks: TaskIndex): void {
    this.tasks = tasks;
  }

  /** Totals as exported (saved ones when state is persisted), with labels, for every consumer known. */
  *exported(): IterableIterator<[LostLabels, Partial<Record<RemovalReason, number>>]> {
    for (const [key, l] of this.ledgers) {
      const totals = this.persisted ? (this.saved.get(key) ?? {}) : l.totals;
      // The ledger is its own labels: nothing allocated per consumer (10,000 per render).
      yield [l, totals];
    }
  }

  /**
   * Messages a consumer lost so far (every reason), as counted (not only as saved). `key`, here and
   * below: consumerKey(stream, consumer) when the caller has it (the poller, for every consumer of a
   * poll: each key string made anew is hashed anew; BENCHMARKS.md, 2026-12-07).
   */
  lostTotal(stream: string, consumer: string, key = consumerKey(stream, consumer)): number {
    const totals = this.ledgers.get(key)?.totals ?? {};
    let n = 0;
    for (const v of Object.values(totals)) n += v ?? 0;
    return n;
  }

  /** Sequences of a consumer orgwatch saw dead-lettered (poller: live work only). */
  deadSequences(stream: string, consumer: string, key = consumerKey(stream, consumer)): readonly number[] {
    return this.ledgers.get(key)?.dead ?? [];
  }

  /** A max-deliveries advisory: the sequence is dead for this consumer. */
  recordDeadLetter(stream: string, consumer: string, seq: number): void {
    const l = this.ledger(stream, consumer);
    // Declared dead: it has left the pending set now.
    if (l.refusedLast?.includes(seq)) l.refusedLast = l.refusedLast.filter((s) => s !== seq);
    if (l.dead.includes(seq)) return;
    l.dead.push(seq);
    if (l.dead.length > MAX_NAMED) l.dead.shift();
    this.markDirty(l);
  }

  /** A sampled ack ($JS.EVENT.METRIC.CONSUMER.ACK): that sequence was acknowledged. */
  recordAck(stream: string, consumer: string, seq: number): void {
    const l = this.ledgers.get(consumerKey(stream, consumer));
    if (!l) return;
    const acked = (l.ackedSincePoll ??= []);
    if (acked.length < MAX_NAMED && !acked.includes(seq)) acked.push(seq);
  }

  /** A nak advisory: the message will be delivered again. */
  recordNak(stream: string, consumer: string, seq: number, deliveries: number, maxDeliver: number): void {
    const l = this.ledger(stream, consumer);
    if (maxDeliver > 0 && deliveries >= maxDeliver) {
      // No redelivery will come: the server gives it up at its next attempt.
      const refused = (l.refusedLast ??= []);
      if (!refused.includes(seq)) refused.push(seq);
      if (refused.length > MAX_NAMED) refused.shift();
    } else l.naksOutstanding = (l.naksOutstanding ?? 0) + 1;
    this.markDirty(l);
  }

  /** An API audit advisory: a purge or a delete on a stream (a hint for the reason). */
  recordApiRemoval(stream: string, kind: "purge" | "delete", atMs: number, seq?: number): void {
    const list = this.hints.get(stream) ?? [];
    list.push({ kind, atMs, seq });
    while (list.length > MAX_HINTS || (list.length > 0 && atMs - list[0]!.atMs > HINT_TTL_MS)) list.shift();
    this.hints.set(stream, list);
  }

  /**
   * A delivered, unacknowledged message was removed from its stream (MSG_TERMINATED for a message
   * the stream no longer holds). Counted once per consumer and sequence. Returns the reason, or
   * undefined when it was counted before.
   */
  recordRemovedUnacked(
    stream: StreamState | undefined,
    streamName: string,
    consumer: string,
    seq: number,
    atMs: number,
    storedMs: number | undefined,
    firstSequenceNow: number | undefined,
  ): RemovalReason | undefined {
    const l = this.ledger(streamName, consumer);
    if (l.named.some(([s]) => s === seq)) return undefined;
    const hints = this.hintsFor(streamName, atMs - 60_000, atMs + 1);
    const reason = stream
      ? removalReason({
          maxAgeMs: stream.maxAgeMs,
          maxMsgs: stream.maxMsgs,
          maxBytes: stream.maxBytes,
          maxMsgsPerSubject: stream.maxMsgsPerSubject,
          multiSubject: stream.subjects.length > 1,
          front: firstSequenceNow === undefined || seq < firstSequenceNow,
          arrived: true,
          atMs,
          newestRemovedMs: storedMs,
          deleteSeen: hints.some((h) => h.kind === "delete" && h.seq === seq),
          purgeSeen: hints.some((h) => h.kind === "purge"),
        })
      : "unknown";
    this.count(l, reason, 1);
    this.name(l, seq, reason);
    return reason;
  }

  /** A poll: compare every durable consumer with its previous poll. */
  applyPoll(result: PollResult): void {
    const steps = this.applyPollSteps(result);
    while (!steps.next().done);
  }

  /**
   * applyPoll a slice of consumers at a time: each `yield` is a point where the event loop may run
   * (JetStreamModel.applyPollYielding). At 10,000 consumers the whole comparison took 40–90 ms.
   */
  *applyPollSteps(result: PollResult): Generator<void, void, void> {
    if (this.reconcile && this.tasks) {
      // Saved state names tasks lost whose own records may not have been saved with their end.
      this.reconcile = false;
      for (const l of this.ledgers.values())
        for (const [seq, reason] of l.named)
          this.tasks.markLost(l.stream, seq, reason, result.at, l.consumer);
    }
    const serverChanged =
      this.serverId !== undefined && result.serverId !== undefined && result.serverId !== this.serverId;
    if (result.serverId !== undefined) this.serverId = result.serverId;
    const arrivedIn = new Map<string, boolean>();
    for (const s of result.streams.values()) {
      const before = this.streams.get(s.name);
      arrivedIn.set(s.name, before !== undefined && s.lastSequence > before.extent.last);
    }
    // API audit hints of this interval (the server's clock: a second's slack).
    const since = (this.lastPollAt ?? result.at - HINT_TTL_MS) - 1_000;
    this.lastPollAt = result.at;
    let inSlice = 0;
    for (const [key, c] of result.consumers) {
      const stream = result.streams.get(c.stream);
      if (!stream || !c.durable || c.ackPolicy === "none") continue;
      this.applyConsumer(c, key, stream, result.at, arrivedIn.get(c.stream) ?? false, serverChanged, since);
      if (++inSlice === SLICE) {
        inSlice = 0;
        yield;
      }
    }
    for (const s of result.streams.values()) {
      const before = this.streams.get(s.name);
      const extent = extentOf(s);
      if (
        !before ||
        before.extent.first !== extent.first ||
        before.extent.last !== extent.last ||
        before.extent.deleted.length !== extent.deleted.length
      ) {
        this.streams.set(s.name, { stream: s.name, extent, firstMs: s.firstMs });
        this.dirtyStreams.add(s.name);
      }
    }
    // Consumers gone from the poll lose their series (as every consumer family does); their state
    // is kept a while, for one that comes back (a server recovering its streams lists them late).
    for (const [key, l] of this.ledgers) {
      if (result.consumers.has(key)) continue;
      this.version++;
      this.ledgers.delete(key);
      this.retired.set(key, { ledger: l, saved: this.saved.get(key), atMs: result.at });
      this.saved.delete(key);
    }
    for (const [key, r] of this.retired) if (result.at - r.atMs > RETIRED_MS) this.retired.delete(key);
  }

  private applyConsumer(
    c: ConsumerState,
    key: string,
    stream: StreamState,
    atMs: number,
    arrived: boolean,
    serverChanged: boolean,
    hintsSince: number,
  ): void {
    const l = this.ledger(c.stream, c.name, key);
    l.role = c.role;
    l.kind = c.kind;
    const point: ConsumerPoint = {
      delivered: c.deliveredStreamSequence,
      deliveredConsumer: c.deliveredConsumerSequence,
      ackFloor: c.ackFloorStreamSequence,
      ackPending: c.ackPending,
    };
    const before = this.streams.get(c.stream);
    const previous = l.point;
    const sameConsumer = isSameConsumer(l.createdMs, c.createdMs);
    const moved =
      !previous ||
      !sameConsumer ||
      previous.delivered !== point.delivered ||
      previous.deliveredConsumer !== point.deliveredConsumer ||
      previous.ackFloor !== point.ackFloor ||
      previous.ackPending !== point.ackPending;
    l.point = point;
    l.createdMs = c.createdMs;
    // Saved only when it moved: at 10,000 idle consumers a poll writes nothing.
    if (moved) this.markDirty(l, key);
    if (!previous || !before || !sameConsumer) return;
    const sp = before.extent;
    const sq = extentOf(stream);
    const whole = coversWholeStream(c, stream);
    const acked = l.ackedSincePoll;
    l.ackedSincePoll = undefined;
    const deliveries = point.deliveredConsumer - previous.deliveredConsumer;
    const knownRedeliveries = Math.max(0, Math.min(l.naksOutstanding ?? 0, deliveries));
    if (knownRedeliveries > 0) l.naksOutstanding = (l.naksOutstanding ?? 0) - knownRedeliveries;
    const loss = whole ? consumerLoss(previous, point, sp, sq, knownRedeliveries) : undefined;
    const tasks = this.tasks;
    const held = (seq: number) => isHeld(sq, seq);
    const matches = (subject: string) =>
      c.filterSubjects.length === 0 || c.filterSubjects.some((f) => subjectMatches(f, subject));
    const hints = this.hintsFor(c.stream, hintsSince, atMs + 1_000);
    const reasonFor = (lo: number, hi: number): RemovalReason =>
      removalReason({
        maxAgeMs: stream.maxAgeMs,
        maxMsgs: stream.maxMsgs,
        maxBytes: stream.maxBytes,
        maxMsgsPerSubject: stream.maxMsgsPerSubject,
        multiSubject: stream.subjects.length > 1,
        // Below the first sequence now: removed from the front. A removal reaching past the
        // stream's end (a purge of everything) is from the front too.
        front: lo + 1 < sq.first,
        arrived,
        atMs,
        newestRemovedMs: tasks?.newestStoredMs(c.stream, lo, Math.min(hi, sq.first - 1)),
        oldestBeforeMs: before.firstMs,
        purgeSeen: hints.some((h) => h.kind === "purge"),
        deleteSeen:
          hints.length > 0 &&
          hints.every((h) => h.kind === "delete") &&
          heldIn(sp, lo, hi) - heldIn(sq, lo, hi) <= hints.length,
      });

    /** Counts `count` lost in (lo, hi]; names up to that many open tasks gone there. */
    const lose = (lo: number, hi: number, count: number) => {
      if (count <= 0) return;
      const reason = reasonFor(lo, hi);
      this.count(l, reason, count);
      const gone = tasks?.openGone(c.stream, lo, hi, held, matches) ?? [];
      let named = 0;
      for (const seq of gone) {
        if (named >= count) break;
        if (l.named.some(([s]) => s === seq)) continue;
        this.name(l, seq, reason);
        tasks?.markLost(c.stream, seq, reason, atMs, c.name);
        named++;
      }
    };

    if (loss) {
      lose(loss.aheadLo, loss.aheadHi, loss.ahead);
      lose(loss.skippedLo, loss.skippedHi, loss.skipped);
      // Delivered and unacknowledged: one-at-a-time removals announce themselves (MSG_TERMINATED);
      // a purge, or expiry while the server restarted, does not, and is counted here.
      const reason = loss.deliveredGone > 0 ? reasonFor(loss.deliveredLo, loss.deliveredHi) : undefined;
      if (reason === "purge" || (serverChanged && loss.deliveredGone > 0)) {
        // Sequences of the delivered range that went in this interval (held at p, not at q).
        const inRange = (seq: number) =>
          seq > loss.deliveredLo && seq <= loss.deliveredHi && isHeld(sp, seq) && !isHeld(sq, seq);
        const namedInRange = l.named.filter(([seq]) => inRange(seq)).length;
        // Acknowledged after the last poll, before the purge: exact when every ack is sampled.
        const ackedInRange = (acked ?? []).filter(inRange).length;
        // Refused at their last delivery: pending at p, yet dead, not owed.
        const refusedInRange = (l.refusedLast ?? []).filter(inRange).length;
        lose(
          loss.deliveredLo,
          loss.deliveredHi,
          loss.deliveredUnackedAtMost - namedInRange - ackedInRange - refusedInRange,
        );
      }
    } else if (!whole && tasks) {
      // A filtered consumer of a multi-subject stream: the stream's counters mix subjects, so only
      // the tasks orgwatch read are counted, and only those the consumer never reached.
      const lo = Math.max(previous.delivered, point.delivered);
      const gone = tasks.openGone(c.stream, lo, sq.last, held, matches);
      for (const seq of gone) {
        if (l.named.some(([s]) => s === seq)) continue;
        const reason = reasonFor(seq - 1, seq);
        this.count(l, reason, 1);
        this.name(l, seq, reason);
        tasks.markLost(c.stream, seq, reason, atMs, c.name);
      }
    }
  }

  /** State changed since the last call, for persistence; `saved` makes the totals exported. */
  takeDirty(): { snapshot: LostWorkSnapshot; saved: () => void } {
    const consumers: ConsumerLedger[] = [];
    const totals = new Map<string, Partial<Record<RemovalReason, number>>>();
    for (const key of this.dirty) {
      const l = this.ledgers.get(key);
      if (!l) continue;
      consumers.push(structuredClone(l));
      totals.set(key, { ...l.totals });
    }
    this.dirty.clear();
    const streams: StreamLedger[] = [];
    for (const name of this.dirtyStreams) {
      const s = this.streams.get(name);
      if (s) streams.push(structuredClone(s));
    }
    this.dirtyStreams.clear();
    return {
      snapshot: { consumers, streams },
      saved: () => {
        // Bumped only when an exported total changed: a flush happens every second or so, and
        // each bump makes the exporter render the counter's 10,000 series again.
        let changed = false;
        for (const [key, t] of totals) {
          if (!this.ledgers.has(key)) continue;
          if (!sameTotals(this.saved.get(key), t)) changed = true;
          this.saved.set(key, t);
        }
        if (changed) this.version++;
      },
    };
  }

  /** State saved by an earlier orgwatch, before the first poll. */
  restore(snapshot: LostWorkSnapshot): void {
    for (const s of snapshot.streams) this.streams.set(s.stream, s);
    for (const l of snapshot.consumers) {
      const key = consumerKey(l.stream, l.consumer);
      // Advisories handled before the restore (dead letters) are kept.
      const early = this.ledgers.get(key);
      if (early) {
        for (const seq of early.dead) if (!l.dead.includes(seq)) l.dead.push(seq);
        for (const [reason, n] of Object.entries(early.totals) as [RemovalReason, number][])
          l.totals[reason] = (l.totals[reason] ?? 0) + n;
        l.named.push(...early.named.filter(([seq]) => !l.named.some(([s]) => s === seq)));
      }
      this.ledgers.set(key, l);
      this.saved.set(key, { ...l.totals });
    }
    this.reconcile = true;
  }

  private hintsFor(stream: string, fromMs: number, toMs: number): Hint[] {
    return (this.hints.get(stream) ?? []).filter((h) => h.atMs >= fromMs && h.atMs <= toMs);
  }

  /** One lookup when the ledger exists (every consumer of every poll); the retired only when not. */
  private ledger(stream: string, consumer: string, key = consumerKey(stream, consumer)): ConsumerLedger {
    const found = this.ledgers.get(key);
    if (found) return found;
    const back = this.retired.get(key);
    if (back) {
      this.retired.delete(key);
      this.ledgers.set(key, back.ledger);
      if (back.saved) this.saved.set(key, back.saved);
      this.version++;
      return back.ledger;
    }
    this.version++;
    const l: ConsumerLedger = {
      stream,
      consumer,
      role: "",
      kind: "other",
      createdMs: undefined,
      point: undefined,
      totals: {},
      named: [],
      dead: [],
    };
    this.ledgers.set(key, l);
    return l;
  }

  private count(l: ConsumerLedger, reason: RemovalReason, n: number): void {
    l.totals[reason] = (l.totals[reason] ?? 0) + n;
    this.version++;
    this.markDirty(l);
    if (!this.persisted) this.saved.set(consumerKey(l.stream, l.consumer), { ...l.totals });
  }

  private name(l: ConsumerLedger, seq: number, reason: RemovalReason): void {
    l.named.push([seq, reason]);
    if (l.named.length > MAX_NAMED) l.named.shift();
    this.markDirty(l);
  }

  private markDirty(l: ConsumerLedger, key = consumerKey(l.stream, l.consumer)): void {
    this.dirty.add(key);
  }
}
