// The shipped alert rules, checked and unit-tested with the real promtool, and held to the contract
// of DESIGN.md §5: every alert has a severity, a summary, a description, a runbook section, and
// promtool tests on both sides (an evaluation expecting it and one expecting nothing).
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const ALERTS_DIR = join(ROOT, "alerts");
const TESTS_DIR = join(ROOT, "test/alerts");
const RUNBOOKS = join(ROOT, "docs/runbooks.md");
/** Prometheus's external label orgwatch_url is the one base of every runbook link (default: a local orgwatch). */
const RUNBOOK_TEMPLATE = '{{ or $externalLabels.orgwatch_url "http://localhost:7786" }}/runbooks#';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: unknown[] | null;
}
interface PromqlTest {
  expr: string;
}
interface TestFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: AlertTest[]; promql_expr_test?: PromqlTest[] }[];
}

const ruleFiles = readdirSync(ALERTS_DIR)
  .filter((f) => f.endsWith(".yml"))
  .sort();
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith(".test.yml"))
  .sort();
const rules = ruleFiles.flatMap((f) =>
  (parse(readFileSync(join(ALERTS_DIR, f), "utf8")) as RuleFile).groups.flatMap((g) =>
    g.rules.map((r) => ({ file: f, group: g.name, ...r })),
  ),
);
const alerts = rules.filter((r) => r.alert !== undefined);
const records = rules.filter((r) => r.record !== undefined);
const tests = testFiles.map((f) => ({
  file: f,
  ...(parse(readFileSync(join(TESTS_DIR, f), "utf8")) as TestFile),
}));

async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("promtool", args, { cwd: TESTS_DIR });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

/** GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to dashes. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, "")
    .replace(/ /g, "-");
}

function runbookSections(): Map<string, string> {
  const text = readFileSync(RUNBOOKS, "utf8");
  const sections = new Map<string, string>();
  const parts = text.split(/^## /m).slice(1);
  for (const part of parts) {
    const newline = part.indexOf("\n");
    sections.set(anchor(part.slice(0, newline)), part.slice(newline + 1));
  }
  return sections;
}

describe("alert rules (alerts/*.yml)", () => {
  it("finds the rule files and the alerts the issue asks for", () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    const names = new Set(alerts.map((a) => a.alert));
    for (const required of [
      "OrgwatchConsumerLag",
      "OrgwatchDeadLetter",
      "OrgwatchBroadcastUnacked",
      "OrgwatchConsumerStalled",
      "OrgwatchConsumerStopped",
      "OrgwatchAgentDown",
      "OrgwatchDuplicateWork",
      "OrgwatchTasksOverdue",
      "OrgwatchSLABreaches",
      "OrgwatchAckWaitTooShort",
      "OrgwatchNoDeadLetterPath",
      "OrgwatchDown",
      "OrgwatchAbsent",
      "OrgwatchNatsDisconnected",
      "OrgwatchPollsFailing",
    ]) {
      expect(names, required).toContain(required);
    }
    expect(names.size, "alert names are unique").toBe(alerts.length);
  });

  it.each(ruleFiles)("promtool check rules %s", async (file) => {
    const { code, output } = await promtool("check", "rules", join(ALERTS_DIR, file));
    expect(output).toContain("SUCCESS");
    expect(code, output).toBe(0);
  });

  it.each(testFiles)("promtool test rules %s", async (file) => {
    const { code, output } = await promtool("test", "rules", join(TESTS_DIR, file));
    expect(code, output).toBe(0);
    expect(output).toContain("SUCCESS");
  });

  it("every rule file has a test file that loads it", () => {
    const loaded = new Set(tests.flatMap((t) => t.rule_files.map((r) => r.replace(/^.*\//, ""))));
    for (const f of ruleFiles) expect(loaded, f).toContain(f);
  });

  it.each(alerts.map((a) => [a.alert!, a] as const))(
    "%s has severity, summary, description and runbook_url",
    (name, alert) => {
      expect(["page", "warning", "info"]).toContain(alert.labels?.["severity"]);
      expect(alert.annotations?.["summary"]?.length).toBeGreaterThan(0);
      expect(alert.annotations?.["description"]?.length).toBeGreaterThan(0);
      expect(alert.annotations?.["runbook_url"]).toBe(RUNBOOK_TEMPLATE + name.toLowerCase());
      // Read by the engineer woken at 3 a.m.: who (the agent, or which orgwatch), and what to do first.
      expect(alert.annotations?.["summary"]).toMatch(/\$labels\.(role|instance|source)|orgwatch/);
      expect(alert.annotations?.["description"]).toMatch(/ First: [^.]+\./);
    },
  );

  it.each(alerts.map((a) => [a.alert!] as const))(
    "%s has a runbook section: meaning, how to confirm, what to do",
    (name) => {
      const section = runbookSections().get(name.toLowerCase());
      expect(section, `docs/runbooks.md has no "## ${name}"`).toBeDefined();
      expect(section).toContain("**Meaning.**");
      expect(section).toContain("**Confirm.**");
      expect(section).toContain("**Action.**");
    },
  );

  it.each(alerts.map((a) => [a.alert!] as const))(
    "%s is tested on both sides: an evaluation where it fires and one where it does not",
    (name) => {
      const evals = tests.flatMap((t) =>
        t.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((e) => e.alertname === name)),
      );
      expect(
        evals.some((e) => (e.exp_alerts ?? []).length > 0),
        "an evaluation expecting it",
      ).toBe(true);
      expect(
        evals.some((e) => (e.exp_alerts ?? []).length === 0),
        "an evaluation expecting nothing",
      ).toBe(true);
    },
  );

  it("every recording rule is evaluated in a test", () => {
    const exprs = tests.flatMap((t) => t.tests.flatMap((c) => (c.promql_expr_test ?? []).map((p) => p.expr)));
    const alertExprs = alerts.map((a) => a.expr);
    for (const r of records) {
      const used = [...exprs, ...alertExprs].some((e) => e.includes(r.record!));
      expect(used, `${r.record} is neither tested nor used by a tested alert`).toBe(true);
    }
  });
});
