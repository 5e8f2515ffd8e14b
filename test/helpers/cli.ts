// Running the orgwatch command line as a child process, from the TypeScript sources (no build step).
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** argv prefix that runs src/cli.ts with tsx. */
export const ORGWATCH = [process.execPath, "--import", "tsx", "src/cli.ts"] as const;

export function spawnOrgwatch(args: string[], options: SpawnOptions = {}): ChildProcess {
  const [node, ...pre] = ORGWATCH;
  return spawn(node, [...pre, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], ...options });
}

/** Runs to completion; resolves with exit code and output. */
export async function runOrgwatch(
  args: string[],
  options: SpawnOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnOrgwatch(args, options);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** An orgwatch daemon running as a child process, and the URL it serves (read from its log). */
export interface RunningOrgwatch {
  readonly child: ChildProcess;
  readonly url: Promise<string>;
  readonly exited: Promise<unknown>;
}

/**
 * Starts `orgwatch` against `natsUrl` on a free port, polling every `pollInterval`, with captured
 * ack samples and a short advisory ack wait (what the kill tests need: nothing lost while it is
 * down, handled again soon after), exporting spans as OTLP/JSON to `otlpUrl`; `extra` flags are
 * appended, `onLog` sees its log output as it comes.
 */
export function startOrgwatchDaemon(options: {
  natsUrl: string;
  otlpUrl: string;
  pollInterval: string;
  extra?: string[];
  onLog?: (chunk: Buffer) => void;
}): RunningOrgwatch {
  const args = [
    "--nats-url",
    options.natsUrl,
    "--web.listen-address",
    "127.0.0.1:0",
    "--poll-interval",
    options.pollInterval,
    "--advisories.ack-wait",
    "2s",
    // Dead letters hold an ack floor on nats-server 2.9: completions after them are known from
    // sampled acks only, captured so that none is lost while orgwatch is down.
    "--advisories.ack-samples",
    "capture",
    ...(options.extra ?? []),
  ];
  const child = spawnOrgwatch(args, {
    env: {
      ...process.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: options.otlpUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "200",
    },
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let out = "";
  child.stdout?.resume();
  const url = new Promise<string>((resolve, reject) => {
    child.stderr?.on("data", (d: Buffer) => {
      options.onLog?.(d);
      out += d.toString();
      const m = /"url":"(http:[^"]+)","telemetryPath"/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`orgwatch exited early: ${out.slice(-1000)}`)));
  });
  url.catch(() => undefined);
  return { child, url, exited };
}
