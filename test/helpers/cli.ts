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
