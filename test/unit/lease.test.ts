import { afterEach, describe, expect, it, vi } from "vitest";
import { LeaseModel } from "../../src/model/lease.js";
import { leaseTimings } from "../../src/pair/lease.js";

describe("the lease", () => {
  afterEach(() => vi.useRealTimers());

  it("is held only until its last renewal stops counting, even before the keeper notices", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const lease = new LeaseModel("chains", "a:1");
    const events: string[] = [];
    lease.on("acquired", () => events.push("acquired"));
    lease.on("lost", (reason) => events.push(`lost: ${reason}`));
    expect(lease.held).toBe(false);

    lease.acquire(1_001_500);
    expect(lease.held).toBe(true);
    expect(lease.holder).toBe("a:1");
    vi.setSystemTime(1_001_499);
    expect(lease.held).toBe(true);
    lease.renewed(1_003_000);
    vi.setSystemTime(1_002_999);
    expect(lease.held).toBe(true);
    // A process paused past it (SIGSTOP, a stall): not held, before any timer of the keeper runs.
    vi.setSystemTime(1_003_000);
    expect(lease.held).toBe(false);

    lease.lose("no renewal succeeded in time");
    lease.lose("twice");
    expect(events).toEqual(["acquired", "lost: no renewal succeeded in time"]);
    expect(lease.holder).toBeUndefined();
    lease.seen("b:2");
    expect(lease.holder).toBe("b:2");

    lease.acquire(1_010_000);
    expect(lease.held).toBe(true);
    expect(lease.acquisitions).toBe(2);
    // Another holder seen while this one holds it is a stale read: this process's own id stays.
    lease.seen("b:2");
    expect(lease.holder).toBe("a:1");
  });

  it("renews at a quarter of its TTL, counts a renewal for half, and a follower tries often", () => {
    expect(leaseTimings(10_000)).toEqual({ renewMs: 2500, validMs: 5000, tryMs: 1000 });
    expect(leaseTimings(3000)).toEqual({ renewMs: 750, validMs: 1500, tryMs: 300 });
  });
});
