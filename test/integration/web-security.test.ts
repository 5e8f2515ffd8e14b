// The HTTP face under --web.config.file: real TLS connections (server and client certificates from a
// CA made here), basic auth with bcrypt hashes, methods, and clients that are slow or send too much.
import { request as httpsRequest } from "node:https";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect as tcpConnect, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { startHttpServer, type HttpServer } from "../../src/exporters/http.js";
import { MetricsRegistry } from "../../src/exporters/metrics/registry.js";
import { registerExporterHealthMetrics } from "../../src/exporters/metrics/exporter-health.js";
import { Organization } from "../../src/model/organization.js";
import { silentLogger } from "../../src/log.js";
import { runOrgwatch } from "../helpers/cli.js";
import { createPki, type IssuedCert, type Pki } from "../helpers/tls.js";
import { waitFor } from "../helpers/wait.js";

const USER = "prometheus";
const PASSWORD = "correct-horse-battery-staple";
const HASH = bcrypt.hashSync(PASSWORD, 8);

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Req {
  method?: string;
  auth?: string;
  ca?: Buffer;
  client?: IssuedCert;
  body?: Buffer;
  headers?: Record<string, string>;
}

function get(url: string, req: Req = {}): Promise<Reply> {
  const u = new URL(url);
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { ...req.headers };
  if (req.body) headers["content-length"] = String(req.body.length);
  if (req.auth) headers["authorization"] = "Basic " + Buffer.from(req.auth).toString("base64");
  return new Promise((resolve, reject) => {
    const r = send(
      url,
      {
        method: req.method ?? "GET",
        headers,
        ca: req.ca,
        cert: req.client?.cert,
        key: req.client?.key,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    r.on("timeout", () => r.destroy(new Error("client timeout")));
    r.end(req.body);
  });
}

function newOrg() {
  const config = configWith({ "web.listen-address": "127.0.0.1:0" });
  const org = new Organization(config);
  org.health.natsConnected = true;
  return org;
}

async function serve(pki: Pki, webConfig: string | undefined): Promise<HttpServer> {
  let file: string | undefined;
  if (webConfig !== undefined) {
    file = join(pki.dir, `web-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, webConfig);
  }
  const config = configWith({ "web.listen-address": "127.0.0.1:0", "web.config.file": file });
  const metrics = new MetricsRegistry();
  const org = newOrg();
  registerExporterHealthMetrics(metrics, org);
  return startHttpServer(config, org, metrics, silentLogger());
}

describe("HTTPS with basic auth", () => {
  let pki: Pki;
  let server: HttpServer;

  beforeAll(async () => {
    pki = createPki();
    pki.issue("server");
    server = await serve(
      pki,
      `tls_server_config:
  cert_file: server.pem
  key_file: server.key
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  ${USER}: "${HASH}"
`,
    );
  });
  afterAll(async () => {
    await server?.close();
    pki?.remove();
  });

  it("serves metrics over TLS to the right credentials", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await get(server.url + "/metrics", { ca: pki.ca, auth: `${USER}:${PASSWORD}` });
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^orgwatch_nats_connected 1$/m);
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    // Every endpoint is behind the same door.
    for (const path of ["/", "/healthz", "/readyz", "/metrics"]) {
      expect((await get(server.url + path, { ca: pki.ca })).status).toBe(401);
    }
  });

  it("answers 401 with a challenge and nothing else for missing, wrong or unknown credentials", async () => {
    const attempts: Req[] = [
      {},
      { auth: `${USER}:wrong` },
      { auth: `${USER}:` },
      { auth: `nobody:${PASSWORD}` },
      { headers: { authorization: "Basic" } },
      { headers: { authorization: "Bearer " + PASSWORD } },
    ];
    const bodies = new Set<string>();
    for (const req of attempts) {
      const res = await get(server.url + "/metrics", { ca: pki.ca, ...req });
      expect(res.status).toBe(401);
      expect(res.headers["www-authenticate"]).toMatch(/^Basic/);
      for (const secret of [USER, PASSWORD, HASH, "orgwatch_", "nobody"])
        expect(res.body).not.toContain(secret);
      bodies.add(res.body);
    }
    // The same answer whatever was wrong.
    expect(bodies.size).toBe(1);
  });

  it("refuses other methods and request bodies, even when authenticated", async () => {
    const auth = `${USER}:${PASSWORD}`;
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const res = await get(server.url + "/metrics", { ca: pki.ca, auth, method });
      expect(res.status).toBe(405);
      expect(res.headers["allow"]).toBe("GET, HEAD");
    }
    const head = await get(server.url + "/metrics", { ca: pki.ca, auth, method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    const withBody = await get(server.url + "/metrics", { ca: pki.ca, auth, body: Buffer.alloc(1000, 97) });
    expect(withBody.status).toBe(413);
  });

  it("does not speak plain HTTP on the TLS port, nor trust an unknown server certificate by default", async () => {
    const plain = await get(server.url.replace("https:", "http:") + "/metrics").catch((err: Error) => err);
    if (!(plain instanceof Error)) expect(plain.status).toBe(400);
    await expect(get(server.url + "/metrics", { auth: `${USER}:${PASSWORD}` })).rejects.toThrow(
      /self[- ]signed|unable to (verify|get)/i,
    );
  });
});

describe("client certificates (mTLS)", () => {
  let pki: Pki;
  let otherPki: Pki;
  let client: IssuedCert;
  let stranger: IssuedCert;
  const servers: HttpServer[] = [];

  beforeAll(() => {
    pki = createPki();
    pki.issue("server");
    client = pki.issue("scraper", ["DNS:prometheus.example", "URI:spiffe://test/prometheus"]);
    otherPki = createPki("another-ca");
    stranger = otherPki.issue("stranger", ["DNS:prometheus.example"]);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    pki?.remove();
    otherPki?.remove();
  });

  const tlsConfig = (extra: string) =>
    `tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n${extra}`;

  it("RequireAndVerifyClientCert: no certificate or one from another CA is refused; the right one gets in", async () => {
    const server = await serve(pki, tlsConfig("  client_auth_type: RequireAndVerifyClientCert\n"));
    servers.push(server);
    await expect(get(server.url + "/metrics", { ca: pki.ca })).rejects.toThrow();
    await expect(get(server.url + "/metrics", { ca: pki.ca, client: stranger })).rejects.toThrow();
    const ok = await get(server.url + "/metrics", { ca: pki.ca, client });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("orgwatch_nats_connected 1");
  });

  it("VerifyClientCertIfGiven: no certificate passes, an untrusted one does not", async () => {
    const server = await serve(pki, tlsConfig("  client_auth_type: VerifyClientCertIfGiven\n"));
    servers.push(server);
    expect((await get(server.url + "/healthz", { ca: pki.ca })).status).toBe(200);
    await expect(get(server.url + "/healthz", { ca: pki.ca, client: stranger })).rejects.toThrow();
    expect((await get(server.url + "/healthz", { ca: pki.ca, client })).status).toBe(200);
  });

  it("client_allowed_sans: a trusted certificate without an allowed SAN is refused", async () => {
    const allowed = await serve(
      pki,
      tlsConfig(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_allowed_sans: [spiffe://test/prometheus]\n",
      ),
    );
    const denied = await serve(
      pki,
      tlsConfig("  client_auth_type: RequireAndVerifyClientCert\n  client_allowed_sans: [grafana.example]\n"),
    );
    servers.push(allowed, denied);
    expect((await get(allowed.url + "/healthz", { ca: pki.ca, client })).status).toBe(200);
    await expect(get(denied.url + "/healthz", { ca: pki.ca, client })).rejects.toThrow();
  });

  it("RequireAnyClientCert: any certificate, none refused", async () => {
    const server = await serve(
      pki,
      "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
    );
    servers.push(server);
    await expect(get(server.url + "/healthz", { ca: pki.ca })).rejects.toThrow();
    expect((await get(server.url + "/healthz", { ca: pki.ca, client: stranger })).status).toBe(200);
  });
});

describe("slow and oversized clients", () => {
  let pki: Pki;
  let server: HttpServer;

  beforeAll(async () => {
    pki = createPki();
    server = await serve(pki, undefined);
  });
  afterAll(async () => {
    await server?.close();
    pki?.remove();
  });

  it("keeps answering while clients dribble headers, and drops them after the header timeout", async () => {
    const { port } = new URL(server.url);
    const slow: Socket[] = [];
    const closed = new Set<Socket>();
    for (let i = 0; i < 50; i++) {
      const sock = tcpConnect(Number(port), "127.0.0.1");
      sock.on("error", () => undefined);
      sock.on("close", () => closed.add(sock));
      sock.write("GET /metrics HTTP/1.1\r\nHost: x\r\n");
      slow.push(sock);
    }
    const dribble = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write("X-Slow: 1\r\n");
    }, 500);
    try {
      // A 32 MB upload is answered at once and the connection closed, without reading it all.
      const huge = await get(server.url + "/metrics", {
        method: "POST",
        body: Buffer.alloc(32 << 20, 120),
      }).catch((err: Error) => err);
      if (!(huge instanceof Error)) expect(huge.status).toBe(405);
      const res = await get(server.url + "/metrics");
      expect(res.status).toBe(200);
      // headersTimeout is 10 s; the server checks every second.
      await waitFor(() => closed.size === slow.length, { timeoutMs: 25_000, what: "slow clients dropped" });
      expect((await get(server.url + "/healthz")).status).toBe(200);
    } finally {
      clearInterval(dribble);
      for (const s of slow) s.destroy();
    }
  });
});

describe("a bad web config file on the command line", () => {
  it("is one line naming --web.config.file, exit code 2", async () => {
    const pki = createPki();
    try {
      const file = join(pki.dir, "web.yml");
      writeFileSync(file, "basic_auth_users:\n  admin: hunter2\n");
      const { code, stderr } = await runOrgwatch([
        "--web.config.file",
        file,
        "--web.listen-address",
        "127.0.0.1:0",
        "--nats-url",
        "nats://127.0.0.1:1",
      ]);
      expect(code).toBe(2);
      expect(stderr.trim().split("\n")).toHaveLength(1);
      expect(stderr).toMatch(/--web\.config\.file: .*basic_auth_users\.admin: not a bcrypt hash/);
      expect(stderr).not.toContain("hunter2");
    } finally {
      pki.remove();
    }
  });
});
