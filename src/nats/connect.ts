// The connection to the watched NATS: every auth form of DESIGN.md §2, TLS, and reconnection that
// never gives up. orgwatch must keep answering /metrics while NATS is away, so nothing here throws
// out of the daemon: failures are logged, retried, and visible as orgwatch_nats_connected 0.
import { readFileSync } from "node:fs";
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/transport-node";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { ExporterHealth } from "../model/exporter-health.js";

export function connectionOptions(config: Config): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: config["nats-url"],
    name: "orgwatch",
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // A NATS restart should be noticed within seconds, not after the default 2 minutes of pings.
    pingInterval: 10_000,
    maxPingOut: 2,
  };
  if (config["nats-user"] !== undefined) {
    options.user = config["nats-user"];
    options.pass = config["nats-password"];
  }
  if (config["nats-token"] !== undefined) options.token = config["nats-token"];
  if (config["nats-creds"] !== undefined) {
    options.authenticator = credsAuthenticator(readFileSync(config["nats-creds"]));
  } else if (config["nats-nkey"] !== undefined) {
    const seed = readFileSync(config["nats-nkey"], "utf8").trim();
    options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (config["nats-tls-ca"] !== undefined || config["nats-tls-cert"] !== undefined) {
    options.tls = {
      caFile: config["nats-tls-ca"],
      certFile: config["nats-tls-cert"],
      keyFile: config["nats-tls-key"],
    };
  }
  return options;
}

export interface NatsLink {
  /** Resolves once the first connection is made (never rejects; retries forever). */
  readonly connected: Promise<NatsConnection>;
  close(): Promise<void>;
}

/**
 * Connects in the background, retrying with backoff until the first connection succeeds; after
 * that nats.js reconnects by itself. Connection state and reconnects are written to `health`.
 */
export function startNatsLink(config: Config, health: ExporterHealth, log: Logger): NatsLink {
  let closed = false;
  let nc: NatsConnection | undefined;
  let wake: (() => void) | undefined;

  const connected = (async () => {
    let delay = 250;
    for (;;) {
      if (closed) return new Promise<NatsConnection>(() => {});
      try {
        nc = await connect(connectionOptions(config));
        break;
      } catch (err) {
        log.warn(
          { err: (err as Error).message, servers: config["nats-url"] },
          "cannot connect to NATS; retrying",
        );
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, delay).unref();
        });
        delay = Math.min(delay * 2, 5000);
      }
    }
    const conn = nc!;
    health.natsConnected = true;
    log.info({ server: conn.getServer() }, "connected to NATS");
    void (async () => {
      for await (const s of conn.status()) {
        switch (s.type) {
          case "disconnect":
            health.natsConnected = false;
            log.warn({ server: s.server }, "disconnected from NATS");
            break;
          case "reconnect":
            health.natsConnected = true;
            health.natsReconnects++;
            log.info({ server: s.server }, "reconnected to NATS");
            break;
          case "error":
            log.warn({ err: s.error.message }, "NATS error");
            break;
          default:
            break;
        }
      }
    })();
    void conn.closed().then(() => {
      health.natsConnected = false;
    });
    return conn;
  })();

  return {
    connected,
    async close() {
      closed = true;
      wake?.();
      if (nc && !nc.isClosed()) await nc.drain().catch(() => nc?.close());
      health.natsConnected = false;
    },
  };
}
