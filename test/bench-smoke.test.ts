// A small run of every benchmark of bench/ (npm run bench): correctness only, never timing. Each
// measures what it claims on a topology whose truth is known.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort, startNatsServer, type NatsServerProcess } from "../src/nats/server-process.js";
import { admissionTable, measureAdmission } from "../bench/admission.js";
import { measureChains } from "../bench/chains.js";
import { historiesTable, measureHistories } from "../bench/histories.js";
import { consoleTable, measureConsole } from "../bench/console.js";
import { INGEST_SERVER_CONFIG, measureIngest } from "../bench/ingest.js";
import { expectedRequests, measurePollCost } from "../bench/poll-cost.js";
import { chainTable, growthTable, ingestTable, natsTable, pollTable, scrapeTable } from "../bench/report.js";
import { measureScrape } from "../bench/scrape.js";
import { createBenchTopology, planTopology } from "../bench/topology.js";

// 4 streams, 20 consumers (5 a stream), every third lagging: consumers 0, 3, ..., 18.
const TOPOLOGY = planTopology(4, 20);

describe("benchmarks (smoke)", () => {
  let server: NatsServerProcess;
  let monitorPort: number;

  beforeAll(async () => {
    monitorPort = await freePort();
    server = await startNatsServer({ args: ["-m", String(monitorPort)], config: INGEST_SERVER_CONFIG });
    const nc = await connect({ servers: server.url });
    await createBenchTopology(nc, await jetstreamManager(nc, { checkAPI: false }), TOPOLOGY);
    await nc.close();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("console: every client gets every poll's event; the clients cost NATS nothing", async () => {
    const own = await startNatsServer();
    try {
      const r = await measureConsole(own.url, { streams: 2, consumers: 4, clients: 5, polls: 2 });
      expect(r.consumers).toBe(54);
      expect(r.requestsPerPoll.clients).toBe(r.requestsPerPoll.none);
      expect(r.eventBytes).toBeGreaterThan(0);
      expect(Object.keys(r.page)).toEqual(["/", "/console/app.js", "/console/app.css"]);
      expect(consoleTable(r).split("\n")).toHaveLength(3);
    } finally {
      await own.stop();
    }
  });

  it("histories: an hour of polls for every consumer, the heap they hold measured at its end", () => {
    // A poll every 10 minutes: the hour is six polls.
    const r = measureHistories(100, 600_000);
    expect(r.heldMb.map((h) => h.polls)).toEqual([6]);
    expect(r.msPerPoll).toBeGreaterThan(0);
    expect(historiesTable(r).split("\n")).toHaveLength(3);
  });

  it("admission: answers every request, in-process and over NATS", async () => {
    const own = await startNatsServer();
    try {
      const r = await measureAdmission(own.url, { streams: 2, consumers: 4, requests: 200 });
      expect(r.consumers).toBe(54);
      expect(r.decisionsPerSecond).toBeGreaterThan(0);
      expect(r.requestsPerSecond).toBeGreaterThan(0);
      expect(admissionTable(r).split("\n")).toHaveLength(3);
    } finally {
      await own.stop();
    }
  });

  it("poll cost: orgwatch and the bare client send exactly the requests a poll needs", async () => {
    expect(TOPOLOGY.lagging).toBe(7);
    // 1 stream-list page + 4 consumer-list pages + 7 message reads.
    expect(expectedRequests(TOPOLOGY)).toBe(12);
    const r = await measurePollCost(server.url, TOPOLOGY, { iterations: 1 });
    expect(r.cold).toMatchObject({ requests: 12, consumers: 20, reads: 7 });
    expect(r.bare).toMatchObject({ requests: 12, streams: 4, consumers: 20, reads: 7 });
    expect(r.bareOwnRequests).toMatchObject({ requests: 12, streams: 4, consumers: 20, reads: 7 });
    // Unchanged ack floors: the warm poll reads nothing again, yet still knows every oldest message.
    expect(r.warm).toMatchObject({ requests: 5, consumers: 20, reads: 7 });
    expect(r.cold.bytes).toBeGreaterThan(0);
    expect(r.perConsumerInfoMs).toBeGreaterThan(0);
    expect(pollTable([r])).toContain("| 4 | 20 | 7 | 12 | 12 / 5 | 12 |");
  });

  it("ingest: every message published by the other process is received, by orgwatch and the bare subscriber", async () => {
    for (const mode of ["live", "drain"] as const) {
      const r = await measureIngest(server.url, { messages: 2000, roles: 6, mode });
      expect(r.orgwatch).toMatchObject({ received: 2000, dropped: 0 });
      expect(r.bare).toMatchObject({ received: 2000, dropped: 0 });
      expect(ingestTable([r])).toContain(`| ${mode} | 2,000 |`);
    }
  });

  it("chains: every task of every 3-step chain becomes a span, children under their parents", async () => {
    const r = await measureChains(server.url, { chains: 20, tasksPerSecond: 120, pollIntervalMs: 500 });
    expect(r).toMatchObject({ chains: 20, tasks: 60, completed: 60, spansExported: 60, spansLinked: 40 });
    expect(r.exportDelayMaxMs).toBeGreaterThanOrEqual(0);
    expect(chainTable(r)).toContain("| 60 | 20 |");
  });

  it("/metrics and NATS load: the daemon's series, the bare registry's same gauges, the server's API count", async () => {
    const r = await measureScrape(
      server.url,
      { pid: server.pid!, monitorUrl: `http://127.0.0.1:${monitorPort}` },
      20,
      {
        loaded: true,
        idle: true,
        pollIntervalMs: 300,
        durationMs: 1000,
        scrapeEveryMs: 100,
        bareScrapes: 2,
        idleMs: 100,
      },
    );
    // The consumer families alone: 11 gauges + the age + 4 one-hot statuses per consumer.
    expect(r.orgwatch.series).toBeGreaterThanOrEqual(20 * 16);
    expect(r.orgwatch.scrapes).toBeGreaterThanOrEqual(3);
    expect(r.bare.scrapes).toBe(2);
    expect(r.bare.series).toBeGreaterThanOrEqual(20 * 16);
    expect(r.bare.series).toBeLessThanOrEqual(r.orgwatch.series);
    expect(r.orgwatch.child.rssPeakMb).toBeGreaterThan(0);
    expect(r.orgwatchLoaded?.series).toBe(r.orgwatch.series);
    // The built daemon idle: a real process's resident set, its peak at least as large.
    expect(r.idle!.rssMb).toBeGreaterThan(20);
    expect(r.idle!.rssPeakMb).toBeGreaterThanOrEqual(r.idle!.rssMb);
    expect(r.nats.polls).toBeGreaterThanOrEqual(1);
    // Every poll lists 1 stream page and 4 consumer pages at least.
    expect(r.nats.apiRequests).toBeGreaterThanOrEqual(r.nats.polls * 5);
    expect(scrapeTable(r, 20)).toContain("bare prom-client, same series");
    expect(natsTable(r, 20, 300)).toContain("poll every 0.3 s");
    expect(growthTable([], [r], r.idle!.rssMb)).toContain(`| 20 | – | – |`);
  });
});
