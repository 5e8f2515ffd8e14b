// The benchmark organization: `streams` streams holding `consumers` durable consumers between them,
// a fraction of them lagging. Each consumer filters a subject of its own, so every lagging consumer
// costs the poll one message read (the worst case: consumers sharing a filter and an ack floor share
// one read).
import pLimit from "p-limit";
import {
  AckPolicy,
  DeliverPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { configWith } from "../src/config/load.js";
import { startDaemon, type Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";

export interface BenchTopology {
  readonly streams: number;
  readonly consumers: number;
  /** Consumers with unprocessed work (messages on their filter, nothing delivered). */
  readonly lagging: number;
  /** Messages waiting per lagging consumer. */
  readonly backlog: number;
}

export const streamName = (i: number) => `BENCH_${i}`;
export const consumerName = (j: number) => `w${j}`;
/** Stream i holds `bench.i.*`; consumer j of it filters `bench.i.j`. */
export const filterSubject = (i: number, j: number) => `bench.${i}.${j}`;

/** Every `lagEvery`-th consumer lags; consumers are spread evenly over the streams. */
export function planTopology(streams: number, consumers: number, lagEvery = 3, backlog = 2): BenchTopology {
  return { streams, consumers, lagging: Math.ceil(consumers / lagEvery), backlog };
}

export async function createBenchTopology(
  nc: NatsConnection,
  jsm: JetStreamManager,
  t: BenchTopology,
  lagEvery = 3,
): Promise<void> {
  const limit = pLimit(64);
  await Promise.all(
    Array.from({ length: t.streams }, (_, i) =>
      limit(() =>
        jsm.streams.add({
          name: streamName(i),
          subjects: [`bench.${i}.*`],
          storage: StorageType.File,
          max_age: nanos(72 * 3600_000),
        }),
      ),
    ),
  );
  const jobs: Promise<unknown>[] = [];
  for (let n = 0; n < t.consumers; n++) {
    const i = n % t.streams;
    const j = Math.floor(n / t.streams);
    jobs.push(
      limit(() =>
        jsm.consumers.add(streamName(i), {
          durable_name: consumerName(j),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: filterSubject(i, j),
          max_deliver: 3,
          ack_wait: nanos(30 * 60_000),
        }),
      ),
    );
    if (n % lagEvery === 0) {
      for (let k = 0; k < t.backlog; k++) nc.publish(filterSubject(i, j), `{"task_id":"t-${n}-${k}"}`);
    }
  }
  await Promise.all(jobs);
  await nc.flush();
}

/**
 * The bench topology and `agents` agents' task streams (`AGENT_R{i}_TASKS`, a durable worker each,
 * i % 8 tasks waiting), then an orgwatch daemon on them polling only on demand: the model's size
 * around the agents for the admission and console benchmarks.
 */
export async function startAgentsDaemon(
  url: string,
  streams: number,
  consumers: number,
  agents: number,
): Promise<{ topology: BenchTopology; daemon: Daemon }> {
  const topology = planTopology(streams, consumers);
  const setup = await connect({ servers: url, name: "bench-setup" });
  const jsm = await jetstreamManager(setup, { checkAPI: false });
  await createBenchTopology(setup, jsm, topology);
  for (let i = 0; i < agents; i++) {
    const stream = `AGENT_R${i}_TASKS`;
    await jsm.streams.add({ name: stream, subjects: [`genbrain.agents.r${i}.tasks`] });
    await jsm.consumers.add(stream, { durable_name: `r${i}-worker`, ack_policy: AckPolicy.Explicit });
    for (let k = 0; k < i % 8; k++) setup.publish(`genbrain.agents.r${i}.tasks`, `{"task_id":"r${i}-${k}"}`);
  }
  await setup.flush();
  await setup.close();
  const daemon = await startDaemon(
    configWith({ "nats-url": [url], "web.listen-address": "127.0.0.1:0", "poll-interval": 3_600_000 }),
    { log: silentLogger() },
  );
  return { topology, daemon };
}
