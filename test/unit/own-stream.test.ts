import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { LEDGER_BUCKET } from "../../src/sources/deadletter-router.js";
import { isOwnStream } from "../../src/sources/source.js";

describe("isOwnStream", () => {
  it("is orgwatch's advisory stream and its KV buckets' streams, nothing of the organization's", () => {
    const config = configWith({ "advisories.stream": "WATCH_ADVISORIES" });
    expect(isOwnStream("WATCH_ADVISORIES", config)).toBe(true);
    expect(isOwnStream("KV_" + LEDGER_BUCKET, config)).toBe(true);
    expect(isOwnStream("KV_" + String(config["chains.kv-bucket"]), config)).toBe(true);
    // The default advisory stream is not orgwatch's once another one is configured.
    expect(isOwnStream("ORGWATCH_ADVISORIES", config)).toBe(false);
    expect(isOwnStream("AGENT_CTO_TASKS", config)).toBe(false);
    expect(isOwnStream("KV_agents", config)).toBe(false);
  });
});
