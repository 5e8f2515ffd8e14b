import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ALERTS_DOC, withMatrix } from "../../scripts/alerts-doc.js";

describe("docs/alerts.md", () => {
  it("holds the incident matrix as the matrix test plays it (npm run docs:alerts)", () => {
    const doc = readFileSync(ALERTS_DOC, "utf8");
    expect(doc, "docs/alerts.md is stale: run npm run docs:alerts").toBe(withMatrix(doc));
  });
});
