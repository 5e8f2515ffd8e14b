// Burrow-style consumer status: instead of a threshold on one number, a consumer is judged by how
// its lag and its ack floor moved over a window of the last polls. Pure: the poller feeds it one
// sample per poll and keeps the returned history.
//
// Vocabulary used below:
// - lag: pending (not yet delivered) + ack pending (delivered, not acknowledged).
// - work waits: lag > 0, or a delivered message below the delivered sequence is still not
//   acknowledged. The second case is nats-server 2.9's: a message that exhausted max-deliver leaves
//   both counts at 0 but keeps the ack floor below it forever; the poller detects it by reading the
//   message after the ack floor (see `unackedDelivered`).
// - the floor is stuck since: the time the ack floor took its current value, as far as orgwatch can
//   tell (see `observe`).
//
// Statuses, evaluated in this order on the newest sample (the first that applies wins):
// - `ok`      no work waits.
// - `stopped` nobody is consuming: over a full window of polls work waited undelivered
//             (pending > 0), nothing was in flight (ack pending 0), and neither a delivery nor an
//             ack happened (delivered and ack-floor consumer sequences unchanged). A message in
//             flight does not count as stopped, because agents legitimately hold one task for many
//             minutes; such a consumer becomes `stalled` once its ack wait is exceeded.
// - `stalled` work waits and the ack floor has not moved for longer than the consumer's ack wait,
//             counted from the later of "the floor is stuck since" and the stored time of the
//             oldest unacknowledged message (work cannot have waited longer than that message
//             exists). Past the ack wait the server has redelivered or given up on the message
//             at the floor, so a working consumer would have moved the floor: this is a poison
//             message, a hung agent, or (on 2.9) a message that exhausted max-deliver.
// - `lagging` the consumer is making progress (its ack floor advanced within the window) but its
//             lag did not shrink over the window (newest lag >= oldest lag of the window).
// - `ok`      anything else: lag shrinking over the window, work in flight within its ack wait
//             without an ack yet, or too few polls to judge.

export const CONSUMER_STATUSES = ["ok", "lagging", "stalled", "stopped"] as const;
export type ConsumerStatus = (typeof CONSUMER_STATUSES)[number];

/** What one poll saw of one consumer. */
export interface ConsumerSample {
  /** When the poll started (epoch ms, orgwatch's clock). */
  readonly atMs: number;
  readonly pending: number;
  readonly ackPending: number;
  readonly deliveredConsumerSequence: number;
  readonly ackFloorStreamSequence: number;
  readonly ackFloorConsumerSequence: number;
  /** Last ack time as the server reports it (epoch ms), when it does. */
  readonly lastAckMs: number | undefined;
  /** Consumer creation time (epoch ms), when known: a different value means a new consumer. */
  readonly createdMs: number | undefined;
  /** Stored time of the oldest unacknowledged message (epoch ms), when there is one and it was read. */
  readonly oldestUnackedMs: number | undefined;
  /** True when a delivered message is unacknowledged although lag is 0 (max-deliver exhausted on 2.9). */
  readonly unackedDelivered: boolean;
}

export interface ConsumerHistory {
  /** The last samples, oldest first, at most the window's size. */
  readonly samples: readonly ConsumerSample[];
  /** Since when (epoch ms) the ack floor has had its current value, as far as orgwatch can tell. */
  readonly floorSinceMs: number;
}

/**
 * Whether two creation times are the same consumer's. A consumer deleted and re-created is seconds
 * apart at the least; the time a server reports after a restart can differ in its last millisecond
 * (2.9 stores it less precisely on disk).
 */
export function isSameConsumer(aCreatedMs: number | undefined, bCreatedMs: number | undefined): boolean {
  if (aCreatedMs === bCreatedMs) return true;
  return aCreatedMs !== undefined && bCreatedMs !== undefined && Math.abs(aCreatedMs - bCreatedMs) < 1_000;
}

export function lagOf(s: Pick<ConsumerSample, "pending" | "ackPending">): number {
  return s.pending + s.ackPending;
}

function workWaits(s: ConsumerSample): boolean {
  return lagOf(s) > 0 || s.unackedDelivered;
}

function floorMoved(a: ConsumerSample, b: ConsumerSample): boolean {
  return (
    a.ackFloorConsumerSequence !== b.ackFloorConsumerSequence ||
    a.ackFloorStreamSequence !== b.ackFloorStreamSequence
  );
}

/**
 * Adds a sample to a consumer's history (undefined for a consumer seen for the first time) and
 * returns the new history; the window keeps the last `windowSize` samples.
 *
 * When the floor is stuck since: on first sight, the server's last ack time if it gives one (the
 * floor moves only on acks), else the consumer's creation time if it never acked anything (ack floor
 * consumer sequence 0), else the time of this poll (all orgwatch knows). When a poll sees the floor
 * move: the server's last ack time if it falls after the previous poll, else the time of this poll.
 */
export function observe(
  history: ConsumerHistory | undefined,
  sample: ConsumerSample,
  windowSize: number,
): ConsumerHistory {
  const previous = history?.samples[history.samples.length - 1];
  const sameConsumer = previous !== undefined && isSameConsumer(previous.createdMs, sample.createdMs);
  if (!history || !previous || !sameConsumer) {
    const neverAcked = sample.ackFloorConsumerSequence === 0 && sample.createdMs !== undefined;
    const floorSinceMs = sample.lastAckMs ?? (neverAcked ? sample.createdMs! : sample.atMs);
    return { samples: [sample], floorSinceMs: Math.min(floorSinceMs, sample.atMs) };
  }
  let floorSinceMs = history.floorSinceMs;
  if (floorMoved(previous, sample)) {
    const ackAfterPrevious = sample.lastAckMs !== undefined && sample.lastAckMs > previous.atMs;
    floorSinceMs = ackAfterPrevious ? Math.min(sample.lastAckMs!, sample.atMs) : sample.atMs;
  }
  const samples = [...history.samples, sample].slice(-windowSize);
  return { samples, floorSinceMs };
}

/** How long work has waited behind an unmoving ack floor, at the newest sample (ms; 0 when no work waits). */
export function stuckForMs(history: ConsumerHistory): number {
  const last = history.samples[history.samples.length - 1]!;
  if (!workWaits(last)) return 0;
  const since = Math.max(history.floorSinceMs, last.oldestUnackedMs ?? history.floorSinceMs);
  return Math.max(0, last.atMs - since);
}

/** The status of the consumer at its newest sample; see the top of this file for each status. */
export function evaluateStatus(
  history: ConsumerHistory,
  ackWaitMs: number,
  windowSize: number,
): ConsumerStatus {
  const { samples } = history;
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  if (!workWaits(last)) return "ok";

  const fullWindow = samples.length >= windowSize;
  const idleUndelivered = samples.every(
    (s) =>
      s.pending > 0 &&
      s.ackPending === 0 &&
      s.deliveredConsumerSequence === first.deliveredConsumerSequence &&
      s.ackFloorConsumerSequence === first.ackFloorConsumerSequence,
  );
  if (fullWindow && idleUndelivered) return "stopped";

  if (stuckForMs(history) > ackWaitMs) return "stalled";

  const acksAdvanced = last.ackFloorConsumerSequence > first.ackFloorConsumerSequence;
  if (samples.length >= 2 && acksAdvanced && lagOf(last) >= lagOf(first)) return "lagging";

  return "ok";
}
