// The HTTP face of orgwatch: /metrics, /healthz, /readyz and a small index page. It reads the
// model and the metrics registry; it never talks to NATS.
import { RUNBOOKS_CSP, runbooksPage } from "./runbooks.js";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import express from "express";
import type { Config } from "../config/schema.js";
import { parseListenAddress } from "../config/load.js";
import type { Logger } from "../log.js";
import { lagOf } from "../logic/consumer-status.js";
import { AdmissionError } from "../logic/admission.js";
import { Admission } from "../services/admission.js";
import type { Organization } from "../model/organization.js";
import type { MetricsRegistry } from "./metrics/registry.js";
import { VERSION } from "../version.js";
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
  close(): Promise<void>;
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
        if (result === "ok") return next();
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
  // Read-only endpoints: anything but GET/HEAD is refused before routing.
  app.use((req, res, next) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      // Closing the connection spares reading whatever body the client is still sending.
      res
        .status(405)
        .set({ Allow: "GET, HEAD", Connection: "close" })
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
    const { contentType, chunks } = await metrics.renderChunks(wantsOpenMetrics(req.get("accept")));
    // Written piece by piece, the large pre-encoded sections as they are: res.send() would join them
    // into one string, encode it and hash it for an ETag on every scrape (~14 MB at 10,000 consumers).
    const buffers = chunks.map((c) => (typeof c === "string" ? Buffer.from(c, "utf8") : c));
    let length = 0;
    for (const b of buffers) length += b.length;
    res.status(200).set({ "Content-Type": contentType, "Content-Length": String(length) });
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
  app.get("/", (_req, res) => {
    res.type("html").send(indexPage(config, org));
  });
  return app;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function indexPage(config: Config, org: Organization): string {
  const h = org.health;
  const poll = org.jetstream.current;
  const rows: string[] = [];
  if (poll) {
    for (const c of poll.consumers.values()) {
      rows.push(
        `<tr><td>${escapeHtml(c.stream)}</td><td>${escapeHtml(c.name)}</td><td>${escapeHtml(c.role)}</td><td>${c.kind}</td><td>${lagOf(c)}</td><td>${c.status}</td></tr>`,
      );
    }
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>orgwatch</title></head><body>
<h1>orgwatch ${escapeHtml(VERSION)}</h1>
<p>Watching subject prefix <code>${escapeHtml(config["subject-prefix"])}</code>.
NATS: ${h.natsConnected ? "connected" : "<b>not connected</b>"}. Polls completed: ${h.pollsCompleted}, failed: ${h.pollErrors}.</p>
<ul>
<li><a href="${escapeHtml(config["web.telemetry-path"])}">${escapeHtml(config["web.telemetry-path"])}</a>: Prometheus metrics (OpenMetrics when asked)</li>
<li><a href="/healthz">/healthz</a>: the process is alive</li>
<li><a href="/readyz">/readyz</a>: connected to NATS and one poll done</li>
<li><a href="/runbooks">/runbooks</a>: what each alert means and what to do</li>
</ul>
<h2>Consumers</h2>
<table border="1" cellpadding="3"><tr><th>stream</th><th>consumer</th><th>role</th><th>kind</th><th>lag</th><th>status</th></tr>
${rows.join("\n")}
</table></body></html>
`;
}

export async function startHttpServer(
  config: Config,
  org: Organization,
  metrics: MetricsRegistry,
  log: Logger,
  admission?: Admission,
): Promise<HttpServer> {
  const webConfigFile = config["web.config.file"];
  const web = webConfigFile !== undefined ? loadWebConfig(webConfigFile) : undefined;
  const app = createApp(config, org, metrics, web, admission);
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
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
