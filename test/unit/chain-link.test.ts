import { describe, expect, it } from "vitest";
import { inferParent, type InferenceCandidate, type InferenceChild } from "../../src/logic/chain-link.js";

const SUBJECT = "genbrain.agents.security.tasks";
const WINDOW = 60_000;

function parent(taskId: string, over: Partial<InferenceCandidate> = {}): InferenceCandidate {
  return {
    taskId,
    onCompletePublishTo: SUBJECT,
    stream: "AGENT_CTO_TASKS",
    streamSequence: 1,
    publishedMs: 1_000,
    doneMs: 10_000,
    completed: true,
    followUpKnown: false,
    ...over,
  };
}
/** A task on the security stream, stored at `publishedMs`. */
function at(publishedMs: number, over: Partial<InferenceChild> = {}): InferenceChild {
  return { subject: SUBJECT, stream: "AGENT_SECURITY_TASKS", streamSequence: 1, publishedMs, ...over };
}
const child = at(9_500);

describe("inferParent", () => {
  it("links to the one parent that fits", () => {
    expect(inferParent(child, [parent("p")], WINDOW, 20_000, false)).toEqual({
      kind: "link",
      parentTaskId: "p",
    });
  });

  it("accepts a follow-up published just before the parent's completion was seen, within the window", () => {
    expect(inferParent(at(9_000), [parent("p", { doneMs: 60_000 })], WINDOW, 70_000, false)).toEqual({
      kind: "link",
      parentTaskId: "p",
    });
  });

  it("links a follow-up stored in the same millisecond as its parent (stored times are whole ms)", () => {
    expect(inferParent(at(1_000), [parent("p")], WINDOW, 20_000, false)).toEqual({
      kind: "link",
      parentTaskId: "p",
    });
  });

  it("on one stream, goes by sequence: a task stored in the same millisecond right after it is not its follow-up", () => {
    // Both on the security stream (a task whose on_complete publishes to its own stream), one ms.
    const sameStream = { stream: "AGENT_SECURITY_TASKS", publishedMs: 1_000 };
    const p = parent("p", { ...sameStream, streamSequence: 5 });
    expect(inferParent(at(1_000, { ...sameStream, streamSequence: 4 }), [p], WINDOW, 20_000, false)).toEqual({
      kind: "none",
      reason: "no_candidate",
    });
    expect(inferParent(at(1_000, { ...sameStream, streamSequence: 6 }), [p], WINDOW, 20_000, false)).toEqual({
      kind: "link",
      parentTaskId: "p",
    });
    // Still open: the earlier task does not wait for it either.
    const open = parent("p", { ...sameStream, streamSequence: 5, doneMs: undefined, completed: false });
    expect(
      inferParent(at(1_000, { ...sameStream, streamSequence: 4 }), [open], WINDOW, 1_500, false),
    ).toEqual({
      kind: "none",
      reason: "no_candidate",
    });
  });

  it("refuses candidates that do not fit", () => {
    const none = { kind: "none", reason: "no_candidate" };
    expect(
      inferParent(child, [parent("p", { onCompletePublishTo: "other" })], WINDOW, 20_000, false),
    ).toEqual(none);
    expect(inferParent(child, [parent("p", { publishedMs: 9_600 })], WINDOW, 20_000, false)).toEqual(none);
    expect(inferParent(child, [parent("p", { completed: false })], WINDOW, 20_000, false)).toEqual(none);
    expect(inferParent(child, [parent("p", { followUpKnown: true })], WINDOW, 20_000, false)).toEqual(none);
    // Completed long before the child was published: outside the window.
    expect(inferParent(at(200_000), [parent("p")], WINDOW, 210_000, false)).toEqual(none);
  });

  it("links nobody when two parents fit, and names both", () => {
    expect(inferParent(child, [parent("p1"), parent("p2")], WINDOW, 20_000, false)).toEqual({
      kind: "ambiguous",
      candidateTaskIds: ["p1", "p2"],
    });
  });

  it("waits while an open task might still turn out to be the parent, unless the decision is final", () => {
    const open = parent("p2", { doneMs: undefined, completed: false });
    expect(inferParent(child, [parent("p1"), open], WINDOW, 20_000, false)).toEqual({ kind: "wait" });
    expect(inferParent(child, [parent("p1"), open], WINDOW, 20_000, true)).toEqual({
      kind: "link",
      parentTaskId: "p1",
    });
    // Once the window after the child has passed, an open task can no longer fit.
    expect(inferParent(child, [parent("p1"), open], WINDOW, 9_500 + WINDOW + 1, false)).toEqual({
      kind: "link",
      parentTaskId: "p1",
    });
  });
});
