// `orgwatch demo` as a newcomer runs it: one child process, its banner, its /metrics telling the
// story within a minute, and Ctrl-C (SIGINT) leaving nothing behind.
import { existsSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnOrgwatch, runOrgwatch } from "../helpers/cli.js";
import { parseScrape, type Scrape } from "../helpers/metrics.js";
import { alive, descendants } from "../helpers/processes.js";
import { waitFor } from "../helpers/wait.js";

// At pace 300 a 20-minute turn takes 4 s and the 30-minute ack wait 6 s: the poison task's third
// delivery expires about 18 s after the start.
const PACE = 300;
/** Deadlines from the start of the demo, with room for a loaded 2-core machine. */
const DEADLINE_MS = {
  banner: 20_000,
  agents: 25_000,
  lag: 40_000,
  broadcast: 40_000,
  deadletter: 55_000,
  chain: 55_000,
};

describe("orgwatch demo", () => {
  let demo: ChildProcess;
  let stdout = "";
  let stderr = "";
  let startedAt = 0;
  let metricsUrl = "";
  let exited: Promise<number | null>;

  /** Polls /metrics until `probe` holds, within the part's deadline counted from the start. */
  async function storyPart<T>(what: string, deadlineMs: number, probe: (s: Scrape) => T | undefined | false) {
    return waitFor(
      async () => {
        const res = await fetch(metricsUrl);
        if (!res.ok) throw new Error(`GET ${metricsUrl}: ${res.status}`);
        return probe(parseScrape(await res.text()));
      },
      { timeoutMs: Math.max(1000, startedAt + deadlineMs - Date.now()), intervalMs: 500, what },
    );
  }

  beforeAll(async () => {
    startedAt = Date.now();
    // In a process group of its own, like a command started from a shell: Ctrl-C is SIGINT to the group.
    demo = spawnOrgwatch(["demo", "--pace", String(PACE), "--web.listen-address", "127.0.0.1:0"], {
      detached: true,
    });
    demo.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    demo.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => demo.once("exit", (code) => resolve(code)));
    metricsUrl = await waitFor(() => /^\s+metrics\s+(http\S+)$/m.exec(stdout)?.[1], {
      timeoutMs: DEADLINE_MS.banner,
      what: `the demo's banner (stderr: ${stderr.slice(-500)})`,
    });
  });

  afterAll(() => {
    if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, "SIGKILL");
  });

  it("prints a banner with the metrics URL, what to look at and how to stop", () => {
    expect(stdout).toContain("6 agents (ceo, cto, security, marketing, devops, finance)");
    expect(stdout).toContain('orgwatch_consumer_lag_messages{role="marketing"}');
    expect(stdout).toContain('orgwatch_deadletter_messages_total{role="devops"}');
    expect(stdout).toContain('orgwatch_broadcast_unacked_messages{role="finance"}');
    expect(stdout).toMatch(/Stop: Ctrl-C/);
  });

  it("prints an orgwatch check that judges the demo at its pace: no ack wait too short", async () => {
    const line = /(orgwatch check --nats-url \S+ .*)$/m.exec(stdout)?.[1];
    expect(line).toBeDefined();
    const args = line!.split(" ").slice(1);
    const r = await runOrgwatch([...args, "--format", "json"]);
    const doc = JSON.parse(r.stdout) as { findings: { check: string }[] };
    expect(doc.findings.filter((f) => f.check === "ack_wait_too_short")).toEqual([]);
    // The admission hint answers.
    const url = /curl -s '(http[^']+admission[^']+)'/.exec(stdout)?.[1];
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { role: string }).role).toBe("marketing");
  });

  it("has every agent reporting its status", async () => {
    const roles = ["ceo", "cto", "security", "marketing", "devops", "finance"];
    await storyPart("every agent up", DEADLINE_MS.agents, (s) =>
      roles.every((role) => s.value("orgwatch_agent_up", { role }) === 1),
    );
  });

  it("shows the overloaded agent's lag past 5 while the CTO keeps up", async () => {
    const lag = (s: Scrape, role: string) =>
      s.value("orgwatch_consumer_lag_messages", { role, kind: "tasks", consumer: `${role}-worker` });
    const seen = await storyPart("marketing lag over 5", DEADLINE_MS.lag, (s) => {
      const marketing = lag(s, "marketing");
      return marketing !== undefined && marketing > 5 && { marketing, cto: lag(s, "cto") };
    });
    expect(seen.cto).toBeDefined();
    expect(seen.cto!).toBeLessThanOrEqual(5);
  });

  it("shows a broadcast left unacknowledged by the agent that ignores broadcasts, and only by it", async () => {
    await storyPart("finance's unacknowledged broadcast, the others acked", DEADLINE_MS.broadcast, (s) => {
      const unacked = s.series("orgwatch_broadcast_unacked_messages");
      const finance = unacked.find((u) => u.labels["role"] === "finance");
      return (
        unacked.length === 6 &&
        finance !== undefined &&
        finance.value >= 1 &&
        unacked.every((u) => u.labels["role"] === "finance" || u.value === 0)
      );
    });
  });

  it("routes the flaky agent's poison task to the dead letters, and no one else's", async () => {
    const sum = (series: { labels: Record<string, string>; value: number }[], devops: boolean) =>
      series.filter((d) => (d.labels["role"] === "devops") === devops).reduce((n, d) => n + d.value, 0);
    const seen = await storyPart(
      "a dead letter (and the nak before it) from devops",
      DEADLINE_MS.deadletter,
      (s) => {
        const deadLetters = s.series("orgwatch_deadletter_messages_total");
        const naks = s.series("orgwatch_consumer_naks_total");
        return sum(deadLetters, true) >= 1 && sum(naks, true) >= 1 && { deadLetters, naks };
      },
    );
    expect(sum(seen.deadLetters, false)).toBe(0);
    expect(sum(seen.naks, false)).toBe(0);
  });

  it("shows completed CEO → CTO → Security → CEO chains", async () => {
    await storyPart("a completed chain", DEADLINE_MS.chain, (s) => {
      const approvals = s.value("orgwatch_tasks_completed_total", {
        role: "ceo",
        type: "release_approval",
        outcome: "completed",
      });
      const chains = s.histogram("orgwatch_chain_duration_seconds");
      return approvals !== undefined && approvals >= 1 && chains !== undefined && chains.count >= 1;
    });
  });

  it("judges the simulated organization's setup on the demo's clock: no error-level finding", async () => {
    // The simulator scales 30-minute ack waits by the pace; the daemon scales the expected work with
    // it, so the reference topology is not reported with ack waits shorter than the work.
    // Findings are evaluated on each poll: once a poll has seen every agent's task consumer, the same
    // scrape holds that poll's findings.
    const seen = await storyPart(
      "setup findings of a poll that saw every worker",
      DEADLINE_MS.agents,
      (s) => {
        const workers = s
          .series("orgwatch_consumer_ack_wait_seconds")
          .filter((c) => c.labels["kind"] === "tasks");
        return workers.length === 6 && { findings: s.series("orgwatch_config_findings") };
      },
    );
    const errors = seen.findings.filter((f) => f.labels["level"] === "error" && f.value > 0);
    expect(errors).toEqual([]);
  });

  it("stops every child process and removes its temporary state on Ctrl-C", async () => {
    const children = descendants(demo.pid!);
    const nats = children.find((c) => c.cmdline.includes("nats-server"));
    expect(nats).toBeDefined();
    const storeDir = / -sd (\S+)/.exec(nats!.cmdline)?.[1];
    expect(storeDir && existsSync(storeDir)).toBeTruthy();

    process.kill(-demo.pid!, "SIGINT");
    expect(await exited).toBe(0);
    expect(stdout).toContain("temporary state removed");
    for (const child of children) expect(alive(child.pid), `${child.pid} ${child.cmdline}`).toBe(false);
    expect(existsSync(storeDir!)).toBe(false);
  });
});

describe("orgwatch demo without nats-server", () => {
  it("says how to install it and exits 2", async () => {
    const result = await runOrgwatch(["demo"], {
      env: { ...process.env, NATS_SERVER_BIN: "/nonexistent/nats-server" },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("nats-server was not found");
    expect(result.stderr).toContain("apt-get install nats-server");
    // Nothing was started: no banner.
    expect(result.stdout).toBe("");
  });
});
