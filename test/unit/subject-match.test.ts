import { describe, expect, it } from "vitest";
import { subjectMatches } from "../../src/logic/subject-match.js";

describe("subjectMatches", () => {
  it.each([
    ["a.b.c", "a.b.c", true],
    ["a.b.c", "a.b", false],
    ["a.b", "a.b.c", false],
    ["a.*.c", "a.x.c", true],
    ["a.*", "a.x.c", false],
    ["a.>", "a.x.c", true],
    ["a.>", "a", false],
    [">", "a", true],
    ["a.b.>", "a.c.d", false],
  ])("%s matches %s: %s", (filter, subject, expected) => {
    expect(subjectMatches(filter, subject)).toBe(expected);
  });
});
