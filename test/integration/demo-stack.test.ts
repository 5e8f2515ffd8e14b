// `orgwatch demo --stack` as a newcomer without Docker runs it: Prometheus and Alertmanager from the
// machine's packages beside the demo, the story's three alerts firing in Prometheus and arriving at
// the receiver that prints them, and Ctrl-C stopping all of it.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findNatsServerBinary } from "../../src/nats/server-process.js";
import { spawnOrgwatch } from "../helpers/cli.js";
import { alive, descendants } from "../helpers/processes.js";
import { prometheusAlerts } from "../helpers/prometheus-stack.js";
import { waitFor } from "../helpers/wait.js";

const PACE = 300;
/** The story's alerts, as the receiver prints them. */
const EXPECTED = [
  /FIRING OrgwatchConsumerLag role=marketing severity=warning/,
  /\[alertmanager → pager\] FIRING OrgwatchDeadLetter role=devops severity=page/,
  /FIRING OrgwatchBroadcastUnacked role=finance severity=warning/,
];

describe("orgwatch demo --stack", () => {
  let demo: ChildProcess;
  let stdout = "";
  let stderr = "";
  let exited: Promise<number | null>;

  beforeAll(async () => {
    demo = spawnOrgwatch(["demo", "--stack", "--pace", String(PACE), "--web.listen-address", "127.0.0.1:0"], {
      detached: true,
    });
    demo.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    demo.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => demo.once("exit", (code) => resolve(code)));
    await waitFor(() => /Alertmanager\s+http/.test(stdout), {
      timeoutMs: 60_000,
      what: `the stack's URLs (stdout: ${stdout.slice(-500)} stderr: ${stderr.slice(-500)})`,
    });
  });

  afterAll(() => {
    if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, "SIGKILL");
  });

  it("prints Prometheus's and Alertmanager's URLs, and says the rules were shortened to the pace", () => {
    expect(stdout).toMatch(/Prometheus\s+http:\/\/127\.0\.0\.1:\d+\/alerts/);
    expect(stdout).toMatch(/shortened 300× to the demo's pace/);
  });

  it("fires the lag alert, the dead-letter page and the broadcast alert, and the receiver prints each", async () => {
    await waitFor(() => EXPECTED.every((line) => line.test(stdout)), {
      timeoutMs: 150_000,
      intervalMs: 500,
      what: `the three notifications (printed so far: ${stdout
        .split("\n")
        .filter((l) => l.startsWith("[alertmanager"))
        .join(" | ")})`,
    });
    const prometheusUrl = /Prometheus\s+(http:\/\/\S+)\/alerts/.exec(stdout)![1]!;
    const firing = (await prometheusAlerts(prometheusUrl)).filter((a) => a.state === "firing");
    expect(
      firing.some((a) => a.labels["alertname"] === "OrgwatchConsumerLag" && a.labels["role"] === "marketing"),
    ).toBe(true);
    // orgwatch itself is healthy: its own rules, on real time, stay silent.
    expect(
      firing.filter((a) => /OrgwatchDown|OrgwatchPolls|OrgwatchNats/.test(a.labels["alertname"]!)),
    ).toEqual([]);
  }, 180_000);

  it("stops Prometheus and Alertmanager with the rest on Ctrl-C, and removes their directories", async () => {
    const children = descendants(demo.pid!);
    const stack = children.filter((c) => /prometheus|alertmanager/.test(c.cmdline));
    expect(stack).toHaveLength(2);
    const dirs = stack.map((c) => dirname(/--config\.file=(\S+)/.exec(c.cmdline)![1]!));
    process.kill(-demo.pid!, "SIGINT");
    expect(await exited).toBe(0);
    for (const child of children) expect(alive(child.pid), `${child.pid} ${child.cmdline}`).toBe(false);
    for (const dir of dirs) expect(existsSync(dir), dir).toBe(false);
  });
});

describe("orgwatch demo --stack without Prometheus and Alertmanager", () => {
  const nodeOnlyPath = mkdtempSync(join(tmpdir(), "orgwatch-path-"));
  symlinkSync(process.execPath, join(nodeOnlyPath, "node"));
  afterAll(() => rmSync(nodeOnlyPath, { recursive: true, force: true }));

  it("says how to install them and runs the demo anyway", async () => {
    const demo = spawnOrgwatch(["demo", "--stack", "--web.listen-address", "127.0.0.1:0"], {
      detached: true,
      // A PATH with node alone on it: no prometheus, no alertmanager; nats-server named directly.
      env: { ...process.env, PATH: nodeOnlyPath, NATS_SERVER_BIN: findNatsServerBinary()! },
    });
    let out = "";
    demo.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => demo.once("exit", resolve));
    try {
      await waitFor(() => out.includes("--stack:"), { timeoutMs: 30_000, what: "the --stack line" });
      expect(out).toContain("prometheus and alertmanager not found on PATH");
      expect(out).toContain("apt-get install --no-install-recommends prometheus prometheus-alertmanager");
      expect(out).toMatch(/metrics\s+http/);
    } finally {
      if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, "SIGINT");
      await exited;
    }
  });
});
