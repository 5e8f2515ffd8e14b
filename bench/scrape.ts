// /metrics at scale and the load orgwatch puts on NATS. The daemon runs in a child process
// (bench/scrape-child.ts) against the benchmark organization at a given poll interval; this process
// scrapes it on a fixed cadence (scrape latency), while the child measures its event-loop stalls and
// resident memory, and the nats-server's CPU time and JetStream API request count (its /jsz) are read
// before and after. Then prom-client alone serves the same series from a bare registry, for comparison.
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { freePort, startNatsServer } from "../src/nats/server-process.js";
import { Agent, get } from "node:http";
import { gunzipSync } from "node:zlib";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import type { ChildReport } from "./scrape-child.js";
import { max, median, percentile } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");
const CHILD_SOURCE = join(ROOT, "bench", "scrape-child.ts");
// Under node_modules so that the child's bare imports (prom-client) resolve from the repository.
const CHILD = join(ROOT, "node_modules", ".cache", "orgwatch-bench", "scrape-child.mjs");
const CLOCK_TICKS_PER_SECOND = 100;

export interface ScrapeSide {
  readonly scrapes: number;
  /** Scrapes that failed (connection reset, non-200). */
  readonly failed: number;
  readonly firstError: string | undefined;
  /** Request sent → last byte received (the body kept as bytes, as a scraper reading it does). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /**
   * The same scrapes read as a JavaScript client does (`fetch(url).then((r) => r.text())`): the
   * 17 MB body decoded into one string on the client adds this (median), not the server.
   */
  readonly clientDecodeP50Ms: number;
  readonly bytes: number;
  readonly series: number;
  readonly child: ChildReport;
  /**
   * Scrapes from the daemon's first poll until its first save of chain state (start-up: the
   * lost-work state of every consumer written at once), measured apart from the run above.
   */
  readonly startup?: {
    readonly seconds: number;
    readonly scrapes: number;
    readonly p50Ms: number;
    readonly maxMs: number;
  };
}

export interface NatsLoad {
  readonly seconds: number;
  readonly polls: number;
  /** JetStream API requests the server handled during the run (only orgwatch was asking). */
  readonly apiRequests: number;
  readonly apiRequestsPerPoll: number;
  /** The server's CPU time over the run, as a share of one core. */
  readonly serverCpuPercent: number;
  /** The same, with nothing connected, for the same length of time. */
  readonly idleServerCpuPercent: number;
}

/** The built daemon (`node dist/cli.js`) on an organization with nothing in it, after its first polls. */
export interface IdleDaemon {
  readonly rssMb: number;
  readonly rssPeakMb: number;
}

export interface ScrapeResult {
  readonly consumers: number;
  readonly idle: IdleDaemon | undefined;
  readonly orgwatch: ScrapeSide;
  /** The same, with another process keeping one core busy all along (started by the benchmark). */
  readonly orgwatchLoaded: ScrapeSide | undefined;
  readonly bare: ScrapeSide;
  readonly nats: NatsLoad;
}

/** Utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5); after the command name the list starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

async function apiTotal(monitorUrl: string): Promise<number> {
  const jsz = (await (await fetch(`${monitorUrl}/jsz`)).json()) as { api?: { total?: number } };
  return jsz.api?.total ?? 0;
}

function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (name.endsWith(".ts")) newest = Math.max(newest, statSync(join(dir, name)).mtimeMs);
  }
  return newest;
}

/**
 * The daemon is measured as users run it: built (dist/, plain node), not through tsx, whose loader
 * thread and compiler alone hold tens of MB. Builds dist/ when a source file is newer than it, and
 * compiles the child (bench/scrape-child.ts) to plain JavaScript importing from dist/.
 */
function prepareChild(): void {
  const built = (() => {
    try {
      return statSync(join(DIST, "daemon.js")).mtimeMs;
    } catch {
      return 0;
    }
  })();
  if (built < newestSourceMs(join(ROOT, "src"))) {
    const before = built;
    try {
      execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    } catch (err) {
      // tsc still emits when a file has a type error; measure what was emitted, but say so.
      if (statSync(join(DIST, "daemon.js")).mtimeMs <= before) throw err;
      process.stderr.write(`npm run build reported errors (dist/ was still written): ${String(err)}\n`);
    }
  }
  const js = ts.transpileModule(readFileSync(CHILD_SOURCE, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const distUrl = pathToFileURL(DIST).href;
  mkdirSync(join(CHILD, ".."), { recursive: true });
  writeFileSync(CHILD, js.replaceAll(/from "\.\.\/src\//g, `from "${distUrl}/`));
}

function startChild(args: string[]): Promise<{ child: ChildProcess; url: string; settled: Promise<number> }> {
  // BENCH_CPU_PROF_DIR=<dir>: each child writes a V8 CPU profile there (open it in Chrome DevTools).
  // BENCH_TRACE_GC=1: each child prints V8's --trace-gc lines (every pause, its kind and duration).
  const profile = process.env["BENCH_CPU_PROF_DIR"];
  // BENCH_NODE_FLAGS="--max-semi-space-size=4 ...": V8 flags for each child, to try their effect.
  const execArgv = [
    ...(process.env["BENCH_NODE_FLAGS"]?.split(" ").filter(Boolean) ?? []),
    ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []),
    ...(process.env["BENCH_TRACE_GC"] ? ["--trace-gc"] : []),
  ];
  const child = fork(CHILD, args, { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child.on("exit", (code, signal) => {
    if (code !== 0) process.stderr.write(`scrape child exited: code ${code}, signal ${signal}\n`);
  });
  const settled = new Promise<number>((resolve) => {
    child.on("message", (m: { settled?: boolean; startupMs?: number }) => {
      if (m.settled) resolve(m.startupMs!);
    });
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`scrape child exited (${code}) before it was ready`)));
    child.on("message", (m: { ready?: boolean; url?: string }) => {
      if (m.ready) resolve({ child, url: m.url!, settled });
    });
  });
}

function report(child: ChildProcess): Promise<ChildReport> {
  return new Promise((resolve) => {
    child.on("message", (m: { report?: ChildReport }) => {
      if (m.report) resolve(m.report);
    });
    child.send("report");
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  child.send("exit");
  await exited;
}

// As Prometheus scrapes: asking for gzip. BENCH_SCRAPE_GZIP=0: identity (curl without --compressed;
// the figures in BENCHMARKS.md before 2026-12-07's second session).
const SCRAPE_ENCODING = process.env["BENCH_SCRAPE_GZIP"] === "0" ? "identity" : "gzip";

/** Keep-alive, as Prometheus scrapes. */
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** One scrape: the body's bytes, and when its last byte came. */
function scrapeOnce(url: string): Promise<{ body: Buffer[]; gzipped: boolean; lastByteMs: number }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent, headers: { "Accept-Encoding": SCRAPE_ENCODING } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode}`));
        return;
      }
      const body: Buffer[] = [];
      res.on("data", (b: Buffer) => body.push(b));
      res.on("end", () =>
        resolve({ body, gzipped: res.headers["content-encoding"] === "gzip", lastByteMs: performance.now() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** Scrapes `url` every `everyMs` for `durationMs` (at least `minScrapes` times), or until `done()`. */
async function scrapeLoop(
  url: string,
  durationMs: number,
  everyMs: number,
  minScrapes: number,
  done: () => boolean = () => false,
) {
  const latencies: number[] = [];
  const decodes: number[] = [];
  const errors: string[] = [];
  let last = "";
  const until = performance.now() + durationMs;
  while ((performance.now() < until || latencies.length < minScrapes) && !done()) {
    const t0 = performance.now();
    try {
      const { body, gzipped, lastByteMs } = await scrapeOnce(url);
      latencies.push(lastByteMs - t0);
      // BENCH_STALL_LOG=1: slow scrapes with their wall-clock time, to line up with the child's polls.
      if (process.env["BENCH_STALL_LOG"] && lastByteMs - t0 > 100)
        process.stderr.write(
          `slow scrape ${(lastByteMs - t0).toFixed(0)} ms sent at ${(performance.timeOrigin + t0).toFixed(0)}\n`,
        );
      // What a JavaScript client would do next, timed apart: the server's part is done.
      const d0 = performance.now();
      const raw = Buffer.concat(body);
      last = (gzipped ? gunzipSync(raw) : raw).toString("utf8");
      decodes.push(performance.now() - d0);
    } catch (err) {
      // Counted, not fatal: the table says how many failed.
      errors.push(
        `${(err as Error).message}${(err as Error).cause ? `: ${String((err as Error).cause)}` : ""}`,
      );
      if (errors.length > 20) throw new Error(`scrapes keep failing: ${errors.slice(-3).join("; ")}`);
    }
    const rest = everyMs - (performance.now() - t0);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  return { latencies, decodes, last, errors };
}

function side(
  { latencies, decodes, last: text, errors }: Awaited<ReturnType<typeof scrapeLoop>>,
  child: ChildReport,
): ScrapeSide {
  let series = 0;
  for (const line of text.split("\n")) if (line !== "" && !line.startsWith("#")) series++;
  return {
    scrapes: latencies.length,
    failed: errors.length,
    firstError: errors[0],
    p50Ms: median(latencies),
    p99Ms: percentile(latencies, 99),
    maxMs: max(latencies),
    clientDecodeP50Ms: median(decodes),
    bytes: text.length,
    series,
    child,
  };
}

export async function measureScrape(
  natsUrl: string,
  server: { pid: number; monitorUrl: string },
  consumers: number,
  {
    /** Also with one core kept busy by another process. */
    loaded = false,
    /** Also the built daemon's idle memory. */
    idle: withIdle = false,
    pollIntervalMs = 15_000,
    durationMs = 45_000,
    scrapeEveryMs = 500,
    bareScrapes = 10,
    idleMs = 10_000,
  } = {},
): Promise<ScrapeResult> {
  prepareChild();
  // The server idle, for comparison.
  const idle0 = cpuSeconds(server.pid);
  await new Promise((r) => setTimeout(r, idleMs));
  const idleCpu = cpuSeconds(server.pid) - idle0;

  const idle = withIdle ? await measureIdleDaemon() : undefined;
  const dir = mkdtempSync(join(tmpdir(), "orgwatch-bench-"));
  const quiet = await measureOrgwatch(natsUrl, server, pollIntervalMs, durationMs, scrapeEveryMs);
  writeFileSync(join(dir, "exposition.txt"), quiet.last);
  // The same with one core kept busy by another process all along (a loaded node, a noisy
  // neighbour): the event loop then shares the machine's two cores with it and nats-server.
  let busyCore: Awaited<ReturnType<typeof measureOrgwatch>> | undefined;
  if (loaded) {
    const busy = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
    try {
      busyCore = await measureOrgwatch(natsUrl, server, pollIntervalMs, durationMs, scrapeEveryMs);
    } finally {
      busy.kill("SIGKILL");
    }
  }
  const nats = { ...quiet.nats, idleServerCpuPercent: (idleCpu / (idleMs / 1000)) * 100 };
  try {
    const bareChild = await startChild(["bare", join(dir, "exposition.txt")]);
    try {
      const run = await scrapeLoop(bareChild.url, 0, scrapeEveryMs, bareScrapes);
      return {
        consumers,
        idle,
        orgwatch: quiet.side,
        orgwatchLoaded: busyCore?.side,
        bare: side(run, await report(bareChild.child)),
        nats,
      };
    } finally {
      await stopChild(bareChild.child);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The daemon in a child, scraped for `durationMs`; what NATS did meanwhile. */
async function measureOrgwatch(
  natsUrl: string,
  server: { pid: number; monitorUrl: string },
  pollIntervalMs: number,
  durationMs: number,
  scrapeEveryMs: number,
): Promise<{ side: ScrapeSide; nats: Omit<NatsLoad, "idleServerCpuPercent">; last: string }> {
  const ours = await startChild(["orgwatch", natsUrl, String(pollIntervalMs)]);
  try {
    // Start-up first (see ScrapeSide.startup), then the steady state the figures are about.
    let startupMs: number | undefined;
    void ours.settled.then((ms) => (startupMs = ms));
    const startupRun = await scrapeLoop(ours.url, 60_000, scrapeEveryMs, 0, () => startupMs !== undefined);
    const api0 = await apiTotal(server.monitorUrl);
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    const polls0 = (await report(ours.child)).polls;
    const run = await scrapeLoop(ours.url, durationMs, scrapeEveryMs, 3);
    const seconds = (performance.now() - t0) / 1000;
    const childReport = await report(ours.child);
    const apiRequests = (await apiTotal(server.monitorUrl)) - api0;
    const polls = childReport.polls - polls0;
    return {
      side: {
        ...side(run, childReport),
        startup: {
          seconds: (startupMs ?? NaN) / 1000,
          scrapes: startupRun.latencies.length,
          p50Ms: median(startupRun.latencies),
          maxMs: max(startupRun.latencies),
        },
      },
      last: run.last,
      nats: {
        seconds,
        polls,
        apiRequests,
        apiRequestsPerPoll: polls > 0 ? apiRequests / polls : NaN,
        serverCpuPercent: ((cpuSeconds(server.pid) - cpu0) / seconds) * 100,
      },
    };
  } finally {
    await stopChild(ours.child);
  }
}

/** VmRSS and VmHWM (the peak) of a process, in MB. */
function residentMb(pid: number): { rssMb: number; rssPeakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMb: kb("VmRSS") / 1024, rssPeakMb: kb("VmHWM") / 1024 };
}

/**
 * The built daemon as users start it, `node dist/cli.js`, on a nats-server of its own with no
 * organization: its own weight, after three polls.
 */
async function measureIdleDaemon(): Promise<IdleDaemon> {
  const server = await startNatsServer();
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      join(DIST, "cli.js"),
      "--nats-url",
      server.url,
      "--web.listen-address",
      `127.0.0.1:${port}`,
      "--poll-interval",
      "1s",
    ],
    { stdio: "ignore" },
  );
  try {
    // Three polls a second apart: the last success is three seconds after the first.
    const lastPoll = async () => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      return Number(/^orgwatch_last_poll_success_timestamp_seconds (\S+)/m.exec(text)?.[1] ?? 0);
    };
    let first = 0;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the daemon exited (${child.exitCode})`);
      const last = await lastPoll().catch(() => 0);
      if (first === 0) first = last;
      else if (last >= first + 2.5) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return residentMb(child.pid!);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await server.stop();
  }
}
