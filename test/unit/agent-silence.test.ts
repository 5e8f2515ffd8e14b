import { describe, expect, it } from "vitest";
import { silentMs } from "../../src/model/agents.js";

describe("an agent's silence, leaving out orgwatch's own outage from NATS", () => {
  it("is the time since its last status when orgwatch heard all along", () => {
    expect(silentMs(10_000, 4_000)).toBe(6_000);
    expect(silentMs(10_000, 4_000, { fromMs: 1_000, toMs: 2_000 })).toBe(6_000); // heard after the outage
  });
  it("stops growing while orgwatch cannot hear", () => {
    expect(silentMs(10_000, 4_000, { fromMs: 5_000 })).toBe(1_000);
    expect(silentMs(60_000, 4_000, { fromMs: 5_000 })).toBe(1_000);
  });
  it("counts what came before the outage and after it, not the outage", () => {
    expect(silentMs(20_000, 4_000, { fromMs: 5_000, toMs: 15_000 })).toBe(1_000 + 5_000);
  });
});
