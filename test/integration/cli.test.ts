// The orgwatch command line as users run it: --help, --version, bad configuration (one line, exit
// code 2), and the daemon answering /metrics with NATS absent, stopping cleanly on SIGTERM.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, startNatsServer } from "../../src/nats/server-process.js";
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
  // Each run starts Node with tsx: the runs of a test go in parallel to keep the file fast.
  it("--version prints the package's version; --help names the commands and every setting", async () => {
    const [version, top, run] = await Promise.all([
      runOrgwatch(["--version"], { env: cleanEnv() }),
      runOrgwatch(["--help"], { env: cleanEnv() }),
      runOrgwatch(["run", "--help"], { env: cleanEnv() }),
    ]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);
    expect(top.code).toBe(0);
    for (const command of ["run", "demo", "check"])
      expect(top.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    expect(run.code).toBe(0);
    const text = run.stdout.replace(/\s+/g, " ");
    for (const flag of [
      "--nats-url",
      "--nats-creds",
      "--nats-user",
      "--nats-password",
      "--nats-token",
      "--nats-nkey",
      "--nats-tls-ca",
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

  it("refuses bad configuration with one line naming the setting, and exit code 2", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "poll-interval: often\n");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--poll-interval", "15"], {}, /^orgwatch: invalid setting --poll-interval: "15" is not a duration/],
      [[], { ORGWATCH_POLL_CONCURRENCY: "lots" }, /^orgwatch: invalid setting ORGWATCH_POLL_CONCURRENCY: /],
      [["--no-such-flag"], {}, /^orgwatch: unknown option '--no-such-flag'/],
      [
        ["--web.enable-admin-api", "--web.listen-address", "127.0.0.1:0"],
        {},
        /^orgwatch: invalid setting --web.enable-admin-api: write actions need authentication/,
      ],
      [
        ["--web.trace-url", "http://jaeger/trace"],
        {},
        /^orgwatch: invalid setting --web.trace-url: .*\{trace_id\}/,
      ],
      [["deadletters", "show", "0"], {}, /^orgwatch deadletters: "0" is not a dead letter id/],
      [
        ["--config", file],
        {},
        /^orgwatch: invalid setting poll-interval \(in .*bad\.yaml\): "often" is not a duration/,
      ],
    ];
    const results = await Promise.all(cases.map(([args, env]) => runOrgwatch(args, { env: cleanEnv(env) })));
    results.forEach((r, i) => {
      const [args, env, message] = cases[i]!;
      const what = JSON.stringify({ args, env });
      expect(r.code, what).toBe(2);
      expect(r.stdout, what).toBe("");
      expect(r.stderr.trimEnd().split("\n"), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(message);
    });
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

  it("connects with a nats CLI context, named or selected; a missing one is one line and exit 2", async () => {
    const server = await startNatsServer();
    try {
      const home = join(dir, "xdg");
      mkdirSync(join(home, "nats", "context"), { recursive: true });
      writeFileSync(join(home, "nats", "context", "test.json"), JSON.stringify({ url: server.url }));
      writeFileSync(join(home, "nats", "context.txt"), "test");
      const env = cleanEnv({ XDG_CONFIG_HOME: home });
      delete env["NATS_CONTEXT"];
      const [named, selected, missing] = await Promise.all([
        runOrgwatch(["check", "--context", "test", "--format", "json"], { env }),
        runOrgwatch(["check", "--format", "json"], { env }),
        runOrgwatch(["check", "--context", "nope"], { env }),
      ]);
      for (const r of [named, selected]) {
        expect(r.stderr).toBe("");
        expect((JSON.parse(r.stdout) as { streams: number }).streams).toBe(0);
      }
      expect(missing.code).toBe(2);
      expect(missing.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(missing.stderr).toMatch(/nats context "nope" not found/);
    } finally {
      await server.stop();
    }
  });
});
