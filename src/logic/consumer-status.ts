// Burrow-style consumer status: instead of a threshold on one number, a consumer is judged by how
// its lag and its ack floor moved over a window of the last polls. No I/O: the poller feeds it one
// sample per poll and keeps the returned history, which the next sample updates in place.
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

/**
 * A consumer's window of samples, kept by the poller from poll to poll and updated in place by
 * `observe`: at 10,000 consumers a window of sample objects copied every poll held 17 MB of the
 * heap (now 6 MB) and, with the ack histories, 78 MB after an hour (bench/histories.ts). The window
 * keeps only what the evaluation reads of each sample; the newest sample is kept whole.
 */
export interface ConsumerHistory {
  /** The newest sample. */
  last: ConsumerSample;
  /** Samples in the window, at most its size. */
  count: number;
  /**
   * The window's samples, oldest first, WINDOW_FIELDS numbers each: pending, ack pending, delivered
   * consumer sequence, ack floor consumer sequence. Its length is count × WINDOW_FIELDS: it grows to
   * the window's size, then shifts in place. (Made full-size and zeroed on first sight, it cost a
   * cold poll 27–40 ms at 30,000 consumers: `new Array(n).fill(0)` is not a fast path.)
   */
  readonly window: number[];
  /** Since when (epoch ms) the ack floor has had its current value, as far as orgwatch can tell. */
  floorSinceMs: number;
}

const WINDOW_FIELDS = 4;
const PENDING = 0;
const ACK_PENDING = 1;
const DELIVERED = 2;
const FLOOR = 3;

function writeSample(window: number[], index: number, s: ConsumerSample): void {
  const at = index * WINDOW_FIELDS;
  window[at + PENDING] = s.pending;
  window[at + ACK_PENDING] = s.ackPending;
  window[at + DELIVERED] = s.deliveredConsumerSequence;
  window[at + FLOOR] = s.ackFloorConsumerSequence;
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
 * returns it: the same history updated in place, or a new one for a new consumer (or a window of
 * another size). The window keeps the last `windowSize` samples.
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
  const previous = history?.last;
  if (
    !history ||
    !previous ||
    !isSameConsumer(previous.createdMs, sample.createdMs) ||
    // Kept with a larger window than asked for now: anew.
    history.count > windowSize
  ) {
    const neverAcked = sample.ackFloorConsumerSequence === 0 && sample.createdMs !== undefined;
    const floorSinceMs = sample.lastAckMs ?? (neverAcked ? sample.createdMs! : sample.atMs);
    const window: number[] = [];
    writeSample(window, 0, sample);
    return { last: sample, count: 1, window, floorSinceMs: Math.min(floorSinceMs, sample.atMs) };
  }
  if (floorMoved(previous, sample)) {
    const ackAfterPrevious = sample.lastAckMs !== undefined && sample.lastAckMs > previous.atMs;
    history.floorSinceMs = ackAfterPrevious ? Math.min(sample.lastAckMs!, sample.atMs) : sample.atMs;
  }
  if (history.count === windowSize) history.window.copyWithin(0, WINDOW_FIELDS);
  else history.count++;
  writeSample(history.window, history.count - 1, sample);
  history.last = sample;
  return history;
}

/** How long work has waited behind an unmoving ack floor, at the newest sample (ms; 0 when no work waits). */
export function stuckForMs(history: ConsumerHistory): number {
  const { last } = history;
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
  const { last, count, window } = history;
  if (!workWaits(last)) return "ok";

  const firstDelivered = window[DELIVERED]!;
  const firstFloor = window[FLOOR]!;
  let idleUndelivered = count >= windowSize;
  for (let at = 0; idleUndelivered && at < count * WINDOW_FIELDS; at += WINDOW_FIELDS) {
    idleUndelivered =
      window[at + PENDING]! > 0 &&
      window[at + ACK_PENDING] === 0 &&
      window[at + DELIVERED] === firstDelivered &&
      window[at + FLOOR] === firstFloor;
  }
  if (idleUndelivered) return "stopped";

  if (stuckForMs(history) > ackWaitMs) return "stalled";

  const acksAdvanced = last.ackFloorConsumerSequence > firstFloor;
  const firstLag = window[PENDING]! + window[ACK_PENDING]!;
  if (count >= 2 && acksAdvanced && lagOf(last) >= firstLag) return "lagging";

  return "ok";
}
