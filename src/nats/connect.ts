// The connection to the watched NATS: every auth form of DESIGN.md §2, TLS, and reconnection that
// never gives up. orgwatch must keep answering /metrics while NATS is away, so nothing here throws
// out of the daemon: failures are logged, retried, and visible as orgwatch_nats_connected 0.
import { readFileSync } from "node:fs";
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/transport-node";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { ExporterHealth } from "../model/exporter-health.js";

/** scheme://, user-info, the rest. */
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@(.*)$/i;

function splitUserInfo(info: string): [string, string | undefined] {
  const colon = info.indexOf(":");
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return colon < 0
    ? [decode(info), undefined]
    : [decode(info.slice(0, colon)), decode(info.slice(colon + 1))];
}

export function connectionOptions(config: Config): ConnectionOptions {
  // nats.js ignores credentials written into a URL (the Go client and the nats CLI honour them):
  // take them out, use them unless given explicitly, and never hand them on (or log them).
  const servers: string[] = [];
  let urlUser: string | undefined;
  let urlPass: string | undefined;
  for (const url of config["nats-url"]) {
    const m = USER_INFO.exec(url);
    if (!m) {
      servers.push(url);
      continue;
    }
    servers.push(m[1]! + m[3]!);
    const [user, pass] = splitUserInfo(m[2]!);
    urlUser ??= user;
    urlPass ??= pass;
  }
  const options: ConnectionOptions = {
    servers,
    name: "orgwatch",
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // A NATS restart should be noticed within seconds, not after the default 2 minutes of pings.
    pingInterval: 10_000,
    maxPingOut: 2,
    // nats.js gives up for good after the same auth error twice in a row; credentials being rotated
    // on the server must not leave orgwatch disconnected forever, so it keeps trying.
    ignoreAuthErrorAbort: true,
    // Without it nats.js captures a stack trace per request (to append where a request that
    // times out was sent): at 10,000 consumers a poll sends ~1,000 requests and the chain store
    // writes per change, ~0.8 s of CPU a minute measured (BENCHMARKS.md). orgwatch logs the
    // error's message, which names the subject, not the stack.
    noAsyncTraces: true,
  };
  if (urlUser !== undefined && config["nats-user"] === undefined && config["nats-token"] === undefined) {
    // `nats://token@host` carries a token, `nats://user:pass@host` a user and password.
    if (urlPass === undefined) options.token = urlUser;
    else {
      options.user = urlUser;
      options.pass = urlPass;
    }
  }
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

/** A server URL as it may be logged: credentials in its user-info part (`nats://user:pass@host`) hidden. */
export function redactUrl(url: string): string {
  return url.replace(USER_INFO, "$1***@$3");
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
          { err: (err as Error).message, servers: config["nats-url"].map(redactUrl) },
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
          // nats.js reports a "disconnect" for every failed attempt while reconnecting, and then one
          // "reconnect" per attempt made: only transitions count, so the counter is one per outage.
          case "disconnect":
            if (health.natsConnected) {
              log.warn({ server: s.server }, "disconnected from NATS");
              health.natsOutage = { fromMs: Date.now() };
            } else log.debug({ server: s.server }, "reconnection attempt failed");
            health.natsConnected = false;
            break;
          case "reconnecting":
            log.debug("reconnecting to NATS");
            break;
          case "reconnect":
            if (!health.natsConnected) {
              health.natsReconnects++;
              if (health.natsOutage && health.natsOutage.toMs === undefined)
                health.natsOutage.toMs = Date.now();
              log.info({ server: s.server }, "reconnected to NATS");
            }
            health.natsConnected = true;
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
