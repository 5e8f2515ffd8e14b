// The lost-work arithmetic (logic/removal.ts): exact counts from two polls of a consumer and its
// stream, held against a simulated stream whose truth is known.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  consumerLoss,
  goneBetween,
  heldIn,
  removalReason,
  serverRemovalReason,
  type RemovalContext,
  type StreamExtent,
} from "../../src/logic/removal.js";

const extent = (first: number, last: number, deleted: number[] = []): StreamExtent => ({
  first,
  last,
  deleted,
});

describe("held and gone sequences", () => {
  it("counts held sequences in a range, interior deletes excluded", () => {
    expect(heldIn(extent(3, 10, [5, 7]), 0, 10)).toBe(6);
    expect(heldIn(extent(3, 10, [5, 7]), 4, 6)).toBe(1);
    // An empty stream after a purge: first = last + 1.
    expect(heldIn(extent(11, 10), 0, 10)).toBe(0);
    expect(heldIn(extent(0, 0), 0, 10)).toBe(0);
  });

  it("counts what went between two polls, published after the first one included", () => {
    // p held 1..5; q holds 4..8 without 6: 1-3 went, 6 was published and deleted meanwhile.
    expect(goneBetween(extent(1, 5), extent(4, 8, [6]), 0, 8)).toBe(4);
    expect(goneBetween(extent(1, 5), extent(4, 8, [6]), 3, 8)).toBe(1);
  });
});

describe("a consumer's loss between two polls", () => {
  it("names the reference's case: three tasks never picked up expire", () => {
    const loss = consumerLoss(
      { delivered: 0, deliveredConsumer: 0, ackFloor: 0, ackPending: 0 },
      { delivered: 0, deliveredConsumer: 0, ackFloor: 0, ackPending: 0 },
      extent(1, 3),
      extent(4, 3),
    )!;
    expect(loss.ahead).toBe(3);
    expect(loss.skipped).toBe(0);
    expect(loss.deliveredGone).toBe(0);
  });

  it("sees skipped messages: the consumer jumped over sequences removed before their delivery", () => {
    // 2.9.10 as in jetstream-removal.md: delivered 3/3, then 4-5 expired, next delivery 6 → 4/6... here
    // S 3 → 6 and C 3 → 4: one delivery for three sequences, two of them gone.
    const loss = consumerLoss(
      { delivered: 3, deliveredConsumer: 3, ackFloor: 3, ackPending: 0 },
      { delivered: 6, deliveredConsumer: 4, ackFloor: 3, ackPending: 1 },
      extent(1, 6),
      extent(6, 6),
    )!;
    expect(loss.skipped).toBe(2);
    expect(loss.ahead).toBe(0);
  });

  it("bounds delivered messages gone by what was unacknowledged at the first poll", () => {
    // Delivered 1-4, floor 1, acked 3 above the floor: 2 and 4 pending. All gone.
    const loss = consumerLoss(
      { delivered: 4, deliveredConsumer: 4, ackFloor: 1, ackPending: 2 },
      { delivered: 4, deliveredConsumer: 4, ackFloor: 4, ackPending: 0 },
      extent(1, 4),
      extent(5, 4),
    )!;
    expect(loss.deliveredGone).toBe(3);
    expect(loss.deliveredUnackedAtMost).toBe(2);
  });

  it("cannot compare a stream that was recreated", () => {
    const point = { delivered: 5, deliveredConsumer: 5, ackFloor: 5, ackPending: 0 };
    expect(consumerLoss(point, point, extent(1, 9), extent(1, 2))).toBeUndefined();
  });

  it("counts exactly the undelivered messages removed, over random workloads (no redeliveries)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.boolean(), { minLength: 80, maxLength: 80 }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 40 }),
        fc.boolean(),
        (n, deliveredAtP, removeMask, arrivals, deliveriesAfter, frontOnly) => {
          // A stream of n messages; the consumer delivered the first `deliveredAtP` at p.
          const sp = deliveredAtP;
          const dp = Math.min(sp, n);
          const last = n + arrivals;
          // Removals between the polls: either the front (expiry) or any sequences (deletes).
          const removed = new Set<number>();
          let cut = 0;
          for (let seq = 1; seq <= last; seq++) {
            if (!removeMask[seq - 1]) {
              if (frontOnly) break;
              continue;
            }
            removed.add(seq);
            if (frontOnly) cut = seq;
          }
          // The consumer then delivers `deliveriesAfter` held messages in order, skipping removed ones.
          // (Removals happen first: the worst case for telling skips from deliveries.)
          let s = dp;
          let c = dp;
          let delivered = 0;
          while (delivered < deliveriesAfter && s < last) {
            s++;
            if (removed.has(s)) continue;
            c++;
            delivered++;
          }
          const qFirst = frontOnly ? cut + 1 : 1;
          const qDeleted = frontOnly
            ? []
            : [...removed].filter((x) => x >= qFirst && x <= last).sort((a, b) => a - b);
          // The consumer's delivered point is the last sequence it delivered (or jumped to).
          const loss = consumerLoss(
            { delivered: dp, deliveredConsumer: dp, ackFloor: dp, ackPending: 0 },
            { delivered: s, deliveredConsumer: c, ackFloor: dp, ackPending: delivered },
            extent(1, n),
            { first: qFirst, last, deleted: qDeleted },
          )!;
          const truth = [...removed].filter((seq) => seq > dp).length;
          expect(loss.ahead + loss.skipped).toBe(truth);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("why messages went", () => {
  const base: RemovalContext = {
    maxAgeMs: 0,
    maxMsgs: -1,
    maxBytes: -1,
    maxMsgsPerSubject: -1,
    multiSubject: false,
    front: true,
    arrived: false,
    atMs: 1_000_000,
  };

  it("tells max-age, limits, purge and delete apart where one cause alone explains it", () => {
    expect(removalReason({ ...base, maxAgeMs: 60_000, newestRemovedMs: 900_000 })).toBe("max_age");
    // Not old enough to have expired: something else removed it.
    expect(removalReason({ ...base, maxAgeMs: 600_000, newestRemovedMs: 900_000 })).toBe("purge");
    expect(removalReason({ ...base, maxMsgs: 2, arrived: true })).toBe("limits");
    // Limits only remove to make room for new messages.
    expect(removalReason({ ...base, maxMsgs: 2, arrived: false })).toBe("purge");
    expect(removalReason({ ...base, front: false })).toBe("delete");
    expect(removalReason({ ...base, maxAgeMs: 60_000, maxMsgs: 2, arrived: true, newestRemovedMs: 0 })).toBe(
      "unknown",
    );
    expect(removalReason({ ...base, front: false, multiSubject: true, maxMsgsPerSubject: 1 })).toBe(
      "unknown",
    );
    // The API audit advisory settles it.
    expect(removalReason({ ...base, maxAgeMs: 60_000, newestRemovedMs: 0, purgeSeen: true })).toBe("purge");
    expect(removalReason({ ...base, deleteSeen: true })).toBe("delete");
  });

  it("reads the server's own reason on MSG_TERMINATED (2.10.4+), and nothing from an agent's", () => {
    expect(serverRemovalReason("Unacknowledged message was deleted")).toBe("removed");
    expect(serverRemovalReason("Message deleted by stream limits")).toBe("limits");
    expect(serverRemovalReason("bad input")).toBeUndefined();
    expect(serverRemovalReason(undefined)).toBeUndefined();
  });
});
