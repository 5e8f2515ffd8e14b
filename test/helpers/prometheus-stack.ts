// Real Prometheus and Alertmanager child processes for end-to-end tests, each in a temporary
// directory on free loopback ports, and the Prometheus HTTP API calls the tests make.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "../../src/nats/server-process.js";
import { waitFor } from "./wait.js";

/** The first of `names` found on PATH (Debian ships Alertmanager as prometheus-alertmanager). */
export function findBinary(...names: string[]): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    for (const name of names) {
      const candidate = join(dir, name);
      if (dir && existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

export interface ManagedProcess {
  readonly url: string;
  readonly dir: string;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

async function startProcess(
  what: string,
  binary: string,
  args: (port: number, dir: string) => string[],
  dir: string,
  readyPath: string,
): Promise<ManagedProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(binary, args(port, dir), { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer) => {
    // Bounded: only the end matters when something fails.
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}: ${output}`);
        const res = await fetch(url + readyPath);
        return res.ok;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `${what} ready` },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, dir, output: () => output, stop };
}

/** Prometheus with `config` (prometheus.yml text) and `files` (name → text) in its directory. */
export async function startPrometheus(
  config: (dir: string) => string,
  files: Record<string, string> = {},
  extraArgs: string[] = [],
): Promise<ManagedProcess> {
  const binary = findBinary("prometheus");
  if (!binary) throw new Error("prometheus is not installed (apt-get install prometheus)");
  const dir = mkdtempSync(join(tmpdir(), "orgwatch-prometheus-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, "prometheus.yml"), config(dir));
  return startProcess(
    "prometheus",
    binary,
    (port) => [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Alerts reach Alertmanager at once instead of after the default minute.
      "--rules.alert.resend-delay=1s",
      "--log.level=warn",
      ...extraArgs,
    ],
    dir,
    "/-/ready",
  );
}

/** Alertmanager with `config` (alertmanager.yml text), clustering off. */
export async function startAlertmanager(config: string): Promise<ManagedProcess> {
  const binary = findBinary("alertmanager", "prometheus-alertmanager");
  if (!binary) throw new Error("alertmanager is not installed (apt-get install prometheus-alertmanager)");
  const dir = mkdtempSync(join(tmpdir(), "orgwatch-alertmanager-"));
  writeFileSync(join(dir, "alertmanager.yml"), config);
  return startProcess(
    "alertmanager",
    binary,
    (port) => [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip port: tests run several side by side.
      "--cluster.listen-address=",
      "--log.level=warn",
    ],
    dir,
    "/-/ready",
  );
}

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
