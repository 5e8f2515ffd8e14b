// The orgwatch command line as users run it: --help, --version, bad configuration (one line, exit
// code 2), and the daemon answering /metrics with NATS absent, stopping cleanly on SIGTERM.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/nats/server-process.js";
import { VERSION } from "../../src/version.js";
import { runOrgwatch, spawnOrgwatch } from "../helpers/cli.js";
import { scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/wait.js";

const dir = mkdtempSync(join(tmpdir(), "orgwatch-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment without ORGWATCH_* / NATS_URL leaking in from the developer's shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("ORGWATCH_") && k !== "NATS_URL") env[k] = v;
  }
  return { ...env, ...extra };
}

describe("orgwatch command line", () => {
  it("--version prints the package's version", async () => {
    const r = await runOrgwatch(["--version"], { env: cleanEnv() });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it("--help names the commands and every setting of the daemon with its default and variable", async () => {
    const top = await runOrgwatch(["--help"], { env: cleanEnv() });
    expect(top.code).toBe(0);
    for (const command of ["run", "demo", "check"])
      expect(top.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    const run = await runOrgwatch(["run", "--help"], { env: cleanEnv() });
    expect(run.code).toBe(0);
    const text = run.stdout.replace(/\s+/g, " ");
    for (const flag of [
      "--nats-url",
      "--nats-creds",
      "--subject-prefix",
      "--poll-interval",
      "--web.listen-address",
      "--web.telemetry-path",
      "--web.config.file",
      "--log.level",
      "--log.format",
      "--config",
    ]) {
      expect(text).toContain(flag);
    }
    expect(text).toContain("(default 15s); env ORGWATCH_POLL_INTERVAL");
    expect(text).toContain("env ORGWATCH_NATS_URL, NATS_URL");
  });

  it.each([
    [["--poll-interval", "15"], {}, /^orgwatch: invalid setting --poll-interval: "15" is not a duration/],
    [["run", "--web.listen-address", "nowhere"], {}, /^orgwatch: invalid setting --web\.listen-address: /],
    [[], { ORGWATCH_POLL_CONCURRENCY: "lots" }, /^orgwatch: invalid setting ORGWATCH_POLL_CONCURRENCY: /],
    [["--log.format", "xml"], {}, /^orgwatch: .*xml.*json, pretty/],
    [["--no-such-flag"], {}, /^orgwatch: unknown option '--no-such-flag'/],
  ] as const)("%j %j: one line on stderr, exit code 2", async (args, env, message) => {
    const r = await runOrgwatch([...args], { env: cleanEnv(env) });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it("names the file and key of a bad value in the --config file", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "web:\n  telemetry-path: metrics\n");
    const r = await runOrgwatch(["--config", file], { env: cleanEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("orgwatch: invalid setting --web.telemetry-path: must start with /\n");
    writeFileSync(file, "poll-interval: often\n");
    const r2 = await runOrgwatch(["--config", file], { env: cleanEnv() });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(
      /^orgwatch: invalid setting poll-interval \(in .*bad\.yaml\): "often" is not a duration/,
    );
  });

  it("serves /metrics with NATS absent and stops cleanly on SIGTERM", async () => {
    const natsPort = await freePort();
    const webPort = await freePort();
    const child = spawnOrgwatch(
      ["--nats-url", `nats://127.0.0.1:${natsPort}`, "--web.listen-address", `127.0.0.1:${webPort}`],
      { env: cleanEnv({ ORGWATCH_LOG_LEVEL: "error" }) },
    );
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const m = await waitFor(() => scrape(`http://127.0.0.1:${webPort}`), { what: "/metrics" });
      expect(m.value("orgwatch_nats_connected")).toBe(0);
      expect(m.value("orgwatch_build_info", { version: VERSION })).toBe(1);
      child.kill("SIGTERM");
      // Exit code 0: stopped cleanly, not by the forced exit (code 1) that fires after 4.5 s.
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    expect(stderr).toBe("");
  });
});
