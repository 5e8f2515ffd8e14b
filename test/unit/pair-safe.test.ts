// The shipped rules and dashboards read a replica pair as one orgwatch (DESIGN.md §10).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { countedTwice, pairSafe, pairSafeRuleFile } from "../../scripts/pair-safe.js";

const ROOT = join(import.meta.dirname, "../..");

describe("pair-safe queries", () => {
  it("take each series of the organization once, at the leaves", () => {
    expect(pairSafe('sum by (role) (increase(orgwatch_tasks_completed_total{role="cto"}[5m]))')).toBe(
      'sum by (role) (max without (instance) (increase(orgwatch_tasks_completed_total{role="cto"}[5m])))',
    );
    expect(pairSafe("orgwatch_agent_up == 0")).toBe("max without (instance) (orgwatch_agent_up) == 0");
    // PromQL binds the offset to the selector (the grammar binds it to the whole binary expression).
    expect(pairSafe("orgwatch_x_total > 0 unless orgwatch_x_total offset 10m")).toBe(
      "max without (instance) (orgwatch_x_total) > 0 unless max without (instance) (orgwatch_x_total offset 10m)",
    );
    expect(
      pairSafe(
        "histogram_quantile(0.5, sum by (le) (rate(orgwatch_task_duration_seconds_bucket[$__rate_interval])))",
      ),
    ).toBe(
      "histogram_quantile(0.5, sum by (le) (max without (instance) (rate(orgwatch_task_duration_seconds_bucket[$__rate_interval]))))",
    );
  });

  it("leave each process's own health per instance, and what is taken once already", () => {
    for (const expr of [
      'up{job="orgwatch"} == 0',
      "orgwatch_nats_connected == 0",
      "sum by (instance) (increase(orgwatch_poll_errors_total[5m]))",
      "sum by (job, lease) (orgwatch_lease_held) == 0",
      "max without (instance) (orgwatch_agent_up) == 0",
    ])
      expect(pairSafe(expr)).toBe(expr);
  });

  it("rewrite a folded rule expr in place, line by line", () => {
    const file = [
      "      - alert: A",
      "        expr: >-",
      "          orgwatch_a_seconds",
      "          > on (stream) group_left ()",
      "          (orgwatch_b_seconds > 0)",
      "        for: 1m",
      "",
    ].join("\n");
    expect(pairSafeRuleFile(file)).toEqual({
      changed: 1,
      text: [
        "      - alert: A",
        "        expr: >-",
        "          max without (instance) (orgwatch_a_seconds)",
        "          > on (stream) group_left ()",
        "          (max without (instance) (orgwatch_b_seconds) > 0)",
        "        for: 1m",
        "",
      ].join("\n"),
    });
  });

  it("are what every shipped rule and dashboard panel asks", () => {
    const exprs: string[] = [];
    for (const file of readdirSync(join(ROOT, "alerts")).filter((f) => f.endsWith(".yml"))) {
      const rules = parse(readFileSync(join(ROOT, "alerts", file), "utf8")) as {
        groups: { rules: { expr: string }[] }[];
      };
      for (const g of rules.groups) for (const r of g.rules) exprs.push(r.expr);
    }
    const collect = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(collect);
      else if (v && typeof v === "object")
        for (const [k, x] of Object.entries(v))
          if (k === "expr" && typeof x === "string") exprs.push(x);
          else collect(x);
    };
    for (const file of readdirSync(join(ROOT, "dashboards")).filter((f) => f.endsWith(".json")))
      collect(JSON.parse(readFileSync(join(ROOT, "dashboards", file), "utf8")));
    expect(exprs.length).toBeGreaterThan(90);
    expect(exprs.filter((e) => countedTwice(e).length > 0)).toEqual([]);
  });
});
