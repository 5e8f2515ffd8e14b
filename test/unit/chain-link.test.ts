import { describe, expect, it } from "vitest";
import { inferParent, type InferenceCandidate } from "../../src/logic/chain-link.js";

const SUBJECT = "genbrain.agents.security.tasks";
const WINDOW = 60_000;

function parent(taskId: string, over: Partial<InferenceCandidate> = {}): InferenceCandidate {
  return {
    taskId,
    onCompletePublishTo: SUBJECT,
    publishedMs: 1_000,
    doneMs: 10_000,
    completed: true,
    followUpKnown: false,
    ...over,
  };
}
const child = { subject: SUBJECT, publishedMs: 9_500 };

describe("inferParent", () => {
  it("links to the one parent that fits", () => {
    expect(inferParent(child, [parent("p")], WINDOW, 20_000, false)).toEqual({
      kind: "link",
      parentTaskId: "p",
    });
  });

  it("accepts a follow-up published just before the parent's completion was seen, within the window", () => {
    expect(
      inferParent(
        { subject: SUBJECT, publishedMs: 9_000 },
        [parent("p", { doneMs: 60_000 })],
        WINDOW,
        70_000,
        false,
      ),
    ).toEqual({ kind: "link", parentTaskId: "p" });
  });

  it("links a follow-up stored in the same millisecond as its parent (stored times are whole ms)", () => {
    expect(
      inferParent({ subject: SUBJECT, publishedMs: 1_000 }, [parent("p")], WINDOW, 20_000, false),
    ).toEqual({ kind: "link", parentTaskId: "p" });
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
    expect(
      inferParent({ subject: SUBJECT, publishedMs: 200_000 }, [parent("p")], WINDOW, 210_000, false),
    ).toEqual(none);
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
