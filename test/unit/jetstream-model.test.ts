// The poller hands each poll to the model's listeners one per turn of the event loop
// (applyPollYielding), so that at 10,000 consumers their work does not add up into one stall; a
// listener with much to do returns steps, a turn apart.
import { describe, expect, it } from "vitest";
import { JetStreamModel, type PollResult } from "../../src/model/jetstream.js";
import { pollResult } from "../helpers/jetstream-fixtures.js";

describe("JetStreamModel.applyPollYielding", () => {
  it("runs every listener in order with the poll and the previous one, one per turn of the event loop", async () => {
    const model = new JetStreamModel();
    const first = pollResult(1, [], []);
    const second = pollResult(2, [], []);
    model.applyPoll(first);
    const calls: string[] = [];
    const seen: [PollResult, PollResult | undefined][] = [];
    model.on("polled", (r, p) => {
      calls.push("a");
      seen.push([r, p]);
      // Anything scheduled here runs before the next listener: the loop got a turn in between.
      setImmediate(() => calls.push("turn"));
    });
    model.once("polled", () => calls.push("once"));
    const removed = () => calls.push("removed");
    model.on("polled", () => {
      calls.push("b");
      model.off("polled", removed);
    });
    model.on("polled", removed);
    const applied = model.applyPollYielding(second);
    expect(model.current).toBe(second);
    await applied;
    expect(calls).toEqual(["a", "turn", "once", "b"]);
    expect(seen).toEqual([[second, first]]);
    // The once listener is gone; a listener removed by another was not called.
    calls.length = 0;
    await model.applyPollYielding(pollResult(3, [], []));
    expect(calls.filter((c) => c !== "turn")).toEqual(["a", "b"]);
  });

  it("runs the steps a listener returns a turn apart, and all at once in applyPoll", async () => {
    const model = new JetStreamModel();
    const calls: string[] = [];
    // A listener's steps: a generator function's body runs only as it is iterated.
    model.on("polled", function* (r: PollResult) {
      calls.push(`step 1 of poll ${r.at}`);
      setImmediate(() => calls.push("turn"));
      yield;
      calls.push(`step 2 of poll ${r.at}`);
    } as unknown as (r: PollResult) => void);
    model.on("polled", () => calls.push("next listener"));
    model.on("applied", () => calls.push("applied"));
    await model.applyPollYielding(pollResult(1, [], []));
    expect(calls).toEqual(["step 1 of poll 1", "turn", "step 2 of poll 1", "next listener", "applied"]);
    calls.length = 0;
    model.applyPoll(pollResult(2, [], []));
    expect(calls).toEqual(["step 1 of poll 2", "step 2 of poll 2", "next listener", "applied"]);
  });

  it("rejects with a listener's error", async () => {
    const model = new JetStreamModel();
    model.on("polled", () => {
      throw new Error("listener failed");
    });
    await expect(model.applyPollYielding(pollResult(1, [], []))).rejects.toThrow("listener failed");
  });
});
