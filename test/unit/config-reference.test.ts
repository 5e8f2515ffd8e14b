// The README's configuration reference is generated from the settings table and must be current.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { README, renderConfigReference, withReference } from "../../scripts/config-reference.js";
import { envName, SETTINGS } from "../../src/config/schema.js";

describe("README configuration reference", () => {
  const readme = readFileSync(README, "utf8");

  it("is current (run `npm run docs:config` after changing src/config/schema.ts)", () => {
    expect(withReference(readme, renderConfigReference())).toBe(readme);
  });

  it("lists every setting's flag, environment variable and default", () => {
    const reference = renderConfigReference();
    for (const setting of SETTINGS) {
      const row = reference.split("\n").find((line) => line.startsWith(`| \`--${setting.key}\` |`));
      expect(row, setting.key).toBeDefined();
      expect(row).toContain(`\`${envName(setting.key)}\``);
      if ("default" in setting && setting.default !== "") expect(row).toContain(`\`${setting.default}\``);
    }
    expect(reference).toContain("`NATS_URL`");
    expect(reference).toMatch(/\| `--poll-interval` .*`15s` \(demo: `2s`\)/);
    expect(reference).toMatch(/\| `--pace` .*\| demo, simulate \|/);
  });

  it("refuses a README without the generated section", () => {
    expect(() => withReference("# no reference here\n", renderConfigReference())).toThrow(/config-reference/);
  });
});
