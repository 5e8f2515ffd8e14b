// The committed dashboards/*.json are what scripts/dashboards.ts generates, and follow the rules of
// DESIGN.md §5: a $datasource variable, units on every panel, $__rate_interval for rates.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DASHBOARDS_DIR, buildDashboards, renderDashboard } from "../scripts/dashboards.js";

interface Target {
  expr: string;
  datasource?: { uid?: string };
  exemplar?: boolean;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}
interface DashboardJson {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
}

const built = buildDashboards();

function panelsOf(d: DashboardJson): Panel[] {
  return d.panels.flatMap((p) => (p.type === "row" ? (p.panels ?? []) : [p]));
}

describe("dashboards", () => {
  it("the committed JSON is current (run `npm run dashboards` after changing scripts/dashboards.ts)", () => {
    const committed = readdirSync(DASHBOARDS_DIR)
      .filter((f) => f.endsWith(".json"))
      .sort();
    expect(committed).toEqual([...built.keys()].sort());
    for (const [file, dashboard] of built) {
      expect(readFileSync(join(DASHBOARDS_DIR, file), "utf8"), file).toBe(renderDashboard(dashboard));
    }
  });

  it("has the four dashboards of the issue", () => {
    const uids = [...built.values()].map((d) => d.uid);
    expect(uids).toEqual(["orgwatch-overview", "orgwatch-agent", "orgwatch-chains", "orgwatch-health"]);
  });

  for (const [file, dashboard] of built) {
    const d = JSON.parse(renderDashboard(dashboard)) as DashboardJson;
    describe(file, () => {
      it("has a $datasource variable and every panel and query uses it", () => {
        expect(d.templating.list.find((v) => v.name === "datasource")?.type).toBe("datasource");
        for (const p of panelsOf(d)) {
          expect(p.datasource?.uid, p.title).toBe("${datasource}");
          for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe("${datasource}");
        }
      });

      it("sets a unit on every panel and has at least one query per panel", () => {
        for (const p of panelsOf(d)) {
          expect(p.fieldConfig?.defaults?.unit, p.title).toBeTruthy();
          expect(p.targets?.length, p.title).toBeGreaterThan(0);
        }
      });

      it("uses $__rate_interval (or $__range for totals) for every range, never a fixed window", () => {
        for (const p of panelsOf(d)) {
          for (const t of p.targets ?? []) {
            for (const [, window] of t.expr.matchAll(/\[([^\]]+)\]/g)) {
              expect(["$__rate_interval", "$__range"], `${p.title}: ${t.expr}`).toContain(window);
            }
          }
        }
      });

      it("shows exemplars on every latency quantile", () => {
        for (const p of panelsOf(d)) {
          for (const t of p.targets ?? []) {
            if (/histogram_quantile\(.*_seconds_bucket/.test(t.expr)) expect(t.exemplar, p.title).toBe(true);
          }
        }
      });
    });
  }

  it("the agent dashboard drills down by $role", () => {
    const d = JSON.parse(renderDashboard(built.get("agent.json")!)) as DashboardJson;
    expect(d.templating.list.find((v) => v.name === "role")?.query).toContain("label_values(");
    for (const p of panelsOf(d)) {
      for (const t of p.targets ?? []) expect(t.expr, p.title).toContain('role="$role"');
    }
  });
});
