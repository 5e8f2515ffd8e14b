// The README's first screen and every relative link of the README and docs/: a link to a file that
// moved or never existed is a broken promise to the reader.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.js";

/** Markdown inline links `[text](target)` whose target is a path in the repository. */
function relativeLinks(markdown: string): string[] {
  const targets = [...markdown.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
  return targets
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith("#"))
    .map((t) => t.replace(/#.*$/, ""));
}

const pages = ["README.md", ...readdirSync(join(REPO_ROOT, "docs")).map((f) => `docs/${f}`)].filter((p) =>
  p.endsWith(".md"),
);

describe("README", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

  it("opens with what orgwatch is and the two commands of a fresh machine", () => {
    const firstScreen = readme.split("\n").slice(0, 20).join("\n");
    expect(firstScreen).toMatch(/^# orgwatch\n\norgwatch watches an organization of AI agents/);
    expect(firstScreen).toContain("npm ci && npm run demo");
    expect(firstScreen).toContain("npm ci && npm test");
    const scripts = (
      JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts["demo"]).toBe("bash scripts/demo.sh");
    expect(scripts["pretest"]).toMatch(/^bash scripts\/ensure-tools\.sh /);
  });

  it("links the documentation pages", () => {
    const linked = new Set(relativeLinks(readme));
    for (const page of ["docs/consumers.md", "docs/agents-and-broadcasts.md", "docs/runbooks.md"]) {
      expect(linked.has(page), page).toBe(true);
    }
  });
});

describe.each(pages)("%s", (page) => {
  it("links only to files that exist", () => {
    const links = relativeLinks(readFileSync(join(REPO_ROOT, page), "utf8"));
    const missing = links.filter((l) => !existsSync(join(REPO_ROOT, dirname(page), l)));
    expect(missing).toEqual([]);
  });
});
