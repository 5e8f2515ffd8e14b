import { describe, expect, it } from "vitest";
import { scaleExpr, scaleRuleFile, type RuleScaling } from "../../src/logic/rule-scaling.js";

const AT_200: RuleScaling = { speed: 200, minRangeMs: 30_000, realTimeGroups: ["orgwatch.self"] };

describe("alert rules on a faster clock", () => {
  it("scales ranges, offsets, duration thresholds and per-hour factors, with a floor on ranges", () => {
    expect(scaleExpr("increase(x_total[10m]) > 0 or (x_total > 0 unless x_total offset 10m)", AT_200)).toBe(
      "increase(x_total[30s]) > 0 or (x_total > 0 unless x_total offset 30s)",
    );
    expect(scaleExpr("increase(x_total[24h]) > 0", AT_200)).toBe("increase(x_total[7m12s]) > 0");
    expect(scaleExpr("max_over_time(x[1h:1m])", AT_200)).toBe("max_over_time(x[30s:1s])");
    expect(scaleExpr('orgwatch_broadcast_oldest_unacked_age_seconds{role="a"} > 300', AT_200)).toBe(
      'orgwatch_broadcast_oldest_unacked_age_seconds{role="a"} > 1.5',
    );
    expect(scaleExpr('orgwatch_consumer_drain_eta_seconds{kind="tasks"} > 14400 < +Inf', AT_200)).toBe(
      'orgwatch_consumer_drain_eta_seconds{kind="tasks"} > 72 < +Inf',
    );
    // Taken once across a pair (scripts/pair-safe.ts).
    expect(
      scaleExpr("max without (instance) (orgwatch_broadcast_oldest_unacked_age_seconds) > 300", AT_200),
    ).toBe("max without (instance) (orgwatch_broadcast_oldest_unacked_age_seconds) > 1.5");
    expect(scaleExpr("rate(naks_total[30m]) * 3600 > 4", AT_200)).toBe("rate(naks_total[30s]) * 18 > 4");
    // Counts are not durations.
    expect(scaleExpr('orgwatch_consumer_lag_messages{kind="tasks"} > 5', AT_200)).toBe(
      'orgwatch_consumer_lag_messages{kind="tasks"} > 5',
    );
  });

  it("scales for: and keep_firing_for:, leaves the real-time groups alone, and says what changed", () => {
    const { file, changes } = scaleRuleFile(
      {
        groups: [
          {
            name: "orgwatch.work",
            rules: [
              { alert: "Lag", expr: "lag > 5", for: "5m", keep_firing_for: "10m" },
              { alert: "Counted", expr: "x > 0" },
            ],
          },
          { name: "orgwatch.self", rules: [{ alert: "Down", expr: 'up{job="orgwatch"} == 0', for: "2m" }] },
        ],
      },
      AT_200,
    );
    expect(file.groups[0]!.rules[0]).toMatchObject({ for: "1s500ms", keep_firing_for: "3s" });
    expect(file.groups[0]!.rules[1]).toEqual({ alert: "Counted", expr: "x > 0" });
    expect(file.groups[1]!.rules[0]!.for).toBe("2m");
    expect(changes).toEqual(["Lag: for 5m → 1s500ms, keep_firing_for 10m → 3s"]);
  });
});
