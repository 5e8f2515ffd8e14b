// An in-process orgwatch daemon against a test nats-server, polled on demand.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { configWith } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { startDaemon, type Daemon } from "../../src/daemon.js";
import { silentLogger } from "../../src/log.js";
import type { Logger } from "../../src/log.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { createReferenceTopology, type TopologyOptions } from "./topology.js";

export function testConfig(
  natsUrl: string | string[],
  overrides: Partial<Record<keyof Config, unknown>> = {},
): Config {
  return configWith({
    "nats-url": Array.isArray(natsUrl) ? natsUrl : [natsUrl],
    "web.listen-address": "127.0.0.1:0",
    // Tests poll explicitly with daemon.pollNow(); the timer is a backstop.
    "poll-interval": 3_600_000,
    ...overrides,
  });
}

export async function startTestDaemon(
  natsUrl: string | string[],
  overrides: Partial<Record<keyof Config, unknown>> = {},
  options: { log?: Logger; spanExporter?: SpanExporter } = {},
): Promise<Daemon> {
  return startDaemon(testConfig(natsUrl, overrides), { ...options, log: options.log ?? silentLogger() });
}

/** A test's own nats-server, a client connection to it, and a daemon watching it. */
export interface TestOrg {
  readonly server: NatsServerProcess;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  readonly daemon: Daemon;
  /** Stops the daemon, then the connection, then the server. */
  stop(): Promise<void>;
}

export interface TestOrgOptions {
  /** The reference topology, made first when given. */
  topology?: TopologyOptions;
  /** Streams, consumers and messages of the test's own, made before the daemon starts. */
  prepare?: (jsm: JetStreamManager, js: JetStreamClient) => Promise<void>;
  settings?: Partial<Record<keyof Config, unknown>>;
  daemon?: { log?: Logger; spanExporter?: SpanExporter };
  /** Wait for every source to start and run the first poll before returning. */
  firstPoll?: boolean;
}

export async function startTestOrg(options: TestOrgOptions): Promise<TestOrg> {
  const server = await startNatsServer();
  let nc: NatsConnection | undefined;
  let daemon: Daemon | undefined;
  const stop = async () => {
    await daemon?.stop();
    await nc?.close();
    await server.stop();
  };
  try {
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    if (options.topology) await createReferenceTopology(jsm, options.topology);
    await options.prepare?.(jsm, js);
    daemon = await startTestDaemon(server.url, options.settings, options.daemon);
    if (options.firstPoll) await daemon.pollNow();
    return { server, nc, jsm, js, daemon, stop };
  } catch (err) {
    // A failed start leaves nothing running: the test's afterAll has no handle to stop.
    await stop().catch(() => undefined);
    throw err;
  }
}
