// Backpressure (DESIGN.md §8): how fast a consumer's work is acknowledged, and how long its backlog
// takes at that pace. Pure: the poller feeds one point per poll and keeps the returned history.
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

export interface AckHistory {
  readonly last: AckPoint;
  /** Acknowledged so far, since the first point. */
  readonly acked: number;
  /** (atMs, acked) samples, oldest first, one per `windowMs / SAMPLES` at most. */
  readonly samples: readonly (readonly [number, number])[];
}

/** Samples kept over a window: enough for a smooth rate, bounded memory at 10,000 consumers. */
const SAMPLES = 60;

export function observeAcks(history: AckHistory | undefined, point: AckPoint, windowMs: number): AckHistory {
  if (
    !history ||
    !isSameConsumer(history.last.createdMs, point.createdMs) ||
    point.floorOnly !== history.last.floorOnly
  ) {
    return { last: point, acked: 0, samples: [[point.atMs, 0]] };
  }
  const p = history.last;
  const step = point.floorOnly
    ? point.arrivals - p.arrivals
    : p.lag - point.lag + (point.arrivals - p.arrivals) - (point.ended - p.ended);
  const acked = history.acked + Math.max(0, step);
  const samples = [...history.samples];
  const spacing = windowMs / SAMPLES;
  // One sample per spacing: the newest replaces the last one while within it.
  if (samples.length > 1 && point.atMs - samples[samples.length - 2]![0] < spacing) samples.pop();
  samples.push([point.atMs, acked]);
  // Keep the newest sample at or before the window's start, so the rate covers the whole window.
  while (samples.length > 2 && samples[1]![0] <= point.atMs - windowMs) samples.shift();
  return { last: point, acked, samples };
}

/** Acknowledgements per second over the window (shorter while less history exists); undefined with one point. */
export function ackRatePerSecond(history: AckHistory): number | undefined {
  const first = history.samples[0]!;
  const last = history.samples[history.samples.length - 1]!;
  if (last[0] <= first[0]) return undefined;
  return (last[1] - first[1]) / ((last[0] - first[0]) / 1000);
}

/** Lag ÷ rate: 0 with no lag, +Inf with lag and no acks, undefined while the rate is unknown. */
export function drainEtaSeconds(lag: number, ratePerSecond: number | undefined): number | undefined {
  if (lag === 0) return 0;
  if (ratePerSecond === undefined) return undefined;
  return ratePerSecond > 0 ? lag / ratePerSecond : Infinity;
}
