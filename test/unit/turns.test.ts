import { afterEach, describe, expect, it, vi } from "vitest";
import { backgroundTurn, HEAD_START_MS, responseStarted } from "../../src/turns.js";

/** Whether a promise has settled once the timers due and the turns already queued have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await vi.advanceTimersByTimeAsync(0);
  // Real setImmediate (a turn): it runs after those queued before it.
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

/** Fake time (timers, performance.now()); turns of the loop stay real. */
const FAKE = { toFake: ["setTimeout", "clearTimeout", "performance"] } as const;

describe("background turns", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("come at once when no response is being written", async () => {
    vi.useFakeTimers({ toFake: [...FAKE.toFake] });
    expect(await settled(backgroundTurn())).toBe(true);
  });

  it("wait while a response is written, and go on when it is", async () => {
    vi.useFakeTimers({ toFake: [...FAKE.toFake] });
    const written = responseStarted();
    const turn = backgroundTurn();
    expect(await settled(turn)).toBe(false);
    await vi.advanceTimersByTimeAsync(HEAD_START_MS / 2);
    expect(await settled(turn)).toBe(false);
    written();
    expect(await settled(turn)).toBe(true);
    // Called twice (close after an error): nothing else happens.
    written();
    expect(await settled(backgroundTurn())).toBe(true);
  });

  it("wait no longer than the head start for a response that takes long", async () => {
    vi.useFakeTimers({ toFake: [...FAKE.toFake] });
    const slow = responseStarted();
    const turn = backgroundTurn();
    await vi.advanceTimersByTimeAsync(HEAD_START_MS - 1);
    expect(await settled(turn)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(turn)).toBe(true);
    // Past its head start it holds nothing back, though still being written.
    expect(await settled(backgroundTurn())).toBe(true);
    // A second response started meanwhile has its own head start.
    const other = responseStarted();
    const next = backgroundTurn();
    expect(await settled(next)).toBe(false);
    other();
    expect(await settled(next)).toBe(true);
    slow();
  });
});
