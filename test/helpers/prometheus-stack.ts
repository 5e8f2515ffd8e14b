// Real Prometheus and Alertmanager child processes for end-to-end tests (started as the demo's
// stack starts them), and the Prometheus HTTP API calls the tests make.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { startAlertmanager, startPrometheus, type ManagedProcess } from "../../src/demo/processes.js";
import { withWebhookReceivers, type AlertmanagerConfig } from "../../src/logic/alertmanager-config.js";
import { REPO_ROOT } from "./cli.js";

export {
  findBinary,
  startAlertmanager,
  startPrometheus,
  type ManagedProcess,
} from "../../src/demo/processes.js";

export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

interface PromResponse<T> {
  status: "success" | "error";
  data: T;
  error?: string;
  errorType?: string;
}

/** GET a Prometheus API path; returns the parsed body whatever the HTTP status (errors come as 400/422). */
export async function promApi<T>(baseUrl: string, path: string, params: Record<string, string> = {}) {
  const query = new URLSearchParams(params).toString();
  const res = await fetch(`${baseUrl}${path}${query ? "?" + query : ""}`);
  return (await res.json()) as PromResponse<T>;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing";
  value: string;
}

export async function prometheusAlerts(baseUrl: string): Promise<PromAlert[]> {
  const body = await promApi<{ alerts: PromAlert[] }>(baseUrl, "/api/v1/alerts");
  if (body.status !== "success") throw new Error(`GET /api/v1/alerts: ${body.error}`);
  return body.data.alerts;
}

/** Alertmanager with the shipped configuration, every receiver a webhook at `{webhookUrl}/{receiver}`, waits of a second. */
export async function startShippedAlertmanager(webhookUrl: string): Promise<ManagedProcess> {
  const shipped = parse(
    readFileSync(join(REPO_ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8"),
  ) as AlertmanagerConfig;
  return startAlertmanager(
    stringify(withWebhookReceivers(shipped, webhookUrl, { groupWait: "1s", groupInterval: "1s" })),
  );
}

export interface Notification {
  status: string;
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

/** A webhook receiver on a free port: `onNotification` gets the receiver's name (the path) and the body. */
export async function startWebhook(
  onNotification: (receiver: string, notification: Notification) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      onNotification((req.url ?? "/").slice(1), JSON.parse(body) as Notification);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Prometheus scraping orgwatch at `orgwatchHost` (host:port) every second with `ruleFiles`, alerting to `alertmanagerUrl`. */
export function startRulesPrometheus(
  ruleFiles: Record<string, string>,
  orgwatchHost: string,
  alertmanagerUrl: string,
): Promise<ManagedProcess> {
  return startPrometheus(
    () =>
      stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: Object.keys(ruleFiles),
        alerting: { alertmanagers: [{ static_configs: [{ targets: [new URL(alertmanagerUrl).host] }] }] },
        // The alerts' `up{job="orgwatch"}` rules expect this job name.
        scrape_configs: [{ job_name: "orgwatch", static_configs: [{ targets: [orgwatchHost] }] }],
      }),
    ruleFiles,
  );
}
