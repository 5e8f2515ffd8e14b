// Prometheus and Alertmanager as child processes, each in a temporary directory on a free loopback
// port: the demo's stack (`orgwatch demo --stack`) and the end-to-end tests start them alike.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../nats/server-process.js";

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

export const PROMETHEUS_BINARIES = ["prometheus"];
export const ALERTMANAGER_BINARIES = ["alertmanager", "prometheus-alertmanager"];
export const STACK_INSTALL_HINT =
  "install them with: sudo apt-get install --no-install-recommends prometheus prometheus-alertmanager";

export interface ManagedProcess {
  readonly url: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;

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
  child.on("error", (err) => keep(Buffer.from(`${what}: ${err.message}\n`)));
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
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`${what} exited with code ${child.exitCode}: ${output.trim()}`);
    }
    const ready = await fetch(url + readyPath).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > until) {
      await stop();
      throw new Error(`${what} was not ready within ${READY_TIMEOUT_MS / 1000} s: ${output.trim()}`);
    }
    await sleep(100);
  }
  return { url, dir, pid: child.pid, output: () => output, stop };
}

/** Prometheus with `config` (prometheus.yml text) and `files` (name → text) in its directory. */
export async function startPrometheus(
  config: (dir: string) => string,
  files: Record<string, string> = {},
  extraArgs: string[] = [],
): Promise<ManagedProcess> {
  const binary = findBinary(...PROMETHEUS_BINARIES);
  if (!binary) throw new Error(`prometheus is not installed; ${STACK_INSTALL_HINT}`);
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
  const binary = findBinary(...ALERTMANAGER_BINARIES);
  if (!binary) throw new Error(`alertmanager is not installed; ${STACK_INSTALL_HINT}`);
  const dir = mkdtempSync(join(tmpdir(), "orgwatch-alertmanager-"));
  writeFileSync(join(dir, "alertmanager.yml"), config);
  return startProcess(
    "alertmanager",
    binary,
    (port) => [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip port: several run side by side (tests), and a demo is not a cluster.
      "--cluster.listen-address=",
      "--log.level=warn",
    ],
    dir,
    "/-/ready",
  );
}
