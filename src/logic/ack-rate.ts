// Backpressure (DESIGN.md §8): how fast a consumer's work is acknowledged, and how long its backlog
// takes at that pace. No I/O: the poller feeds one point per poll and keeps the returned history,
// which the next point updates in place.
//
// "Acknowledged" is work that left the consumer's lag by an ack: between two polls,
//   acked = lag_p − lag_q + arrivals − ended otherwise,
// where arrivals are the messages published to what the consumer reads (the stream's last sequence
// moving, for a consumer of the whole stream) and "ended otherwise" are its dead letters,
// terminations and lost messages in between. Lag is the server's own count, so acks above the ack
// floor count when they happen, a floor held by a dead letter does not hide the acks after it, and
// redeliveries (which do not change lag) are not counted twice. For a filtered consumer of a
// multi-subject stream the stream's arrivals mix subjects: the ack floor's consumer sequence is used
// instead (acks in order only).

import { isSameConsumer } from "./consumer-status.js";

export interface AckPoint {
  readonly atMs: number;
  /** Pending + ack pending. */
  readonly lag: number;
  /** What counts arrivals: the stream's last sequence, or the ack floor consumer sequence (filtered). */
  readonly arrivals: number;
  /** Dead letters + terminations + lost messages of the consumer so far. */
  readonly ended: number;
  readonly createdMs: number | undefined;
  /** Arrivals cannot be told (filtered consumer of a multi-subject stream): count floor moves. */
  readonly floorOnly: boolean;
}

/**
 * Kept by the poller from poll to poll and updated in place by `observeAcks`: with a sample a minute
 * over the default hour, 10,000 consumers' windows of [atMs, acked] pairs copied every poll held
 * 60 MB of the heap after an hour (bench/histories.ts); as one array of numbers per consumer, 15 MB.
 */
export interface AckHistory {
  last: AckPoint;
  /** Acknowledged so far, since the first point. */
  acked: number;
  /**
   * (atMs, acked) samples, oldest first, as pairs of numbers: [atMs₀, acked₀, atMs₁, acked₁, …];
   * one per `windowMs / SAMPLES` at most.
   */
  readonly samples: number[];
}

/** Samples kept over a window: enough for a smooth rate, bounded memory at 10,000 consumers. */
const SAMPLES = 60;

export function observeAcks(history: AckHistory | undefined, point: AckPoint, windowMs: number): AckHistory {
  if (
    !history ||
    !isSameConsumer(history.last.createdMs, point.createdMs) ||
    point.floorOnly !== history.last.floorOnly
  ) {
    return { last: point, acked: 0, samples: [point.atMs, 0] };
  }
  const p = history.last;
  const step = point.floorOnly
    ? point.arrivals - p.arrivals
    : p.lag - point.lag + (point.arrivals - p.arrivals) - (point.ended - p.ended);
  const acked = history.acked + Math.max(0, step);
  const { samples } = history;
  const spacing = windowMs / SAMPLES;
  // One sample per spacing: the newest replaces the last one while within it.
  if (samples.length > 2 && point.atMs - samples[samples.length - 4]! < spacing) samples.length -= 2;
  samples.push(point.atMs, acked);
  // Keep the newest sample at or before the window's start, so the rate covers the whole window.
  let drop = 0;
  while (samples.length - drop > 4 && samples[drop + 2]! <= point.atMs - windowMs) drop += 2;
  if (drop > 0) {
    samples.copyWithin(0, drop);
    samples.length -= drop;
  }
  history.last = point;
  history.acked = acked;
  return history;
}

/** Acknowledgements per second over the window (shorter while less history exists); undefined with one point. */
export function ackRatePerSecond(history: AckHistory): number | undefined {
  const { samples } = history;
  const firstAt = samples[0]!;
  const lastAt = samples[samples.length - 2]!;
  if (lastAt <= firstAt) return undefined;
  return (samples[samples.length - 1]! - samples[1]!) / ((lastAt - firstAt) / 1000);
}

/** Lag ÷ rate: 0 with no lag, +Inf with lag and no acks, undefined while the rate is unknown. */
export function drainEtaSeconds(lag: number, ratePerSecond: number | undefined): number | undefined {
  if (lag === 0) return 0;
  if (ratePerSecond === undefined) return undefined;
  return ratePerSecond > 0 ? lag / ratePerSecond : Infinity;
}
