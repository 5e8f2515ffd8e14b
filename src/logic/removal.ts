// Work that left a stream before the consumer that owed it an ack acknowledged it: which sequences
// went, and why. Pure arithmetic on two polls of one consumer and its stream (DESIGN.md §7 and
// shared/reference/jetstream-removal.md): no JetStream version has a "message removed" event, but
// between two polls every sequence a stream held is either still held or gone for good, and a
// consumer delivers in sequence order, so the gaps can be counted exactly.
//
// Vocabulary: S = delivered stream sequence, C = delivered consumer sequence (every delivery,
// redeliveries included), A = ack floor stream sequence, F / L = the stream's first / last sequence.
// A consumer owes an ack for every sequence above A it has not acknowledged; a sequence above S was
// never delivered to it.

export const REMOVAL_REASONS = ["max_age", "limits", "purge", "delete", "unknown"] as const;
export type RemovalReason = (typeof REMOVAL_REASONS)[number];

/** The sequences a stream holds at one poll: [first, last] without the deleted ones. */
export interface StreamExtent {
  readonly first: number;
  readonly last: number;
  /** Deleted sequences inside [first, last] (interior gaps), ascending. */
  readonly deleted: readonly number[];
}

/** Index of the first element of a sorted array that is >= value. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many sequences in (lo, hi] the stream holds. */
export function heldIn(e: StreamExtent, lo: number, hi: number): number {
  const from = Math.max(lo + 1, e.first, 1);
  const to = Math.min(hi, e.last);
  if (to < from) return 0;
  const deleted = lowerBound(e.deleted, to + 1) - lowerBound(e.deleted, from);
  return to - from + 1 - deleted;
}

export function isHeld(e: StreamExtent, seq: number): boolean {
  return heldIn(e, seq - 1, seq) === 1;
}

/**
 * Sequences in (lo, hi] that were held at p or published after it, and are not held at q: the ones
 * that went between the two polls. Sequences never come back, so this is a difference of counts.
 */
export function goneBetween(p: StreamExtent, q: StreamExtent, lo: number, hi: number): number {
  const top = Math.min(hi, q.last);
  if (top <= lo) return 0;
  // Published after p (above p.last): all of them were held once.
  const before = heldIn(p, lo, Math.min(top, p.last)) + Math.max(0, top - Math.max(lo, p.last));
  return Math.max(0, before - heldIn(q, lo, top));
}

/** One poll of one consumer, as far as removals go. */
export interface ConsumerPoint {
  readonly delivered: number;
  readonly deliveredConsumer: number;
  readonly ackFloor: number;
  readonly ackPending: number;
}

export interface ConsumerLoss {
  /** Never delivered, removed before the consumer reached them: (max(S_p, S_q), last] that went. */
  readonly aheadLo: number;
  readonly aheadHi: number;
  readonly ahead: number;
  /**
   * Skipped: in (S_p, S_q], went before their delivery. The consumer moved over them without a
   * delivery each: sequences passed − deliveries (C_q − C_p). Redeliveries in the same interval
   * would hide as many skips: known ones are passed in; an unknown one is the documented bound.
   */
  readonly skippedLo: number;
  readonly skippedHi: number;
  readonly skipped: number;
  /** Delivered by p and not acknowledged at p (A_p, S_p], gone at q: lost or acked-then-removed. */
  readonly deliveredLo: number;
  readonly deliveredHi: number;
  readonly deliveredGone: number;
  /** Of those, at most this many were unacknowledged (ack pending at p, less the ones still pending). */
  readonly deliveredUnackedAtMost: number;
}

/**
 * What went between polls p and q of one consumer that covers its whole stream. Undefined when the
 * two polls cannot be compared (the stream was recreated: its last sequence went down).
 */
export function consumerLoss(
  cp: ConsumerPoint,
  cq: ConsumerPoint,
  sp: StreamExtent,
  sq: StreamExtent,
  knownRedeliveries = 0,
): ConsumerLoss | undefined {
  if (sq.last < sp.last || cq.delivered < cp.delivered || cq.deliveredConsumer < cp.deliveredConsumer)
    return undefined;
  const aheadLo = Math.max(cp.delivered, cq.delivered);
  const ahead = goneBetween(sp, sq, aheadLo, sq.last);
  const skippedLo = cp.delivered;
  const skippedHi = cq.delivered;
  const goneInSkipRange = goneBetween(sp, sq, skippedLo, skippedHi);
  let skipped = 0;
  if (goneInSkipRange > 0) {
    // Every sequence the consumer passed was delivered once or skipped; those already gone at p
    // were counted then. So skipped = the rest − new deliveries (C_q − C_p − redeliveries).
    const passed =
      heldIn(sp, skippedLo, Math.min(skippedHi, sp.last)) +
      Math.max(0, skippedHi - Math.max(skippedLo, sp.last));
    const newDeliveries = Math.max(0, cq.deliveredConsumer - cp.deliveredConsumer - knownRedeliveries);
    skipped = Math.min(goneInSkipRange, Math.max(0, passed - newDeliveries));
  }
  const deliveredLo = cp.ackFloor;
  const deliveredHi = cp.delivered;
  const deliveredGone = goneBetween(sp, sq, deliveredLo, deliveredHi);
  const newDeliveries = Math.max(0, cq.deliveredConsumer - cp.deliveredConsumer);
  // Pending at q from before: at most the old delivered messages the stream still holds (a pending
  // entry for a message gone is a phantom the server drops later: 2.9 after a restart).
  const stillPendingOld = Math.min(
    Math.max(0, cq.ackPending - newDeliveries),
    heldIn(sq, deliveredLo, Math.min(deliveredHi, sq.last)),
  );
  const deliveredUnackedAtMost = Math.min(deliveredGone, Math.max(0, cp.ackPending - stillPendingOld));
  return {
    aheadLo,
    aheadHi: sq.last,
    ahead,
    skippedLo,
    skippedHi,
    skipped,
    deliveredLo,
    deliveredHi,
    deliveredGone,
    deliveredUnackedAtMost,
  };
}

/** What is known about a removal when its reason is decided. */
export interface RemovalContext {
  readonly maxAgeMs: number;
  /** -1 or 0: no limit. */
  readonly maxMsgs: number;
  readonly maxBytes: number;
  readonly maxMsgsPerSubject: number;
  readonly multiSubject: boolean;
  /** Removed from the stream's front (below the first sequence now) rather than an interior gap. */
  readonly front: boolean;
  /** Messages were published to the stream between the polls (limits remove only to make room). */
  readonly arrived: boolean;
  /** Time of the poll that saw the removal (epoch ms). */
  readonly atMs: number;
  /** Newest stored time among the removed messages, when known (tasks orgwatch read). */
  readonly newestRemovedMs?: number;
  /** Stored time of the stream's first message at the previous poll: no removed one is older. */
  readonly oldestBeforeMs?: number;
  /** An API audit advisory for the stream named a purge / a delete of it in the interval. */
  readonly purgeSeen?: boolean;
  readonly deleteSeen?: boolean;
}

/** Tolerance between the server's clock (stored times, expiry) and orgwatch's. */
const CLOCK_SLACK_MS = 2_000;

const limited = (n: number) => n > 0;

/**
 * Why messages left a stream. Exact where only one cause can explain the removal; `unknown` where
 * two could (max-age and a count limit both in force, both possible in the interval).
 */
export function removalReason(c: RemovalContext): RemovalReason {
  if (c.deleteSeen) return "delete";
  if (c.purgeSeen) return "purge";
  if (!c.front) return c.multiSubject && limited(c.maxMsgsPerSubject) ? "unknown" : "delete";
  const removedBy = c.newestRemovedMs ?? c.oldestBeforeMs;
  const ageCould =
    c.maxAgeMs > 0 && (removedBy === undefined || removedBy + c.maxAgeMs <= c.atMs + CLOCK_SLACK_MS);
  const limitsCould =
    c.arrived && (limited(c.maxMsgs) || limited(c.maxBytes) || limited(c.maxMsgsPerSubject));
  if (ageCould && limitsCould) return "unknown";
  if (ageCould) return "max_age";
  if (limitsCould) return "limits";
  // Nothing the stream's own limits do explains it: an API call did (a purge, or a delete of the
  // first messages; told apart by the audit advisory when orgwatch was listening).
  return "purge";
}

/**
 * The reason a 2.10.4+ server gives on MSG_TERMINATED for a removed message, mapped to ours; undefined
 * when the text is an agent's own `term(reason)` (or none: nats-server 2.9).
 */
export function serverRemovalReason(text: string | undefined): "removed" | "limits" | undefined {
  if (text === undefined) return undefined;
  if (text === "Unacknowledged message was deleted") return "removed";
  if (text === "Message deleted by stream limits") return "limits";
  return undefined;
}
