import { describe, expect, it } from "vitest";
import { classifyConsumer, classifyStream, classifySubject } from "../../src/logic/classify.js";

const DEFAULT_ROLE_PATTERN = /^([^-_.]+)/;

describe("classifySubject", () => {
  it.each([
    ["genbrain.agents.cto.tasks", "tasks", "cto"],
    ["genbrain.agents.security.inbox", "inbox", "security"],
    ["genbrain.agents.*.tasks", "tasks", ""],
    ["genbrain.agents.*.inbox", "inbox", ""],
    ["genbrain.org.broadcasts", "broadcasts", ""],
    ["genbrain.org.deadletter", "deadletter", ""],
    // Not carried by streams of the organization, or not of its vocabulary.
    ["genbrain.agents.cto.status", "other", ""],
    ["genbrain.org.events", "other", ""],
    ["genbrain.agents.>", "other", ""],
    ["genbrain.agents.cto.tasks.urgent", "other", ""],
    ["genbrain.agents.cto.>", "other", ""],
    ["genbrain.agents.>.tasks", "other", ""],
    ["otherorg.agents.cto.tasks", "other", ""],
    ["genbrainx.agents.cto.tasks", "other", ""],
    ["genbrain", "other", ""],
    ["$JS.EVENT.ADVISORY.>", "other", ""],
  ])("%s → %s/%s", (subject, kind, role) => {
    expect(classifySubject("genbrain", subject)).toEqual({ kind, role });
  });

  it("takes a prefix of several tokens", () => {
    expect(classifySubject("acme.prod", "acme.prod.agents.cfo.tasks")).toEqual({
      kind: "tasks",
      role: "cfo",
    });
    expect(classifySubject("acme.prod", "acme.agents.cfo.tasks")).toEqual({ kind: "other", role: "" });
  });

  it("refuses roles that cannot be label values", () => {
    const long = "r".repeat(65);
    expect(classifySubject("genbrain", `genbrain.agents.${long}.tasks`)).toEqual({ kind: "other", role: "" });
    expect(classifySubject("genbrain", `genbrain.agents.r${"x".repeat(63)}.tasks`).role).toHaveLength(64);
  });

  it("gives a message's role from its subject (multi-role streams)", () => {
    expect(classifySubject("genbrain", "genbrain.agents.cto.tasks").role).toBe("cto");
    expect(classifySubject("genbrain", "genbrain.org.broadcasts").role).toBe("");
  });
});

describe("classifyStream", () => {
  it("classifies by the kind and role all its subjects share", () => {
    expect(classifyStream("genbrain", ["genbrain.agents.cto.tasks"])).toEqual({ kind: "tasks", role: "cto" });
    expect(classifyStream("genbrain", ["genbrain.agents.*.tasks"])).toEqual({ kind: "tasks", role: "" });
    expect(classifyStream("genbrain", ["genbrain.agents.cto.tasks", "genbrain.agents.ceo.tasks"])).toEqual({
      kind: "tasks",
      role: "",
    });
  });

  it("is other when its subjects mix kinds, or it has none", () => {
    expect(classifyStream("genbrain", ["genbrain.agents.cto.tasks", "genbrain.agents.cto.inbox"])).toEqual({
      kind: "other",
      role: "cto",
    });
    expect(classifyStream("genbrain", [])).toEqual({ kind: "other", role: "" });
    expect(classifyStream("genbrain", ["orders.>"])).toEqual({ kind: "other", role: "" });
  });
});

describe("classifyConsumer", () => {
  const multiRole = classifyStream("genbrain", ["genbrain.agents.*.tasks"]);
  const broadcasts = classifyStream("genbrain", ["genbrain.org.broadcasts"]);

  it("takes the role of a consumer on a multi-role stream from its filter subject", () => {
    expect(
      classifyConsumer("genbrain", multiRole, "w1", ["genbrain.agents.cto.tasks"], DEFAULT_ROLE_PATTERN),
    ).toEqual({ kind: "tasks", role: "cto" });
    expect(
      classifyConsumer("genbrain", multiRole, "w1", ["genbrain.agents.security.tasks"], DEFAULT_ROLE_PATTERN),
    ).toEqual({ kind: "tasks", role: "security" });
  });

  it("leaves the role empty when the filters span several roles or there is none", () => {
    expect(
      classifyConsumer(
        "genbrain",
        multiRole,
        "all",
        ["genbrain.agents.cto.tasks", "genbrain.agents.ceo.tasks"],
        DEFAULT_ROLE_PATTERN,
      ),
    ).toEqual({ kind: "tasks", role: "" });
    expect(classifyConsumer("genbrain", multiRole, "all", [], DEFAULT_ROLE_PATTERN)).toEqual({
      kind: "tasks",
      role: "",
    });
  });

  it("keeps the stream's role on a single-role stream, whatever the consumer is called", () => {
    const cto = classifyStream("genbrain", ["genbrain.agents.cto.tasks"]);
    expect(classifyConsumer("genbrain", cto, "ceo-spy", [], DEFAULT_ROLE_PATTERN)).toEqual({
      kind: "tasks",
      role: "cto",
    });
    expect(
      classifyConsumer("genbrain", cto, "x", ["genbrain.agents.cto.tasks"], DEFAULT_ROLE_PATTERN),
    ).toEqual({ kind: "tasks", role: "cto" });
  });

  it.each([
    ["cto-broadcasts", "cto"],
    ["security_bc", "security"],
    ["ceo.broadcasts", "ceo"],
    ["cfo", "cfo"],
    ["-leading-dash", ""],
  ])("takes a broadcast consumer's role from its name: %s → %s", (name, role) => {
    expect(classifyConsumer("genbrain", broadcasts, name, [], DEFAULT_ROLE_PATTERN)).toEqual({
      kind: "broadcasts",
      role,
    });
  });

  it("takes a broadcast consumer's role through a configured pattern", () => {
    const pattern = /^bc-(.+)$/;
    expect(classifyConsumer("genbrain", broadcasts, "bc-head-of-qa", [], pattern)).toEqual({
      kind: "broadcasts",
      role: "head-of-qa",
    });
    expect(classifyConsumer("genbrain", broadcasts, "cto-broadcasts", [], pattern)).toEqual({
      kind: "broadcasts",
      role: "",
    });
    // A captured role that cannot be a label value is dropped, not exported.
    expect(classifyConsumer("genbrain", broadcasts, "bc-a b", [], pattern)).toEqual({
      kind: "broadcasts",
      role: "",
    });
  });
});
