import { describe, expect, it } from "vitest";
import {
  evaluateStatus,
  observe,
  stuckForMs,
  type ConsumerHistory,
  type ConsumerSample,
} from "../../src/logic/consumer-status.js";

const WINDOW = 4;
const ACK_WAIT_MS = 30 * 60_000;
const POLL_MS = 15_000;
const T0 = Date.UTC(2026, 0, 1);
const CREATED = T0 - 3600_000;

function sample(overrides: Partial<ConsumerSample> & { atMs: number }): ConsumerSample {
  return {
    pending: 0,
    ackPending: 0,
    deliveredConsumerSequence: 0,
    ackFloorStreamSequence: 0,
    ackFloorConsumerSequence: 0,
    lastAckMs: undefined,
    createdMs: CREATED,
    oldestUnackedMs: undefined,
    unackedDelivered: false,
    ...overrides,
  };
}

/** Feeds the samples one poll at a time and returns the history and the status after each. */
function run(samples: ConsumerSample[], ackWaitMs = ACK_WAIT_MS, windowSize = WINDOW) {
  let history: ConsumerHistory | undefined;
  const statuses: string[] = [];
  for (const s of samples) {
    history = observe(history, s, windowSize);
    statuses.push(evaluateStatus(history, ackWaitMs, windowSize));
  }
  return { history: history!, statuses };
}

/** One sample per poll: `lags[i]` messages waiting, `floors[i]` acknowledged so far. */
function progress(lags: number[], floors: number[], extra: Partial<ConsumerSample> = {}): ConsumerSample[] {
  return lags.map((lag, i) =>
    sample({
      atMs: T0 + i * POLL_MS,
      pending: Math.max(0, lag - 1),
      ackPending: Math.min(lag, 1),
      deliveredConsumerSequence: floors[i]! + Math.min(lag, 1),
      ackFloorConsumerSequence: floors[i]!,
      ackFloorStreamSequence: floors[i]!,
      lastAckMs: floors[i]! > 0 ? T0 + i * POLL_MS - 1000 : undefined,
      oldestUnackedMs: lag > 0 ? T0 + i * POLL_MS - 5000 : undefined,
      ...extra,
    }),
  );
}

describe("consumer status", () => {
  it("is ok when no work waits", () => {
    const { statuses } = run(progress([0, 0, 0, 0, 0], [7, 7, 7, 7, 7]));
    expect(statuses).toEqual(["ok", "ok", "ok", "ok", "ok"]);
  });

  it("is ok while the lag shrinks", () => {
    const { statuses } = run(progress([10, 8, 6, 4, 2], [0, 2, 4, 6, 8]));
    expect(statuses).toEqual(["ok", "ok", "ok", "ok", "ok"]);
  });

  it("is lagging when acks advance but the lag does not shrink over the window", () => {
    const { statuses } = run(progress([5, 6, 6, 7, 7, 7], [0, 2, 4, 6, 8, 10]));
    // One sample cannot judge a trend; from the second on the lag has not shrunk.
    expect(statuses).toEqual(["ok", "lagging", "lagging", "lagging", "lagging", "lagging"]);
  });

  it("judges the trend over the window only: a lag that has been shrinking again recovers", () => {
    const lags = [5, 9, 9, 9, 8, 7, 6];
    const { statuses } = run(progress(lags, [0, 1, 2, 3, 5, 7, 9]));
    // Window of 4: at the 7th poll the window is lags 9, 8, 7, 6 (shrinking).
    expect(statuses.at(-1)).toBe("ok");
    expect(statuses.slice(1, 4)).toEqual(["lagging", "lagging", "lagging"]);
  });

  it("is ok while a delivered message is in flight within its ack wait", () => {
    // An agent works on one task for 20 minutes of a 30-minute ack wait: the floor does not move.
    const samples = Array.from({ length: 81 }, (_, i) =>
      sample({
        atMs: T0 + i * POLL_MS,
        ackPending: 1,
        deliveredConsumerSequence: 1,
        oldestUnackedMs: T0 - 1000,
      }),
    );
    const { statuses } = run(samples.slice(0, 81));
    expect(new Set(statuses)).toEqual(new Set(["ok"]));
  });

  it("is stalled when work waits and the ack floor has not moved for longer than the ack wait", () => {
    const ackWaitMs = 2_000;
    const samples = [0, 1000, 2000, 2500, 3000].map((dt) =>
      sample({
        atMs: T0 + dt,
        ackPending: 1,
        pending: 2,
        deliveredConsumerSequence: 4,
        ackFloorConsumerSequence: 3,
        ackFloorStreamSequence: 3,
        oldestUnackedMs: T0 - 100,
        lastAckMs: T0 - 200,
      }),
    );
    const { statuses, history } = run(samples, ackWaitMs);
    // Floor stuck since the last ack at T0 - 200, but work cannot have waited longer than the
    // oldest unacknowledged message exists: stuck since T0 - 100.
    expect(stuckForMs(history)).toBe(3100);
    expect(statuses).toEqual(["ok", "ok", "stalled", "stalled", "stalled"]);
  });

  it("leaves stalled as soon as the ack floor moves", () => {
    const ackWaitMs = 2_000;
    const stuck = (dt: number, floor: number, lastAckMs?: number) =>
      sample({
        atMs: T0 + dt,
        ackPending: 1,
        pending: 4 - floor,
        deliveredConsumerSequence: floor + 1,
        ackFloorConsumerSequence: floor,
        ackFloorStreamSequence: floor,
        oldestUnackedMs: T0 - 100,
        lastAckMs,
      });
    const { statuses } = run(
      [stuck(0, 1, T0 - 5000), stuck(3000, 1, T0 - 5000), stuck(4000, 2, T0 + 3900)],
      ackWaitMs,
    );
    expect(statuses).toEqual(["ok", "stalled", "ok"]);
  });

  it("without server times, counts a stuck floor from when orgwatch first saw it", () => {
    const ackWaitMs = 2_000;
    const samples = [0, 1500, 2500].map((dt) =>
      sample({
        atMs: T0 + dt,
        ackPending: 1,
        deliveredConsumerSequence: 6,
        ackFloorConsumerSequence: 5,
        ackFloorStreamSequence: 5,
        createdMs: undefined,
      }),
    );
    const { statuses } = run(samples, ackWaitMs);
    expect(statuses).toEqual(["ok", "ok", "stalled"]);
  });

  it("counts a consumer that never acked from its creation", () => {
    const ackWaitMs = 2_000;
    const { statuses } = run(
      [sample({ atMs: T0, ackPending: 1, deliveredConsumerSequence: 1, createdMs: T0 - 10_000 })],
      ackWaitMs,
    );
    expect(statuses).toEqual(["stalled"]);
  });

  it("is stopped when work waits undelivered and nothing is delivered or acked for a full window", () => {
    const samples = [0, 1, 2, 3, 4].map((i) =>
      sample({
        atMs: T0 + i * POLL_MS,
        pending: 4,
        deliveredConsumerSequence: 2,
        ackFloorConsumerSequence: 2,
        ackFloorStreamSequence: 2,
        lastAckMs: T0 - 1000,
        oldestUnackedMs: T0 - 500,
      }),
    );
    const { statuses } = run(samples);
    expect(statuses).toEqual(["ok", "ok", "ok", "stopped", "stopped"]);
  });

  it("is not stopped when a delivery happened within the window", () => {
    const samples = [0, 1, 2, 3].map((i) =>
      sample({
        atMs: T0 + i * POLL_MS,
        pending: 4,
        deliveredConsumerSequence: i === 3 ? 3 : 2,
        ackFloorConsumerSequence: 2,
        ackFloorStreamSequence: 2,
        lastAckMs: T0 - 1000,
      }),
    );
    expect(run(samples).statuses.at(-1)).toBe("ok");
  });

  it("prefers stopped over stalled when nobody consumes for a window longer than the ack wait", () => {
    const samples = [0, 1, 2, 3].map((i) =>
      sample({
        atMs: T0 + i * 1000,
        pending: 1,
        deliveredConsumerSequence: 0,
        createdMs: T0 - 5000,
      }),
    );
    expect(run(samples, 2000).statuses).toEqual(["stalled", "stalled", "stalled", "stopped"]);
  });

  it("does not call healthy a consumer whose dead message holds the floor with no lag (nats-server 2.9)", () => {
    // 2.9: a message that exhausted max-deliver leaves pending and ack pending at 0, but the ack
    // floor stays below it until a later message is acknowledged.
    const ackWaitMs = 2_000;
    const samples = [0, 1000, 3000].map((dt) =>
      sample({
        atMs: T0 + dt,
        pending: 0,
        ackPending: 0,
        deliveredConsumerSequence: 3,
        ackFloorConsumerSequence: 0,
        ackFloorStreamSequence: 0,
        createdMs: T0 - 500,
        oldestUnackedMs: T0 - 400,
        unackedDelivered: true,
      }),
    );
    const { statuses, history } = run(samples, ackWaitMs);
    expect(stuckForMs(history)).toBe(3400);
    expect(statuses).toEqual(["ok", "ok", "stalled"]);
  });

  it("starts a new history for a consumer deleted and re-created under the same name", () => {
    const ackWaitMs = 2_000;
    const old = sample({ atMs: T0, ackPending: 1, deliveredConsumerSequence: 1, createdMs: T0 - 10_000 });
    const renewed = sample({
      atMs: T0 + 1000,
      ackPending: 1,
      deliveredConsumerSequence: 1,
      createdMs: T0 + 500,
    });
    const { history, statuses } = run([old, renewed], ackWaitMs);
    expect(history.count).toBe(1);
    expect(history.last).toBe(renewed);
    expect(statuses).toEqual(["stalled", "ok"]);
  });

  it("keeps at most the window's size of samples, in place", () => {
    const polls = progress([1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5, 6]);
    const first = observe(undefined, polls[0]!, WINDOW);
    const { history } = run(polls);
    expect(history.count).toBe(WINDOW);
    expect(history.window).toHaveLength(WINDOW * 4);
    // Oldest first: the fourth poll's (floor 3) to the seventh's; four numbers a sample, the floor last.
    expect([3, 7, 11, 15].map((i) => history.window[i])).toEqual([3, 4, 5, 6]);
    // The same consumer's history is updated, not copied.
    expect(observe(first, polls[1]!, WINDOW)).toBe(first);
  });
});
