// Starting a local nats-server child process: used by `orgwatch demo`, the tests and the benchmarks.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export const NATS_INSTALL_HINT =
  "install it with: apt-get install nats-server (or set NATS_SERVER_BIN to its path)";

/** NATS_SERVER_BIN, else nats-server on PATH (or Debian's /usr/sbin), else undefined. */
export function findNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env["NATS_SERVER_BIN"]) return existsSync(env["NATS_SERVER_BIN"]) ? env["NATS_SERVER_BIN"] : undefined;
  const dirs = [...(env["PATH"] ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Ports handed out by freePort: below Linux's ephemeral range (32768–60999), so the port cannot be
 * taken between the check and the bind by an outgoing connection's local port (listen(0) would
 * pick from that very range). Random, so parallel test workers rarely pick the same one.
 */
const FREE_PORT_RANGE = { first: 20_000, last: 32_000 } as const;

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  const span = FREE_PORT_RANGE.last - FREE_PORT_RANGE.first;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FREE_PORT_RANGE.first + Math.floor(Math.random() * span);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found in ${FREE_PORT_RANGE.first}-${FREE_PORT_RANGE.last}`);
}

async function waitForPort(port: number, deadlineMs: number, child: ChildProcess): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = tcpConnect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until)
      throw new Error(`nats-server did not listen on port ${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface NatsServerOptions {
  /** Client port; a free one when absent. Kept across restarts. */
  port?: number;
  /** JetStream store directory; a fresh temporary one when absent (removed by stop()). */
  storeDir?: string;
  /** Extra configuration in nats-server's config syntax (auth, TLS, cluster...). */
  config?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** Server name (needed in a cluster). */
  name?: string;
  /** Log to this file instead of discarding. */
  logFile?: string;
  /**
   * Run it in a process group of its own, so that a terminal's Ctrl-C reaches only the parent,
   * which stops its NATS clients first and the server last (the demo).
   */
  ownProcessGroup?: boolean;
}

export interface NatsServerProcess {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number | undefined;
  /** SIGKILL, no cleanup (a crash). The store is kept so that restart() can bring it back. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store. */
  restart(): Promise<void>;
  /** SIGTERM, wait, then remove temporary state. */
  stop(): Promise<void>;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerProcess> {
  const bin = findNatsServerBinary();
  if (!bin) throw new Error(`nats-server not found; ${NATS_INSTALL_HINT}`);
  const port = options.port ?? (await freePort());
  const ownStore = options.storeDir === undefined;
  const workDir = mkdtempSync(join(tmpdir(), "orgwatch-nats-"));
  const storeDir = options.storeDir ?? join(workDir, "store");
  const configFile = join(workDir, "nats.conf");
  writeFileSync(configFile, options.config ?? "");
  const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir, "-c", configFile];
  if (options.name) args.push("-n", options.name);
  if (options.logFile) args.push("-l", options.logFile);
  args.push(...(options.args ?? []));

  let child: ChildProcess;
  const launch = async () => {
    child = spawn(bin, args, {
      stdio: ["ignore", "ignore", options.logFile ? "ignore" : "pipe"],
      detached: options.ownProcessGroup ?? false,
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < 20_000) stderr += d.toString();
    });
    try {
      await waitForPort(port, 15_000, child);
    } catch (err) {
      child.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\n${stderr.slice(-2000)}`);
    }
  };
  const exited = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
  await launch();

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return child.pid;
    },
    async kill() {
      child.kill("SIGKILL");
      await exited();
    },
    async restart() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited();
      }
      await launch();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited();
        clearTimeout(timer);
      }
      rmSync(workDir, { recursive: true, force: true });
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
