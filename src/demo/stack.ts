// `orgwatch demo --stack`: Prometheus with the shipped alert rules and Alertmanager with the shipped
// routes, beside the demo, so that a newcomer without Docker sees orgwatch's alerts fire. The rules
// run on the demo's clock (logic/rule-scaling.ts: the organization runs `pace` times faster, so
// every `for:`, range and duration threshold is `pace` times shorter; orgwatch's own rules keep real
// time); every receiver is a webhook in this process that prints each notification.
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { withWebhookReceivers, type AlertmanagerConfig } from "../logic/alertmanager-config.js";
import { scaleRuleFile, type RuleFile } from "../logic/rule-scaling.js";
import {
  ALERTMANAGER_BINARIES,
  findBinary,
  PROMETHEUS_BINARIES,
  startAlertmanager,
  startPrometheus,
  type ManagedProcess,
} from "./processes.js";

/** Shipped with the package (package.json "files"), beside dist/. */
const ALERTS_DIR = fileURLToPath(new URL("../../alerts/", import.meta.url));
const ALERTMANAGER_CONFIG = fileURLToPath(
  new URL("../../deploy/alertmanager/alertmanager.yml", import.meta.url),
);

/** The demo polls every 2 s: Prometheus scrapes and evaluates at the same beat. */
const SCRAPE_INTERVAL = "2s";
/** A range needs several scrapes in it for rate() and increase(). */
const MIN_RANGE_MS = 30_000;

export interface DemoStack {
  readonly prometheusUrl: string;
  readonly alertmanagerUrl: string;
  /** What was shortened, one line per rule. */
  readonly scaled: readonly string[];
  stop(): Promise<void>;
}

/** The tools the stack needs that are not on PATH. */
export function missingStackTools(): string[] {
  const missing: string[] = [];
  if (!findBinary(...PROMETHEUS_BINARIES)) missing.push("prometheus");
  if (!findBinary(...ALERTMANAGER_BINARIES)) missing.push("alertmanager");
  return missing;
}

interface Notification {
  status: string;
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

/** One line per alert of a notification, for the demo's terminal. */
export function notificationLines(receiver: string, notification: Notification): string[] {
  return notification.alerts.map((a) => {
    const who = a.labels["role"] ? ` role=${a.labels["role"]}` : "";
    const summary = a.annotations["summary"] ? `: ${a.annotations["summary"]}` : "";
    return `[alertmanager → ${receiver}] ${a.status.toUpperCase()} ${a.labels["alertname"]}${who} severity=${a.labels["severity"] ?? "?"}${summary}`;
  });
}

function startReceiver(print: (line: string) => void): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      try {
        const receiver = (req.url ?? "/").slice(1) || "webhook";
        for (const line of notificationLines(receiver, JSON.parse(body) as Notification)) print(line);
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${port}` });
    });
  });
}

/**
 * The shipped rule files on the demo's clock, named rules-*.yml. By default orgwatch's own rules
 * keep real time (orgwatch runs at real speed); a test that speeds everything up names none.
 */
export function demoRuleFiles(
  pace: number,
  { realTimeGroups = ["orgwatch.self", "orgwatch.lease"], minRangeMs = MIN_RANGE_MS } = {},
): { files: Record<string, string>; scaled: string[] } {
  const files: Record<string, string> = {};
  const scaled: string[] = [];
  for (const name of readdirSync(ALERTS_DIR)
    .filter((n) => n.endsWith(".yml"))
    .sort()) {
    const rules = parse(readFileSync(ALERTS_DIR + name, "utf8")) as RuleFile;
    const result = scaleRuleFile(rules, { speed: pace, minRangeMs, realTimeGroups });
    files[`rules-${name}`] = stringify(result.file);
    scaled.push(...result.changes);
  }
  return { files, scaled };
}

export async function startDemoStack(options: {
  readonly orgwatchUrl: string;
  readonly pace: number;
  readonly print: (line: string) => void;
}): Promise<DemoStack> {
  const receiver = await startReceiver(options.print);
  const stopReceiver = () => new Promise<void>((resolve) => receiver.server.close(() => resolve()));
  let alertmanager: ManagedProcess | undefined;
  try {
    const shipped = parse(readFileSync(ALERTMANAGER_CONFIG, "utf8")) as AlertmanagerConfig;
    alertmanager = await startAlertmanager(
      stringify(withWebhookReceivers(shipped, receiver.url, { groupWait: "1s", groupInterval: "5s" })),
    );
    const { files, scaled } = demoRuleFiles(options.pace);
    const prometheus = await startPrometheus(
      () =>
        stringify({
          global: {
            scrape_interval: SCRAPE_INTERVAL,
            evaluation_interval: SCRAPE_INTERVAL,
            // Every alert's runbook_url: this demo's orgwatch serves /runbooks.
            external_labels: { orgwatch_url: options.orgwatchUrl },
          },
          rule_files: ["rules-*.yml"],
          alerting: {
            alertmanagers: [{ static_configs: [{ targets: [new URL(alertmanager!.url).host] }] }],
          },
          // The alerts' `up{job="orgwatch"}` rules expect this job name.
          scrape_configs: [
            { job_name: "orgwatch", static_configs: [{ targets: [new URL(options.orgwatchUrl).host] }] },
          ],
        }),
      files,
    );
    const am = alertmanager;
    return {
      prometheusUrl: prometheus.url,
      alertmanagerUrl: am.url,
      scaled,
      async stop() {
        await prometheus.stop();
        await am.stop();
        await stopReceiver();
      },
    };
  } catch (err) {
    await alertmanager?.stop();
    await stopReceiver();
    throw err;
  }
}
