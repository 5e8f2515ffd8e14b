// Which nats-server versions keep a dead letter's redelivered entry (shared/reference/jetstream-removal.md):
// orgwatch subtracts its dead letters only there, so nothing is subtracted twice on newer servers.
import { describe, expect, it } from "vitest";
import { keepsDeadRedeliveredEntry, parseVersion } from "../../src/logic/server-version.js";

describe("nats-server versions", () => {
  it("keeps the entry up to 2.12.8 and in 2.14.0; drops it from 2.12.9 and 2.14.1", () => {
    expect(["2.9.10", "2.10.29", "2.11.17", "2.12.8", "2.14.0"].map(keepsDeadRedeliveredEntry)).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(["2.12.9", "2.12.15", "2.14.1", "2.14.5", "3.0.0"].map(keepsDeadRedeliveredEntry)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it("reads pre-releases and refuses what is not a version (nothing is subtracted then)", () => {
    expect(parseVersion("2.12.9-beta.1")).toEqual([2, 12, 9]);
    expect(parseVersion("v2.9.10")).toEqual([2, 9, 10]);
    expect(keepsDeadRedeliveredEntry(undefined)).toBe(false);
    expect(keepsDeadRedeliveredEntry("nightly")).toBe(false);
  });
});
