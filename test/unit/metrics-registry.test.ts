import { describe, expect, it } from "vitest";
import { Counter } from "prom-client";
import { MetricsRegistry } from "../../src/exporters/metrics/registry.js";

describe("MetricsRegistry", () => {
  it("keeps counters' _total suffix in the Prometheus format after an OpenMetrics scrape", async () => {
    // prom-client's OpenMetrics registry renames shared counters in place (strips `_total`).
    const metrics = new MetricsRegistry();
    new Counter({ name: "orgwatch_things_total", help: "things", registers: metrics.registers }).inc(2);
    const before = (await metrics.render(false)).body;
    const [om] = await Promise.all([metrics.render(true), metrics.render(false)]);
    const after = (await metrics.render(false)).body;
    expect(om.body).toContain("orgwatch_things_total 2\n");
    expect(om.body).toContain("# TYPE orgwatch_things counter");
    expect(before).toContain("orgwatch_things_total 2\n");
    expect(after).toBe(before);
  });
});
