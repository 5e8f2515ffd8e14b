// Arbitrary bytes, arbitrary JSON and near-miss messages fed to the status and event handlers (the
// functions the subscriptions call): nothing escapes, and every message is counted exactly once,
// either as valid or in orgwatch_invalid_messages_total. Labels stay within their caps and never
// carry a raw value that is not a valid role or a safe label value.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { isValidRole } from "../../src/logic/classify.js";
import { isSafeLabelValue, OVERFLOW_VALUE } from "../../src/logic/label-cap.js";
import { INVALID_REASONS, MAX_MESSAGE_BYTES } from "../../src/logic/message-parse.js";
import { Organization } from "../../src/model/organization.js";
import { createStatusHandler } from "../../src/sources/agent-status.js";
import { createEventHandler } from "../../src/sources/org-events.js";
import { captureLog } from "../helpers/log-capture.js";

const CAP = 4;
const CONFIGURED = ["ceo", "cto"];
const encoder = new TextEncoder();

function newOrganization(): Organization {
  return new Organization(
    configWith({ "nats-url": ["nats://127.0.0.1:1"], roles: CONFIGURED, "labels.max-values": CAP }),
  );
}

function invalidCount(org: Organization, source: string): number {
  let n = 0;
  for (const [key, count] of org.health.invalidMessages) if (key.startsWith(`${source}\u0000`)) n += count;
  return n;
}

/** Bytes of any kind: random, JSON of any shape, well-formed and near-miss objects, oversize payloads. */
function payloads(
  wellFormed: fc.Arbitrary<Record<string, unknown>>,
  nearMiss: fc.Arbitrary<Record<string, unknown>>,
): fc.Arbitrary<Uint8Array> {
  const json = (v: unknown) => encoder.encode(JSON.stringify(v) ?? "null");
  return fc.oneof(
    { arbitrary: wellFormed.map(json), weight: 3 },
    fc.uint8Array({ maxLength: 256 }),
    // Any UTF-16 code units, lone surrogates included, as the UTF-8 a publisher would send.
    fc
      .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 128 })
      .map((units) => encoder.encode(String.fromCharCode(...units))),
    fc.jsonValue({ maxDepth: 4 }).map(json),
    nearMiss.map(json),
    fc.nat({ max: 4 }).map((extra) => new Uint8Array(MAX_MESSAGE_BYTES + 1 + extra).fill(0x20)),
  );
}

const anyField = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined));
const timestamps = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom("2024-05-01T10:00:00Z", "soon", ""),
  anyField,
);
const roles = fc.oneof(
  fc.constantFrom(...CONFIGURED, "intern", "a-b_c", "", "has space", "a.b", "x".repeat(65)),
  fc.stringMatching(/^[a-z]{1,6}$/),
  fc.string({ maxLength: 12 }),
);

const validTs = fc.oneof(
  fc.integer({ min: 1, max: 2_000_000_000 }),
  fc.constantFrom("2024-05-01T10:00:00Z", undefined),
);
const validStatus = fc.record(
  {
    state: fc.constantFrom("idle", "busy", "error", "offline"),
    task_id: fc.string({ maxLength: 12 }),
    ts: validTs,
  },
  { requiredKeys: ["state"] },
);
const validEvent = fc.record(
  {
    type: fc.oneof(
      fc.constantFrom("task.completed", "task.failed"),
      fc.stringMatching(/^[a-z]{1,3}\.[a-z]{1,3}$/),
    ),
    role: fc.oneof(fc.constantFrom(...CONFIGURED, ""), fc.stringMatching(/^[a-z]{1,6}$/)),
    task_id: fc.string({ maxLength: 12 }),
    ts: validTs,
  },
  { requiredKeys: ["type"] },
);
const statusLike = fc.record(
  {
    state: fc.oneof(fc.constantFrom("idle", "busy", "error", "offline", "IDLE", "sleeping", ""), anyField),
    task_id: fc.oneof(fc.string({ maxLength: 12 }), anyField),
    ts: timestamps,
  },
  { requiredKeys: [] },
);
const eventLike = fc.record(
  {
    type: fc.oneof(
      fc.constantFrom("task.completed", "task.failed", "agent.started", ""),
      fc.string({ maxLength: 80 }),
      anyField,
    ),
    role: fc.oneof(roles, anyField),
    task_id: fc.oneof(fc.string({ maxLength: 12 }), anyField),
    ts: timestamps,
  },
  { requiredKeys: [] },
);
const statusSubjects = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z]{1,6}$/).map((role) => `genbrain.agents.${role}.status`), weight: 3 },
  roles.map((role) => `genbrain.agents.${role}.status`),
  fc.string({ maxLength: 40 }),
);

describe("status and event handlers under arbitrary input", () => {
  it("status: never throws; each message counted valid or invalid exactly once; roles capped", () => {
    const org = newOrganization();
    // Debug on, so the logging path of refused messages runs too.
    const handle = createStatusHandler(org, captureLog("debug").log);
    let sent = 0;
    fc.assert(
      fc.property(statusSubjects, payloads(validStatus, statusLike), (subject, data) => {
        const before = org.agents.statusMessages + invalidCount(org, "status");
        handle(subject, data);
        sent++;
        expect(org.agents.statusMessages + invalidCount(org, "status")).toBe(before + 1);
      }),
      { numRuns: 3000 },
    );
    expect(org.agents.statusMessages + invalidCount(org, "status")).toBe(sent);
    // Both paths ran many times (the near-miss objects make valid statuses too).
    expect(org.agents.statusMessages).toBeGreaterThan(100);
    expect(invalidCount(org, "status")).toBeGreaterThan(100);
    const roster = org.agents.roster();
    for (const role of roster) expect(isValidRole(role), role).toBe(true);
    expect(roster.filter((r) => !CONFIGURED.includes(r)).length).toBeLessThanOrEqual(CAP);
  });

  it("events: never throws; each message counted valid or invalid exactly once; labels capped", () => {
    const org = newOrganization();
    const handle = createEventHandler(org, captureLog("debug").log);
    let sent = 0;
    fc.assert(
      fc.property(payloads(validEvent, eventLike), (data) => {
        const before = org.agents.eventMessages + invalidCount(org, "event");
        handle("genbrain.org.events", data);
        sent++;
        expect(org.agents.eventMessages + invalidCount(org, "event")).toBe(before + 1);
      }),
      { numRuns: 3000 },
    );
    expect(org.agents.eventMessages + invalidCount(org, "event")).toBe(sent);
    expect(org.agents.eventMessages).toBeGreaterThan(100);
    expect(invalidCount(org, "event")).toBeGreaterThan(100);
    let counted = 0;
    const types = new Set<string>();
    const eventRoles = new Set<string>();
    for (const [key, n] of org.agents.events) {
      const [type, role] = key.split("\u0000") as [string, string];
      types.add(type);
      eventRoles.add(role);
      counted += n;
    }
    expect(counted).toBe(org.agents.eventMessages);
    for (const type of types) expect(isSafeLabelValue(type), type).toBe(true);
    for (const role of eventRoles) expect(role === "" || isValidRole(role), role).toBe(true);
    expect([...types].filter((t) => t !== OVERFLOW_VALUE).length).toBeLessThanOrEqual(CAP);
    const unknownRoles = [...eventRoles].filter(
      (r) => r !== "" && r !== OVERFLOW_VALUE && !CONFIGURED.includes(r),
    );
    expect(unknownRoles.length).toBeLessThanOrEqual(CAP);
  });

  it("every reason a message is refused for is from the fixed vocabulary", () => {
    const org = newOrganization();
    const status = createStatusHandler(org, captureLog("silent").log);
    const event = createEventHandler(org, captureLog("silent").log);
    fc.assert(
      fc.property(
        statusSubjects,
        payloads(validStatus, statusLike),
        payloads(validEvent, eventLike),
        (subject, s, e) => {
          status(subject, s);
          event("genbrain.org.events", e);
        },
      ),
      { numRuns: 500 },
    );
    const reasons = new Set([...org.health.invalidMessages.keys()].map((k) => k.split("\u0000")[1]));
    for (const reason of reasons) expect(INVALID_REASONS).toContain(reason);
  });
});
