// What every source of data is given, and what it gives back. A source reads NATS and writes into
// the model; it never touches an exporter.
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
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

export interface RunningSource {
  stop(): Promise<void>;
}
