// The simulated organization's plan: pure, and the same for the same seed.
import { describe, expect, it } from "vitest";
import {
  assignments,
  broadcasts,
  chainedTask,
  poisonReaction,
  roster,
  scaledSla,
  work,
  type AgentSpec,
  type PlannedTask,
} from "../../src/demo/plan.js";
import { seededRandom } from "../../src/demo/random.js";

const scale = { prefix: "genbrain", pace: 600 };

function take<T>(gen: Iterator<T>, n: number): T[] {
  return Array.from({ length: n }, () => gen.next().value as T);
}

function agent(role: string): AgentSpec {
  const found = roster(6).find((a) => a.role === role);
  if (!found) throw new Error(role);
  return found;
}

describe("roster", () => {
  it("casts the story's six agents in order, then steady analysts", () => {
    expect(roster(6).map((a) => [a.role, a.behaviour])).toEqual([
      ["ceo", "ceo"],
      ["cto", "steady"],
      ["security", "reviewer"],
      ["marketing", "overloaded"],
      ["devops", "flaky"],
      ["finance", "ignores-broadcasts"],
    ]);
    const big = roster(14);
    expect(big.slice(6).map((a) => a.role)).toEqual([
      "research",
      "support",
      "legal",
      "sales",
      "data",
      "design",
      "agent13",
      "agent14",
    ]);
    expect(new Set(big.map((a) => a.role)).size).toBe(14);
    expect(big.slice(6).every((a) => a.behaviour === "steady" && a.assignment)).toBe(true);
    expect(roster(3).map((a) => a.role)).toEqual(["ceo", "cto", "security"]);
  });

  it("refuses fewer than three agents", () => {
    expect(() => roster(2)).toThrow(RangeError);
    expect(() => roster(4.5)).toThrow(RangeError);
  });
});

describe("assignments", () => {
  it("are the same for the same seed and differ for another", () => {
    const a = take(assignments(7, agent("marketing"), scale), 20);
    const b = take(assignments(7, agent("marketing"), scale), 20);
    const c = take(assignments(8, agent("marketing"), scale), 20);
    expect(b).toEqual(a);
    expect(c.map((t) => t.task.task_id)).not.toEqual(a.map((t) => t.task.task_id));
    // Task ids are unique across a long run.
    const ids = take(assignments(7, agent("marketing"), scale), 500).map((t) => t.task.task_id);
    expect(new Set(ids).size).toBe(500);
  });

  it("do not depend on other agents' plans (one generator per agent)", () => {
    const alone = take(assignments(3, agent("cto"), scale), 5);
    take(assignments(3, agent("devops"), scale), 50);
    expect(take(assignments(3, agent("cto"), scale), 5)).toEqual(alone);
  });

  it("are task messages as agents publish them, with a W3C traceparent", () => {
    const [first] = take(assignments(1, agent("cto"), scale), 1) as [PlannedTask];
    expect(first.role).toBe("cto");
    expect(first.afterMinutes).toBe(0); // the burst: the first chain starts at once
    expect(first.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(first.task).toEqual({
      task_id: expect.stringMatching(/^task-[0-9a-f]{12}$/),
      type: "feature_implementation",
      title: expect.any(String),
      assigned_by: "ceo",
      sla: { ack_within_seconds: 3, complete_within_minutes: 0.1 },
      on_complete: { publish_to: "genbrain.agents.security.tasks", payload_template: "security_review" },
    });
    expect(JSON.parse(JSON.stringify(first.task))).toEqual(first.task);
  });

  it("overload the overloaded agent: a burst, then work arriving faster than it is done", () => {
    const spec = agent("marketing");
    const plan = take(assignments(1, spec, scale), 40);
    expect(plan.slice(0, 4).every((t) => t.afterMinutes === 0)).toBe(true);
    const arrivalEvery = plan.slice(4).reduce((n, t) => n + t.afterMinutes, 0) / 36;
    const workMean = (spec.workMinutes[0] + spec.workMinutes[1]) / 2;
    expect(arrivalEvery).toBeLessThan(workMean * 0.75);
  });

  it("make the flaky agent's first task poison, and some later ones; nobody else's", () => {
    const devops = take(assignments(1, agent("devops"), scale), 200);
    expect(devops[0]!.poison).toBe(true);
    const later = devops.slice(1).filter((t) => t.poison).length;
    expect(later).toBeGreaterThan(20);
    expect(later).toBeLessThan(80);
    for (const role of ["cto", "marketing", "finance"]) {
      expect(take(assignments(1, agent(role), scale), 50).some((t) => t.poison)).toBe(false);
    }
  });

  it("have the flaky agent crash, nak, then crash for good on a poison task", () => {
    expect([1, 2, 3].map(poisonReaction)).toEqual(["crash", "nak", "crash"]);
  });

  it("come only from agents that are assigned work", () => {
    expect(take(assignments(1, agent("ceo"), scale), 1)).toEqual([undefined]);
    expect(take(assignments(1, agent("security"), scale), 1)).toEqual([undefined]);
  });
});

describe("chains", () => {
  it("go CTO → Security → CEO, each step naming its parent, the last one ending the chain", () => {
    const [root] = take(assignments(5, agent("cto"), scale), 1) as [PlannedTask];
    const review = chainedTask(5, root.task, "cto", scale);
    expect(review).toMatchObject({
      type: "security_review",
      assigned_by: "cto",
      parent_task_id: root.task.task_id,
      title: `Security review: ${root.task.title}`,
      on_complete: { publish_to: "genbrain.agents.ceo.tasks", payload_template: "release_approval" },
    });
    const approval = chainedTask(5, review, "security", scale);
    expect(approval).toMatchObject({
      type: "release_approval",
      parent_task_id: review.task_id,
      title: `Approve release: ${root.task.title}`,
    });
    expect(approval.on_complete).toBeUndefined();
    // The same parent gives the same child, so a replayed chain is the same chain.
    expect(chainedTask(5, root.task, "cto", scale)).toEqual(review);
    expect(new Set([root.task.task_id, review.task_id, approval.task_id]).size).toBe(3);
  });
});

describe("work and broadcasts", () => {
  it("decide each delivery of each task from the seed alone", () => {
    const security = agent("security");
    const outcomes = Array.from({ length: 400 }, (_, i) => work(9, security, `task-${i}`, 1));
    expect(Array.from({ length: 400 }, (_, i) => work(9, security, `task-${i}`, 1))).toEqual(outcomes);
    const failed = outcomes.filter((o) => o.outcome === "failed").length;
    expect(failed).toBeGreaterThan(20); // the reviewer rejects about 15%
    expect(failed).toBeLessThan(100);
    for (const o of outcomes) expect(o.minutes).toBeGreaterThanOrEqual(security.workMinutes[0]);
    for (const o of outcomes) expect(o.minutes).toBeLessThanOrEqual(security.workMinutes[1]);
    // Work always fits the 30-minute ack wait: a redelivery means a crash, never a slow turn.
    for (const spec of roster(12)) expect(spec.workMinutes[1]).toBeLessThan(30);
    expect(work(9, agent("cto"), "task-1", 1).outcome).toBe("completed");
  });

  it("announce the first broadcast soon, then every two hours", () => {
    const plan = take(broadcasts(2), 3);
    expect(plan.map((b) => b.afterMinutes)).toEqual([5, 120, 120]);
    expect(plan.map((b) => b.message.broadcast_id)).toEqual(["bc-0001", "bc-0002", "bc-0003"]);
    expect(take(broadcasts(2), 3)).toEqual(plan);
  });
});

describe("scaled SLAs and seeded randomness", () => {
  it("shrink SLAs with the pace, never to zero", () => {
    const sla = { ackWithinMinutes: 30, completeWithinMinutes: 60 };
    expect(scaledSla(sla, 1)).toEqual({ ack_within_seconds: 1800, complete_within_minutes: 60 });
    expect(scaledSla(sla, 600)).toEqual({ ack_within_seconds: 3, complete_within_minutes: 0.1 });
    expect(scaledSla({ ackWithinMinutes: 0.001, completeWithinMinutes: 0.001 }, 6000)).toEqual({
      ack_within_seconds: 1,
      complete_within_minutes: 0.001,
    });
  });

  it("draws the same numbers for the same seed and key", () => {
    const a = seededRandom(1, "x", 2);
    const b = seededRandom(1, "x", 2);
    const drawsA = Array.from({ length: 50 }, () => a.int(0, 1000));
    expect(Array.from({ length: 50 }, () => b.int(0, 1000))).toEqual(drawsA);
    const other = seededRandom(1, "x", 3);
    expect(Array.from({ length: 50 }, () => other.int(0, 1000))).not.toEqual(drawsA);
    const r = seededRandom(4);
    for (let i = 0; i < 200; i++) {
      const v = r.int(3, 5);
      expect(v >= 3 && v <= 5).toBe(true);
    }
    expect(seededRandom(4).hex(13)).toMatch(/^[0-9a-f]{13}$/);
  });
});
