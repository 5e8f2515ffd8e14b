// Poll cost: one full orgwatch poll (the daemon's own poller, in this process) against the bare
// requests it needs (bench/bare-client.ts), side by side on the same server in the same run.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { configWith } from "../src/config/load.js";
import { silentLogger } from "../src/log.js";
import { connectionOptions } from "../src/nats/connect.js";
import type { PollResult } from "../src/model/jetstream.js";
import { Organization } from "../src/model/organization.js";
import { startJetStreamPoller } from "../src/sources/jetstream-poller.js";
import { startRequests } from "../src/nats/requests.js";
import { barePoll, perConsumerInfo, type BareResult } from "./bare-client.js";
import { fullCollector } from "./collect.js";
import { median } from "./stats.js";
import type { BenchTopology } from "./topology.js";

export interface PollSample {
  readonly requests: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  /** Bytes received + sent on the connection during the poll. */
  readonly bytes: number;
  readonly consumers: number;
  readonly reads: number;
}

export interface PollCost {
  readonly topology: BenchTopology;
  /** The requests a poll needs: stream-list pages + consumer-list pages + one read per lagging consumer. */
  readonly expectedRequests: number;
  /** First poll of a fresh poller: every lagging consumer's oldest message is read. */
  readonly cold: PollSample;
  /** Later polls: unchanged ack floors cost no read. */
  readonly warm: PollSample;
  /** The bare client on nats.js's `request()`. */
  readonly bare: BareResult;
  /** The bare client on orgwatch's own request path (src/nats/requests.ts): the bookkeeping alone. */
  readonly bareOwnRequests: BareResult;
  /** Cold orgwatch wall time / bare wall time (target ≤ 1.5). */
  readonly ratio: number;
  /** Cold orgwatch wall time / the bare client's on orgwatch's request path. */
  readonly ownRequestsRatio: number;
  /** One CONSUMER.INFO per consumer: what the paged lists avoid. */
  readonly perConsumerInfoMs: number | undefined;
}

const PAGE = 256;

export function expectedRequests(t: BenchTopology): number {
  const perStream = Math.ceil(t.consumers / t.streams);
  return Math.ceil(t.streams / PAGE) + t.streams * Math.ceil(perStream / PAGE) + t.lagging;
}

async function measurePoll(nc: NatsConnection, run: () => Promise<PollResult>): Promise<PollSample> {
  const stats0 = nc.stats();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await run();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const stats = nc.stats();
  let reads = 0;
  for (const c of result.consumers.values()) if (c.oldestUnackedSequence !== undefined) reads++;
  return {
    requests: result.requests,
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    bytes: stats.inBytes - stats0.inBytes + (stats.outBytes - stats0.outBytes),
    consumers: result.consumers.size,
    reads,
  };
}

/** A poller of the daemon's, parked (its timer never fires), polled by hand. */
async function parkedPoller(nc: NatsConnection, url: string, concurrency: number) {
  const config = configWith({
    "nats-url": [url],
    "poll-interval": 24 * 3600_000,
    "poll-concurrency": concurrency,
  });
  const org = new Organization(config);
  org.health.natsConnected = true;
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const next = () =>
    new Promise<PollResult>((resolve, reject) => {
      const errors = org.health.pollErrors;
      const watch = setInterval(() => {
        if (org.health.pollErrors > errors) {
          clearInterval(watch);
          reject(new Error(org.health.lastPollError ?? "poll failed"));
        }
      }, 5);
      org.jetstream.once("polled", (r) => {
        clearInterval(watch);
        resolve(r);
      });
    });
  const first = next();
  const poller = startJetStreamPoller({ nc, jsm, js: jetstream(nc), config, org, log: silentLogger() });
  return {
    first,
    async again(): Promise<PollResult> {
      const r = next();
      void poller.pollNow();
      return r;
    },
    stop: () => poller.stop(),
  };
}

/** Each field's median over the runs (every field of a sample is a number). */
function medians<T extends object>(runs: readonly T[]): T {
  const keys = Object.keys(runs[0]!) as (keyof T)[];
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k] as number))])) as T;
}

export async function measurePollCost(
  url: string,
  topology: BenchTopology,
  { iterations = 5, concurrency = 32, infoBaseline = true } = {},
): Promise<PollCost> {
  // The daemon's own connection options, for both: without them nats.js built two errors per request
  // for their stack traces (`noAsyncTraces`), a cost the daemon does not pay (BENCHMARKS.md,
  // 2026-12-07, evening).
  const nc = await connect({ ...connectionOptions(configWith({ "nats-url": [url] })), name: "bench-poll" });
  // A full collection before each measured poll, orgwatch's and the bare client's: without it each
  // paid for the garbage of the one before, and the same code measured 0.93–1.55× at 30,000
  // consumers from run to run (BENCHMARKS.md, 2026-12-07, day).
  const gc = fullCollector();
  try {
    const colds: PollSample[] = [];
    const bares: BareResult[] = [];
    const baresOwn: BareResult[] = [];
    const own = startRequests(nc, 10_000);
    let warm: PollSample[] = [];
    let consumers: { stream: string; name: string }[] = [];
    // Alternate, so that both see the same server state and the same background load.
    for (let i = 0; i < iterations; i++) {
      gc();
      bares.push(await barePoll(nc, concurrency));
      gc();
      baresOwn.push(await barePoll(nc, concurrency, own.request));
      gc(); // before the poller: its first poll starts with it
      const poller = await parkedPoller(nc, url, concurrency);
      try {
        let result: PollResult | undefined;
        colds.push(
          await measurePoll(nc, async () => {
            result = await poller.first;
            return result;
          }),
        );
        if (i === 0) {
          consumers = [...result!.consumers.values()].map((c) => ({ stream: c.stream, name: c.name }));
          for (let k = 0; k < iterations; k++) {
            gc();
            warm.push(await measurePoll(nc, () => poller.again()));
          }
        }
      } finally {
        await poller.stop();
      }
    }
    warm = warm.length > 0 ? warm : colds;
    own.stop();
    const cold = medians(colds);
    const bare = medians(bares);
    const bareOwnRequests = medians(baresOwn);
    const info = infoBaseline ? await perConsumerInfo(nc, consumers, concurrency) : undefined;
    return {
      topology,
      expectedRequests: expectedRequests(topology),
      cold,
      warm: medians(warm),
      bare,
      bareOwnRequests,
      ratio: cold.wallMs / bare.wallMs,
      ownRequestsRatio: cold.wallMs / bareOwnRequests.wallMs,
      perConsumerInfoMs: info?.wallMs,
    };
  } finally {
    await nc.close();
  }
}
