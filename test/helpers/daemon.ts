// An in-process orgwatch daemon against a test nats-server, polled on demand.
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import { configWith } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { startDaemon, type Daemon } from "../../src/daemon.js";
import { silentLogger } from "../../src/log.js";
import type { Logger } from "../../src/log.js";

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
