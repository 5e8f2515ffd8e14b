import { describe, expect, it } from "vitest";
import { isSafeLabelValue, LabelCap, OVERFLOW_VALUE } from "../../src/logic/label-cap.js";

describe("LabelCap", () => {
  it("keeps the first `max` distinct values; later ones become `other`, each one counted", () => {
    let overflow = 0;
    const cap = new LabelCap(2, () => overflow++);
    expect(cap.admit("a")).toBe("a");
    expect(cap.admit("b")).toBe("b");
    expect(cap.admit("a")).toBe("a");
    expect(cap.admit("c")).toBe(OVERFLOW_VALUE);
    expect(cap.admit("c")).toBe(OVERFLOW_VALUE);
    expect(cap.admit("b")).toBe("b");
    expect(overflow).toBe(2);
    expect(cap.size).toBe(2);
  });

  it("never admits an unsafe value, even under the cap", () => {
    let overflow = 0;
    const cap = new LabelCap(10, () => overflow++);
    for (const bad of ["", "has space", "tab\t", "x".repeat(65), "é", 'quo"te\n'])
      expect(cap.admit(bad), JSON.stringify(bad)).toBe(OVERFLOW_VALUE);
    expect(overflow).toBe(6);
    expect(cap.size).toBe(0);
    expect(isSafeLabelValue("task.completed")).toBe(true);
    expect(isSafeLabelValue("x".repeat(64))).toBe(true);
  });

  it("admits quietly: the same answers as admit, but a refusal is not counted", () => {
    let overflow = 0;
    const cap = new LabelCap(1, () => overflow++);
    expect(cap.admitQuietly("a")).toBe("a");
    expect(cap.admitQuietly("b")).toBe(OVERFLOW_VALUE);
    expect(cap.admitQuietly("bad value")).toBe(OVERFLOW_VALUE);
    expect(overflow).toBe(0);
    expect(cap.admit("a")).toBe("a");
    expect(cap.admit("b")).toBe(OVERFLOW_VALUE);
    expect(overflow).toBe(1);
    expect(cap.size).toBe(1);
  });
});
