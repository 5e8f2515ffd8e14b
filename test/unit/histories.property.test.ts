// The consumer-status window and the ack-rate samples are kept compactly and updated in place
// (logic/consumer-status.ts, logic/ack-rate.ts). Over arbitrary runs of polls (consumers re-created,
// floors moving and stuck, lag up and down, polls closer and further apart than the sample spacing)
// they must give what the definitions give over the plain list of every poll's sample: the same
// status, time stuck, acknowledged count and rate after every poll.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ackRatePerSecond, observeAcks, type AckHistory, type AckPoint } from "../../src/logic/ack-rate.js";
import {
  evaluateStatus,
  isSameConsumer,
  lagOf,
  observe,
  stuckForMs,
  type ConsumerHistory,
  type ConsumerSample,
} from "../../src/logic/consumer-status.js";

const T0 = Date.UTC(2026, 0, 1);

/** The status definitions of logic/consumer-status.ts over every sample since the consumer appeared. */
function referenceStatus(all: readonly ConsumerSample[], ackWaitMs: number, windowSize: number) {
  // The samples of the consumer as it is now: since its last re-creation.
  let start = 0;
  for (let i = 1; i < all.length; i++)
    if (!isSameConsumer(all[i - 1]!.createdMs, all[i]!.createdMs)) start = i;
  const life = all.slice(start);
  const firstSeen = life[0]!;
  const neverAcked = firstSeen.ackFloorConsumerSequence === 0 && firstSeen.createdMs !== undefined;
  let floorSinceMs = Math.min(
    firstSeen.lastAckMs ?? (neverAcked ? firstSeen.createdMs! : firstSeen.atMs),
    firstSeen.atMs,
  );
  for (let i = 1; i < life.length; i++) {
    const [a, b] = [life[i - 1]!, life[i]!];
    if (
      a.ackFloorConsumerSequence !== b.ackFloorConsumerSequence ||
      a.ackFloorStreamSequence !== b.ackFloorStreamSequence
    ) {
      floorSinceMs =
        b.lastAckMs !== undefined && b.lastAckMs > a.atMs ? Math.min(b.lastAckMs, b.atMs) : b.atMs;
    }
  }
  const window = life.slice(-windowSize);
  const first = window[0]!;
  const last = window[window.length - 1]!;
  const waits = lagOf(last) > 0 || last.unackedDelivered;
  const stuck = waits
    ? Math.max(0, last.atMs - Math.max(floorSinceMs, last.oldestUnackedMs ?? floorSinceMs))
    : 0;
  let status: string;
  if (!waits) status = "ok";
  else if (
    window.length >= windowSize &&
    window.every(
      (s) =>
        s.pending > 0 &&
        s.ackPending === 0 &&
        s.deliveredConsumerSequence === first.deliveredConsumerSequence &&
        s.ackFloorConsumerSequence === first.ackFloorConsumerSequence,
    )
  )
    status = "stopped";
  else if (stuck > ackWaitMs) status = "stalled";
  else if (
    window.length >= 2 &&
    last.ackFloorConsumerSequence > first.ackFloorConsumerSequence &&
    lagOf(last) >= lagOf(first)
  )
    status = "lagging";
  else status = "ok";
  return { status, stuck };
}

/** The ack-rate definitions of logic/ack-rate.ts with the samples as a list of pairs, copied each poll. */
interface ReferenceAcks {
  readonly last: AckPoint;
  readonly acked: number;
  readonly samples: readonly (readonly [number, number])[];
}

function referenceAcks(h: ReferenceAcks | undefined, point: AckPoint, windowMs: number): ReferenceAcks {
  if (!h || !isSameConsumer(h.last.createdMs, point.createdMs) || point.floorOnly !== h.last.floorOnly) {
    return { last: point, acked: 0, samples: [[point.atMs, 0]] };
  }
  const p = h.last;
  const step = point.floorOnly
    ? point.arrivals - p.arrivals
    : p.lag - point.lag + (point.arrivals - p.arrivals) - (point.ended - p.ended);
  const acked = h.acked + Math.max(0, step);
  const samples = [...h.samples];
  if (samples.length > 1 && point.atMs - samples[samples.length - 2]![0] < windowMs / 60) samples.pop();
  samples.push([point.atMs, acked]);
  while (samples.length > 2 && samples[1]![0] <= point.atMs - windowMs) samples.shift();
  return { last: point, acked, samples };
}

function referenceRate(h: ReferenceAcks): number | undefined {
  const first = h.samples[0]!;
  const last = h.samples[h.samples.length - 1]!;
  return last[0] <= first[0] ? undefined : (last[1] - first[1]) / ((last[0] - first[0]) / 1000);
}

/** One poll's change: time passing, work arriving and leaving, the floor moving or not, a re-creation. */
const pollStep = fc.record({
  dtMs: fc.oneof(fc.constant(15_000), fc.integer({ min: 1, max: 400_000 })),
  arrive: fc.nat({ max: 5 }),
  deliver: fc.nat({ max: 5 }),
  ack: fc.nat({ max: 5 }),
  ended: fc.nat({ max: 2 }),
  recreate: fc.oneof({ arbitrary: fc.constant(false), weight: 15 }, fc.constant(true)),
  reportsAckTime: fc.boolean(),
  floorOnly: fc.oneof({ arbitrary: fc.constant(false), weight: 15 }, fc.constant(true)),
  unackedDelivered: fc.oneof({ arbitrary: fc.constant(false), weight: 10 }, fc.constant(true)),
});

describe("consumer-status window and ack-rate samples kept in place", () => {
  it("give the definitions' status, time stuck, acks and rate after every poll", () => {
    fc.assert(
      fc.property(
        fc.array(pollStep, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.integer({ min: 60_000, max: 7_200_000 }),
        (steps, windowSize, ackWaitMs, windowMs) => {
          let at = T0;
          let created = T0 - 3_600_000;
          let pending = 0;
          let ackPending = 0;
          let delivered = 0;
          let floor = 0;
          let published = 0;
          let ended = 0;
          let lastAck: number | undefined;
          const all: ConsumerSample[] = [];
          let history: ConsumerHistory | undefined;
          let acks: AckHistory | undefined;
          let reference: ReferenceAcks | undefined;
          for (const s of steps) {
            at += s.dtMs;
            if (s.recreate) {
              created = at - 1;
              [pending, ackPending, delivered, floor, ended] = [0, 0, 0, 0, 0];
              lastAck = undefined;
            }
            pending += s.arrive;
            published += s.arrive;
            const d = Math.min(s.deliver, pending);
            pending -= d;
            ackPending += d;
            delivered += d;
            const a = Math.min(s.ack, ackPending);
            ackPending -= a;
            floor += a;
            if (a > 0) lastAck = at - 1;
            ended += s.ended;
            const sample: ConsumerSample = {
              atMs: at,
              pending,
              ackPending,
              deliveredConsumerSequence: delivered,
              ackFloorStreamSequence: floor,
              ackFloorConsumerSequence: floor,
              lastAckMs: s.reportsAckTime ? lastAck : undefined,
              createdMs: created,
              oldestUnackedMs: pending + ackPending > 0 ? at - 5_000 : undefined,
              unackedDelivered: pending + ackPending === 0 && s.unackedDelivered,
            };
            all.push(sample);
            history = observe(history, sample, windowSize);
            const want = referenceStatus(all, ackWaitMs, windowSize);
            expect(evaluateStatus(history, ackWaitMs, windowSize)).toBe(want.status);
            expect(stuckForMs(history)).toBe(want.stuck);

            const point: AckPoint = {
              atMs: at,
              lag: pending + ackPending,
              arrivals: s.floorOnly ? floor : published,
              ended,
              createdMs: created,
              floorOnly: s.floorOnly,
            };
            acks = observeAcks(acks, point, windowMs);
            reference = referenceAcks(reference, point, windowMs);
            expect(acks.acked).toBe(reference.acked);
            expect(acks.samples).toEqual(reference.samples.flat());
            expect(ackRatePerSecond(acks)).toBe(referenceRate(reference));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
