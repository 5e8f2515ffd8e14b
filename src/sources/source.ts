// What every source of data is given, and what it gives back. A source reads NATS and writes into
// the model; it never touches an exporter.
import { nuid, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";

export interface SourceContext {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  readonly config: Config;
  readonly org: Organization;
  readonly log: Logger;
}

/** The context every source is started with, on a connection that is already up. */
export async function createSourceContext(
  nc: NatsConnection,
  config: Config,
  org: Organization,
  log: Logger,
): Promise<SourceContext> {
  return { nc, jsm: await jetstreamManager(nc, { checkAPI: false }), js: jetstream(nc), config, org, log };
}

/**
 * Consumers orgwatch creates on the organization's streams (e.g. ordered consumers reading tasks)
 * carry this name prefix (nats.js `name_prefix`), so that the poller does not report orgwatch as
 * part of the organization it watches.
 */
export const OWN_CONSUMER_PREFIX = "orgwatch_";

/** A unique `name_prefix` for an ordered consumer of orgwatch's own. */
export function ownConsumerNamePrefix(): string {
  return OWN_CONSUMER_PREFIX + nuid.next();
}

/** orgwatch's own KV buckets are named orgwatch… (`--chains.kv-bucket` must be), so their streams are KV_orgwatch…. */
const OWN_KV_STREAM_PREFIX = "KV_orgwatch";

/**
 * Whether a stream is orgwatch's own (its advisory stream or one of its KV buckets' streams) rather
 * than the organization's: orgwatch neither reports it nor handles advisories about it.
 */
export function isOwnStream(stream: string, config: Config): boolean {
  return stream === config["advisories.stream"] || stream.startsWith(OWN_KV_STREAM_PREFIX);
}

export interface RunningSource {
  stop(): Promise<void>;
}
