// The example Alertmanager configuration (deploy/alertmanager/alertmanager.yml), checked with the
// real amtool: pages go to the pager, everything else to chat.
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const CONFIG = join(ROOT, "deploy/alertmanager/alertmanager.yml");

async function amtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("amtool", args);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

/** The receiver(s) amtool resolves for an alert with these labels. */
async function routeOf(labels: Record<string, string>): Promise<string> {
  const args = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const { code, output } = await amtool("config", "routes", "test", `--config.file=${CONFIG}`, ...args);
  expect(code, output).toBe(0);
  // amtool prints a warning about --alertmanager.url on stderr; the receivers are the last line.
  return output
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("Warning"))
    .join(",");
}

interface RuleFile {
  groups: { rules: { alert?: string; labels?: Record<string, string> }[] }[];
}

describe("Alertmanager example configuration", () => {
  it("passes amtool check-config", async () => {
    const { code, output } = await amtool("check-config", CONFIG);
    expect(code, output).toBe(0);
    expect(output).toContain("SUCCESS");
  });

  it("routes severity=page to the pager and the rest to chat", async () => {
    expect(await routeOf({ severity: "page", alertname: "OrgwatchDeadLetter", role: "cto" })).toBe("pager");
    expect(await routeOf({ severity: "warning", alertname: "OrgwatchConsumerLag", role: "cto" })).toBe(
      "chat",
    );
    expect(await routeOf({ severity: "info", alertname: "OrgwatchSLABreaches" })).toBe("chat");
    // Anything without a severity still reaches someone.
    expect(await routeOf({ alertname: "SomethingElse" })).toBe("chat");
  });

  it("amtool's route verification fails for a wrong receiver (the check can fail)", async () => {
    const { code } = await amtool(
      "config",
      "routes",
      "test",
      `--config.file=${CONFIG}`,
      "--verify.receivers=chat",
      "severity=page",
    );
    expect(code).not.toBe(0);
  });

  it("routes every shipped alert by its severity", async () => {
    const dir = join(ROOT, "alerts");
    const alerts = readdirSync(dir)
      .filter((f) => f.endsWith(".yml"))
      .flatMap((f) => (parse(readFileSync(join(dir, f), "utf8")) as RuleFile).groups.flatMap((g) => g.rules))
      .filter((r) => r.alert);
    const severities = new Set(alerts.map((a) => a.labels?.["severity"]));
    for (const severity of severities) {
      const { code, output } = await amtool(
        "config",
        "routes",
        "test",
        `--config.file=${CONFIG}`,
        `--verify.receivers=${severity === "page" ? "pager" : "chat"}`,
        `severity=${severity}`,
      );
      expect(code, `severity=${severity}: ${output}`).toBe(0);
    }
  });
});
