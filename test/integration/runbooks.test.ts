// Every alert's runbook link, followed: the rules' runbook_url template rendered with an orgwatch's
// address as Prometheus renders it, fetched from that orgwatch, landing on the alert's own section.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { startTestDaemon } from "../helpers/daemon.js";

interface RuleFile {
  groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[];
}

const TEMPLATE = '{{ or $externalLabels.orgwatch_url "http://localhost:7786" }}';

const alerts = readdirSync(join(REPO_ROOT, "alerts"))
  .filter((f) => f.endsWith(".yml"))
  .flatMap((f) => (parse(readFileSync(join(REPO_ROOT, "alerts", f), "utf8")) as RuleFile).groups)
  .flatMap((g) => g.rules)
  .filter((r) => r.alert !== undefined);

describe("runbooks served at /runbooks", () => {
  let server: NatsServerProcess;
  let daemon: Daemon;
  let page = "";

  beforeAll(async () => {
    server = await startNatsServer();
    daemon = await startTestDaemon(server.url);
    await daemon.started;
  });
  afterAll(async () => {
    await daemon?.stop();
    await server?.stop();
  });

  it("is one HTML page without scripts, under a strict Content-Security-Policy", async () => {
    const res = await fetch(`${daemon.url}/runbooks`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
    );
    page = await res.text();
    expect(page).not.toContain("<script");
    expect(page).toContain("<h1");
  });

  it.each(alerts.map((a) => [a.alert!, a.annotations?.["runbook_url"]] as const))(
    "%s links to its own section",
    async (name, link) => {
      expect(link?.startsWith(TEMPLATE)).toBe(true);
      const url = new URL(link!.replace(TEMPLATE, daemon.url));
      expect(url.pathname).toBe("/runbooks");
      expect(url.hash).toBe(`#${name.toLowerCase()}`);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      const html = await res.text();
      const at = html.indexOf(`<h2 id="${name.toLowerCase()}">`);
      expect(at, `no section for ${name}`).toBeGreaterThan(0);
      expect(html.slice(at, at + 200)).toContain(name);
    },
  );
});
