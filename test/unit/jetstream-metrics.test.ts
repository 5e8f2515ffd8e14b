// The consumer and stream families are rendered to text once per poll; only the age is computed at
// scrape time. Checked on the exporter alone, with polls made by hand.
import { describe, expect, it } from "vitest";
import { configWith, exportFilterOf } from "../../src/config/load.js";
import { registerDeadLetterMetrics } from "../../src/exporters/metrics/deadletters.js";
import {
  escapeLabelValue,
  registerJetStreamMetrics,
  renderAges,
  renderPoll,
} from "../../src/exporters/metrics/jetstream.js";
import { identityBody, MetricsRegistry, Precompressed } from "../../src/exporters/metrics/registry.js";
import type { ConsumerState, StreamState } from "../../src/model/jetstream.js";
import { Organization } from "../../src/model/organization.js";
import { consumerState, pollResult, streamState } from "../helpers/jetstream-fixtures.js";
import { parseScrape } from "../helpers/metrics.js";
import { createExportFilter } from "../../src/logic/export-filter.js";

function stream(name: string, overrides: Partial<StreamState> = {}): StreamState {
  return streamState(name, {
    subjects: [`genbrain.agents.${name.toLowerCase()}.tasks`],
    role: name.toLowerCase(),
    messages: 3,
    bytes: 120,
    firstSequence: 1,
    lastSequence: 3,
    consumers: 1,
    ...overrides,
  });
}

function consumer(streamName: string, name: string, overrides: Partial<ConsumerState> = {}): ConsumerState {
  return consumerState(streamName, name, {
    role: "cto",
    pending: 2,
    ackPending: 1,
    redelivered: 1,
    deliveredStreamSequence: 1,
    deliveredConsumerSequence: 2,
    createdMs: 1_000,
    lastDeliveryMs: 1_700_000_000_500,
    ackWaitMs: 1_800_000,
    oldestUnackedSequence: 1,
    oldestUnackedMs: 1_700_000_000_000,
    status: "stalled",
    ...overrides,
  });
}

const poll = (streams: StreamState[], consumers: ConsumerState[]) => pollResult(0, streams, consumers);

describe("JetStream metrics exporter", () => {
  it("renders each series with its labels, one-hot status, and omits times the server did not give", () => {
    const rendered = renderPoll(poll([stream("CTO")], [consumer("CTO", "cto-worker")]));
    const m = parseScrape(rendered.fixed + renderAges(rendered, 1_700_000_010_000));
    const labels = { stream: "CTO", consumer: "cto-worker", role: "cto", kind: "tasks" };
    expect(m.series("orgwatch_consumer_lag_messages")).toEqual([{ labels, value: 3 }]);
    expect(m.value("orgwatch_consumer_last_delivery_timestamp_seconds", labels)).toBe(1_700_000_000.5);
    expect(m.series("orgwatch_consumer_last_ack_timestamp_seconds")).toEqual([]);
    expect(m.value("orgwatch_consumer_ack_wait_seconds", labels)).toBe(1800);
    expect(m.value("orgwatch_consumer_oldest_unacked_age_seconds", labels)).toBe(10);
    expect(
      m.series("orgwatch_consumer_status", labels).map((s) => `${s.labels["status"]}=${s.value}`),
    ).toEqual(["ok=0", "lagging=0", "stalled=1", "stopped=0"]);
    expect(m.series("orgwatch_stream_bytes")).toEqual([
      { labels: { stream: "CTO", role: "cto", kind: "tasks" }, value: 120 },
    ]);
    // Every family has its HELP and TYPE, even when it has no series.
    expect(rendered.fixed).toContain("# TYPE orgwatch_consumer_last_ack_timestamp_seconds gauge\n");
  });

  it("never reports a negative age (clock skew), and 0 when nothing is unacknowledged", () => {
    const rendered = renderPoll(
      poll(
        [stream("CTO")],
        [
          consumer("CTO", "a"),
          consumer("CTO", "b", { oldestUnackedMs: undefined, oldestUnackedSequence: undefined }),
        ],
      ),
    );
    const m = parseScrape(renderAges(rendered, 1_699_999_999_000));
    expect(m.value("orgwatch_consumer_oldest_unacked_age_seconds", { consumer: "a" })).toBe(0);
    expect(m.value("orgwatch_consumer_oldest_unacked_age_seconds", { consumer: "b" })).toBe(0);
  });

  it("escapes label values", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const rendered = renderPoll(poll([stream('we"ird', { role: "" })], []));
    expect(parseScrape(rendered.fixed).series("orgwatch_stream_messages")[0]!.labels["stream"]).toBe(
      'we"ird',
    );
  });

  it("renders the text once per poll: scrapes reuse it until the next poll", async () => {
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerJetStreamMetrics(metrics, org);
    const body = async () => (await metrics.render(false)).body;
    expect((await body()).trim()).toBe("");

    const first = poll([stream("CTO")], [consumer("CTO", "cto-worker")]);
    org.jetstream.applyPoll(first);
    const fixed = (text: string) => text.split("\n").filter((l) => !l.includes("oldest_unacked_age"));
    const once = await body();
    // Changing the poll's data behind the exporter's back shows nothing: the text was made at the poll.
    (first.streams as Map<string, StreamState>).set("CEO", stream("CEO"));
    expect(fixed(await body())).toEqual(fixed(once));
    expect(parseScrape(await body()).series("orgwatch_stream_messages")).toHaveLength(1);

    org.jetstream.applyPoll(poll([stream("CEO")], []));
    const m = parseScrape(await body());
    expect(m.series("orgwatch_stream_messages").map((s) => s.labels["stream"])).toEqual(["CEO"]);
    expect(m.series("orgwatch_consumer_lag_messages")).toEqual([]);
  });

  it("keeps a poll's text intact while a scrape holds it, through the next polls", async () => {
    // Each poll's text is written into a reused arena (text-arena.ts): without the hold, the third
    // poll would write over the first's while a slow scrape still sends it.
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerJetStreamMetrics(metrics, org);
    const withPending = (pending: number) =>
      poll([stream("CTO")], [consumer("CTO", "cto-worker", { pending })]);
    const lag = (text: string) => parseScrape(text).series("orgwatch_consumer_lag_messages")[0]?.value;
    org.jetstream.applyPoll(withPending(10));
    const slow = await metrics.renderChunks(false);
    for (const pending of [20, 30, 40]) {
      org.jetstream.applyPoll(withPending(pending));
      expect(lag((await metrics.render(false)).body)).toBe(pending + 1);
    }
    expect(lag(Buffer.concat(await identityBody(slow.chunks)).toString("utf8"))).toBe(11);
    slow.release();
    for (const pending of [50, 60, 70]) {
      org.jetstream.applyPoll(withPending(pending));
      expect(lag((await metrics.render(false)).body)).toBe(pending + 1);
    }
  });

  it("renders a large poll in slices (yielding between them) to the same text, every consumer once", async () => {
    // 1,201 consumers: more than the 500 rendered synchronously, the last slice a partial one.
    const consumers = Array.from({ length: 1201 }, (_, i) =>
      consumer(
        "CTO",
        `w${i}`,
        i % 3 === 0 ? {} : { oldestUnackedMs: undefined, oldestUnackedSequence: undefined },
      ),
    );
    const result = poll([stream("CTO")], consumers);
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerJetStreamMetrics(metrics, org);
    org.jetstream.applyPoll(result);
    const at = Date.now();
    const body = (await metrics.render(false)).body;
    const m = parseScrape(body);
    expect(m.series("orgwatch_consumer_lag_messages").map((s) => s.labels["consumer"])).toEqual(
      consumers.map((c) => c.name),
    );
    expect(m.series("orgwatch_consumer_status")).toHaveLength(1201 * 4);
    // 401 consumers with unacknowledged work (every third) and 800 at 0.
    const ages = m.series("orgwatch_consumer_oldest_unacked_age_seconds");
    expect(ages).toHaveLength(1201);
    expect(ages.filter((s) => s.value === 0)).toHaveLength(800);
    expect(ages.filter((s) => s.value >= (at - 1_700_000_000_000) / 1000)).toHaveLength(401);
    const fixed = (text: string) =>
      text.split("\n").filter((l) => l !== "" && !l.includes("oldest_unacked_age"));
    expect(fixed(body)).toEqual(fixed(renderPoll(result).fixed));
  });

  it("serves the previous poll's whole text while a large poll's text is being rendered", async () => {
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerJetStreamMetrics(metrics, org);
    const large = (pending: number) =>
      poll(
        [stream("CTO")],
        Array.from({ length: 1201 }, (_, i) => consumer("CTO", `w${i}`, { pending, ackPending: 0 })),
      );
    const lags = async () =>
      new Set(
        parseScrape((await metrics.render(false)).body)
          .series("orgwatch_consumer_lag_messages")
          .map((s) => s.value),
      );
    org.jetstream.applyPoll(large(1));
    // Before any text is ready, a scrape waits for the first.
    expect(await lags()).toEqual(new Set([1]));
    org.jetstream.applyPoll(large(2));
    // At once: the previous poll's, every consumer of it (not half of each).
    expect(await lags()).toEqual(new Set([1]));
    // Some turns of the event loop later (3 slices, then its gzip encoded on the threadpool), the
    // new poll's; never a mix of the two.
    let seen = new Set<number>();
    for (let turn = 0; turn < 1000 && !seen.has(2); turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      seen = await lags();
    }
    expect(seen).toEqual(new Set([2]));
  });

  it("serves a large poll's text once its gzip is ready: a scrape asking for gzip never waits to encode it", async () => {
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerJetStreamMetrics(metrics, org);
    const large = poll(
      [stream("CTO")],
      Array.from({ length: 1201 }, (_, i) => consumer("CTO", `w${i}`)),
    );
    org.jetstream.applyPoll(large);
    const scrape = await metrics.renderChunks(false);
    const fixedPart = scrape.chunks.find((c) => c instanceof Precompressed)!;
    // Kept only encoded (15.5 MB of text at 10,000 consumers, 0.8 MB as gzip).
    expect(fixedPart.raw).toBeUndefined();
    // Already encoded: settled within microtasks, before the event loop could run the threadpool's
    // completion of an encoding started now.
    let encoded = false;
    void fixedPart.gzipped.then(() => (encoded = true));
    for (let i = 0; i < 3; i++) await Promise.resolve();
    scrape.release();
    expect(encoded).toBe(true);
  });
});

describe("choosing what is exported (allow and deny lists)", () => {
  // 4 streams × 5 consumers; each consumer has every family's sample (times included).
  const streams = ["CTO", "CEO", "AUDIT_A", "AUDIT_B"].map((n) => stream(n));
  const consumers = streams.flatMap((s) =>
    [0, 1, 2, 3, 4].map((i) => consumer(s.name, `w${i}`, { lastAckMs: 1_700_000_000_900 })),
  );
  const series = (filter = createExportFilter({})) => {
    const r = renderPoll(poll(streams, consumers), filter);
    const text = r.fixed + renderAges(r, 1_700_000_001_000);
    return text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  };
  const all = series();
  const perConsumer = all.filter((l) => l.includes('consumer="w0"') && l.includes('stream="CTO"')).length;
  const perStream = all.filter((l) => !l.includes("consumer=") && l.includes('stream="CTO"')).length;

  it("keeps everything with no pattern", () => {
    expect(all).toHaveLength(20 * perConsumer + 4 * perStream);
  });
  it("drops the streams denied, with all their consumers", () => {
    expect(series(createExportFilter({ streamsDeny: "AUDIT_.*" }))).toHaveLength(
      10 * perConsumer + 2 * perStream,
    );
    expect(series(createExportFilter({ streamsAllow: "CTO" }))).toHaveLength(5 * perConsumer + perStream);
  });
  it("keeps the consumers allowed (matched as STREAM/consumer), whole names only", () => {
    expect(series(createExportFilter({ consumersAllow: ".*/w0" }))).toHaveLength(
      4 * perConsumer + 4 * perStream,
    );
    expect(series(createExportFilter({ consumersAllow: "w0" }))).toHaveLength(4 * perStream);
    expect(series(createExportFilter({ consumersAllow: "CTO/.*", consumersDeny: "CTO/w[34]" }))).toHaveLength(
      3 * perConsumer + 4 * perStream,
    );
  });
  it("switches families off: a deny wins over an allow", () => {
    const onlyLag = series(createExportFilter({ familiesAllow: "orgwatch_consumer_(lag_messages|status)" }));
    expect(onlyLag).toHaveLength(20 * (1 + 4));
    expect(new Set(onlyLag.map((l) => l.split("{")[0]))).toEqual(
      new Set(["orgwatch_consumer_lag_messages", "orgwatch_consumer_status"]),
    );
    expect(
      series(
        createExportFilter({
          familiesAllow: "orgwatch_consumer_.*",
          familiesDeny: "orgwatch_consumer_status",
        }),
      ),
    ).toHaveLength(20 * (perConsumer - 4));
  });
  it("switches prom-client families off too (the daemon's keepFamilies)", async () => {
    const config = configWith({ "metrics.families-deny": "orgwatch_deadletter_.*" });
    const metrics = new MetricsRegistry();
    registerDeadLetterMetrics(metrics, new Organization(config));
    const before = (await metrics.render(false)).body;
    expect(before).toContain("# TYPE orgwatch_deadletter_replays_total counter");
    const filter = exportFilterOf(config);
    metrics.keepFamilies((name) => filter.family(name));
    const after = (await metrics.render(false)).body;
    expect(after).not.toContain("orgwatch_deadletter_");
    expect(after).toContain("# TYPE orgwatch_consumer_naks_total counter");
  });
  it("refuses a pattern that is not a regular expression, naming the setting", () => {
    expect(() => configWith({ "metrics.consumers-deny": "(" })).toThrow(
      /^invalid setting --metrics.consumers-deny: not a regular expression/,
    );
  });
});
