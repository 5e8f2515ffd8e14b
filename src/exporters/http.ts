// The HTTP face of orgwatch: /metrics, /healthz, /readyz, /runbooks, the admission API and the
// console (exporters/console/). It reads the model and the metrics registry; what it shows of dead
// letters, and their replay, go through the dead-letter desk (services/deadletters.ts).
import { RUNBOOKS_CSP, runbooksPage } from "./runbooks.js";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import express from "express";
import type { Config } from "../config/schema.js";
import { parseListenAddress } from "../config/load.js";
import type { Logger } from "../log.js";
import { ConfigError } from "../config/schema.js";
import { consoleRoutes, type ConsoleRoutes } from "./console/routes.js";
import type { DeadLetterDesk } from "../services/deadletters.js";
import { AdmissionError } from "../logic/admission.js";
import { Admission } from "../services/admission.js";
import type { Organization } from "../model/organization.js";
import { gzipBody, identityBody, type MetricsRegistry } from "./metrics/registry.js";
import { responseStarted } from "../turns.js";
import {
  BasicAuth,
  checkClientCertificate,
  loadWebConfig,
  RateLimiter,
  type WebConfig,
} from "./web-config.js";

export interface HttpServer {
  /** Base URL, e.g. http://127.0.0.1:7786 (resolves port 0 to the real port). */
  readonly url: string;
  /** Console clients listening to /api/v1/events now. */
  readonly eventClients: () => number;
  close(): Promise<void>;
}

/** The one request that may change something: a dead letter's replay (console API, admin only). */
const WRITE_ROUTE = /^\/api\/v1\/deadletters\/[^/]+\/replay$/;
/** A replay's body, if any, is not read: at most this much is accepted on the wire. */
const MAX_WRITE_BODY = 1024;

/** Whether the web config puts authentication in front of every request. */
function authenticates(web: WebConfig | undefined): boolean {
  if (!web) return false;
  if (web.users.size > 0) return true;
  const auth = web.tls?.clientAuth;
  return auth === "RequireAndVerifyClientCert" || auth === "RequireAnyClientCert";
}

/**
 * Write actions need authentication in front of them, or an explicit choice to go without (a local
 * machine). Checked before the server listens: a daemon that would accept replays from anyone on
 * the network does not start.
 */
export function checkAdminApi(
  config: Config,
  web: WebConfig | undefined,
): "off" | "authenticated" | "unauthenticated" {
  if (!config["web.enable-admin-api"]) return "off";
  if (authenticates(web)) return "authenticated";
  if (config["web.admin-api.allow-unauthenticated"]) return "unauthenticated";
  throw new ConfigError(
    "--web.enable-admin-api",
    "write actions need authentication: basic_auth_users or required client certificates in --web.config.file (or --web.admin-api.allow-unauthenticated on a local machine)",
  );
}

function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes("application/openmetrics-text");
}

export function createApp(
  config: Config,
  org: Organization,
  metrics: MetricsRegistry,
  web?: WebConfig,
  admission: Admission = new Admission(org),
  console?: ConsoleRoutes,
): express.Express {
  const app = express();
  app.disable("x-powered-by");
  if (web) {
    const limiter = web.rateLimit && new RateLimiter(web.rateLimit.intervalMs, web.rateLimit.burst);
    const auth = new BasicAuth(web.users);
    app.use((req, res, next) => {
      res.set(web.headers);
      if (limiter && !limiter.allow()) {
        res.status(429).type("text/plain").send("too many requests\n");
        return;
      }
      if (!auth.enabled) return next();
      auth.check(req.get("authorization")).then((result) => {
        if (result === "ok") {
          // Who asked, for the audit line of a write action.
          res.locals["user"] = basicUser(req.get("authorization"));
          return next();
        }
        // Says nothing about why: a wrong user and a wrong password look the same.
        if (result === "busy") res.status(429).set("Retry-After", "1").type("text/plain").send("busy\n");
        else
          res
            .status(401)
            .set("WWW-Authenticate", 'Basic realm="orgwatch"')
            .type("text/plain")
            .send("unauthorized\n");
      }, next);
    });
  }
  // Read-only endpoints but one: anything but GET/HEAD is refused before routing, save a POST to
  // the replay route (refused there unless --web.enable-admin-api).
  app.use((req, res, next) => {
    if (req.method === "POST" && WRITE_ROUTE.test(req.path)) {
      if (
        req.get("transfer-encoding") !== undefined ||
        Number(req.get("content-length") ?? 0) > MAX_WRITE_BODY
      ) {
        res.status(413).set("Connection", "close").type("text/plain").send("request body too large\n");
        return;
      }
      next();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      // Closing the connection spares reading whatever body the client is still sending.
      res
        .status(405)
        .set({ Allow: WRITE_ROUTE.test(req.path) ? "POST" : "GET, HEAD", Connection: "close" })
        .type("text/plain")
        .send("method not allowed\n");
      return;
    }
    // GET and HEAD carry no body here; one announced is refused rather than read.
    if (req.get("transfer-encoding") !== undefined || Number(req.get("content-length") ?? 0) > 0) {
      res.status(413).set("Connection", "close").type("text/plain").send("request body not accepted\n");
      return;
    }
    next();
  });
  const telemetryPath = config["web.telemetry-path"];
  app.get(telemetryPath, async (req, res) => {
    const { contentType, chunks, release } = await metrics.renderChunks(wantsOpenMetrics(req.get("accept")));
    // Written or not (a client gone), the text it holds may be reused once the response is over.
    res.once("close", release);
    // Written piece by piece, the large pre-encoded sections as they are: res.send() would join them
    // into one string, encode it and hash it for an ETag on every scrape (~14 MB at 10,000 consumers).
    // gzip when asked: the part fixed until the next poll is compressed once (registry.ts).
    const gzipped = req.acceptsEncodings("gzip", "identity") === "gzip";
    const buffers = await (gzipped ? gzipBody(chunks) : identityBody(chunks));
    let length = 0;
    for (const b of buffers) length += b.length;
    res
      .status(200)
      .set({ "Content-Type": contentType, "Content-Length": String(length), Vary: "Accept-Encoding" });
    if (gzipped) res.set("Content-Encoding", "gzip");
    // Background work gives the writing a head start (turns.ts): it leaves a piece per turn of the loop.
    res.once("close", responseStarted());
    for (const b of buffers) res.write(b);
    res.end();
  });
  app.get("/healthz", (_req, res) => {
    res.type("text/plain").send("ok\n");
  });
  app.get("/readyz", (_req, res) => {
    const h = org.health;
    if (h.ready) res.type("text/plain").send("ready\n");
    else
      res
        .status(503)
        .type("text/plain")
        .send(
          `not ready: ${h.natsConnected ? "connected to NATS" : "not connected to NATS"}, ${h.pollsCompleted} polls completed\n`,
        );
  });
  app.get("/api/v1/admission", (req, res) => {
    try {
      const q = req.query;
      const one = (v: unknown) => (Array.isArray(v) ? v[0] : v);
      res.json(
        admission.answer({
          role: one(q["role"]),
          tasks: one(q["tasks"]),
          complete_within_minutes: one(q["complete_within_minutes"]),
        }),
      );
    } catch (err) {
      if (err instanceof AdmissionError) res.status(err.code).json({ error: err.message, code: err.code });
      else res.status(500).json({ error: "internal error", code: 500 });
    }
  });
  app.get("/runbooks", (_req, res) => {
    res.set("Content-Security-Policy", RUNBOOKS_CSP).type("html").send(runbooksPage());
  });
  if (console) app.use(console.router);
  return app;
}

function basicUser(authorization: string | undefined): string | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(authorization ?? "");
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(0, colon);
}

export async function startHttpServer(
  config: Config,
  org: Organization,
  metrics: MetricsRegistry,
  log: Logger,
  admission?: Admission,
  desk: () => DeadLetterDesk | undefined = () => undefined,
): Promise<HttpServer> {
  const webConfigFile = config["web.config.file"];
  const web = webConfigFile !== undefined ? loadWebConfig(webConfigFile) : undefined;
  const admin = checkAdminApi(config, web);
  if (admin === "unauthenticated")
    log.warn(
      {},
      "write actions (dead-letter replay) are on with no authentication in front of them (--web.admin-api.allow-unauthenticated): anyone who can reach this port can replay; for a local machine only",
    );
  else if (admin === "authenticated")
    log.info({}, "write actions (dead-letter replay) are on, behind the web config's authentication");
  const console = consoleRoutes(org, { desk, log });
  const app = createApp(config, org, metrics, web, admission, console);
  // Slow or stuck clients must not hold the daemon: bound header and request time, checked every
  // second rather than Node's default 30 s, and drop sockets idle (e.g. a stalled reader) for 30 s.
  const serverOptions = { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 };
  const tls = web?.tls;
  const server: Server = tls
    ? createHttpsServer({ ...serverOptions, ...tls.options }, app)
    : createServer(serverOptions, app);
  server.setTimeout(30_000);
  if (tls) {
    server.on("secureConnection", (socket: TLSSocket) => {
      const refused = checkClientCertificate(tls, socket);
      if (refused !== undefined) {
        log.debug({ remote: socket.remoteAddress, reason: refused }, "TLS client refused");
        socket.destroy();
      }
    });
    server.on("tlsClientError", (err, socket) => {
      log.debug({ remote: socket.remoteAddress, err: err.message }, "TLS handshake failed");
    });
  }
  const { host, port } = parseListenAddress(config["web.listen-address"]);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost =
    host === undefined || host === "0.0.0.0" || host === "::"
      ? "127.0.0.1"
      : host.includes(":")
        ? `[${host}]`
        : host;
  const url = `${tls ? "https" : "http"}://${shownHost}:${addr.port}`;
  log.info(
    { url, telemetryPath: config["web.telemetry-path"], basicAuth: (web?.users.size ?? 0) > 0 },
    "serving HTTP",
  );
  return {
    url,
    eventClients: console.clients,
    close: () =>
      new Promise<void>((resolve) => {
        console.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
