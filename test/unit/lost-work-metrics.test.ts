// orgwatch_consumer_lost_messages_total is rendered once per change of the model (a poll, a loss,
// a save that changed a total), in slices, and kept as bytes: checked on the exporter alone, with
// polls made by hand, in both formats and above the slice size.
import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { registerLostWorkMetrics } from "../../src/exporters/metrics/lost-work.js";
import { identityBody, MetricsRegistry } from "../../src/exporters/metrics/registry.js";
import { Organization } from "../../src/model/organization.js";
import { consumerState, pollResult, streamState } from "../helpers/jetstream-fixtures.js";
import { parseScrape } from "../helpers/metrics.js";

const CONSUMERS = 1_234;
const LOST = "orgwatch_consumer_lost_messages_total";

/** Stream S{i} (max age 1 h) holding first..3, consumer w{i} with nothing delivered. */
function poll(at: number, first: (i: number) => number) {
  const streams = Array.from({ length: CONSUMERS }, (_, i) =>
    streamState(`S${i}`, {
      maxAgeMs: 3_600_000,
      firstSequence: first(i),
      lastSequence: 3,
      messages: 4 - first(i),
    }),
  );
  const consumers = Array.from({ length: CONSUMERS }, (_, i) =>
    consumerState(`S${i}`, `w${i}`, { role: `r${i % 7}`, pending: 4 - first(i) }),
  );
  return pollResult(at, streams, consumers);
}

function setup() {
  const org = new Organization(configWith({}));
  const metrics = new MetricsRegistry();
  registerLostWorkMetrics(metrics, org);
  // The section's chunk comes after prom-client's text (the unrouted counter).
  const chunks = async (openMetrics = false) => (await metrics.renderChunks(openMetrics)).chunks.slice(1);
  const scrape = async (openMetrics = false) => parseScrape((await metrics.render(openMetrics)).body);
  return { org, metrics, chunks, scrape };
}

describe("lost-work metrics exporter", () => {
  it("shows every consumer at 0 for its stream's own limit, then the exact losses of the next poll", async () => {
    const { org, scrape } = setup();
    org.jetstream.applyPoll(poll(1_000, () => 1));
    let m = await scrape();
    expect(m.series(LOST)).toHaveLength(CONSUMERS);
    expect(m.series(LOST).every((s) => s.value === 0 && s.labels["reason"] === "max_age")).toBe(true);
    // Every 10th stream removed its two oldest messages, which its consumer never received.
    org.jetstream.applyPoll(poll(2_000, (i) => (i % 10 === 0 ? 3 : 1)));
    m = await scrape();
    const lost = m.series(LOST).filter((s) => s.value > 0);
    expect(lost).toHaveLength(Math.ceil(CONSUMERS / 10));
    expect(lost.every((s) => s.value === 2 && s.labels["reason"] === "max_age")).toBe(true);
    expect(m.value(LOST, { stream: "S10", consumer: "w10", role: "r3", reason: "max_age" })).toBe(2);
    // OpenMetrics: HELP and TYPE without `_total`, the same samples.
    const text = (await setup().metrics.render(true)).body;
    expect(text).toContain("# TYPE orgwatch_consumer_lost_messages counter\n");
  });

  it("is not rendered again until something it shows changed", async () => {
    const { org, chunks } = setup();
    org.jetstream.applyPoll(poll(1_000, () => 1));
    const first = await chunks();
    expect(await chunks()).toEqual(first);
    expect((await chunks())[0]).toBe(first[0]);
    // A save of a state whose totals did not change (a flush with nothing lost) keeps the text.
    const version = org.lostWork.version;
    org.lostWork.takeDirty().saved();
    expect(org.lostWork.version).toBe(version);
    expect((await chunks())[0]).toBe(first[0]);
    // A new poll that changed no total renders it again, serving the previous text meanwhile
    // (1,234 consumers take 3 slices).
    org.jetstream.applyPoll(poll(2_000, () => 1));
    expect((await chunks())[0]).toBe(first[0]);
    let now = first[0];
    for (let turn = 0; turn < 20 && now === first[0]; turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      now = (await chunks())[0];
    }
    expect(now).not.toBe(first[0]);
    // A changed total is never served late: the next scrape waits for it.
    org.jetstream.applyPoll(poll(3_000, (i) => (i === 5 ? 3 : 1)));
    const text = Buffer.concat(await identityBody(await chunks()));
    expect(parseScrape(text.toString("utf8")).value(LOST, { stream: "S5", reason: "max_age" })).toBe(2);
  });
});
