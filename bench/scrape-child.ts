// A process serving /metrics for bench/scrape.ts, measuring itself: the longest event-loop stall
// (perf_hooks.monitorEventLoopDelay) and resident memory, peaks included (sampled every 10 ms, and
// the kernel's own maxRSS). Two modes:
//   orgwatch <nats url> <poll interval ms>   the daemon (startDaemon, every source) on that server
//   bare <exposition file>                   prom-client gauges holding the same series, rendered
//                                            by registry.metrics() on every scrape
// Talks over IPC: sends {ready, url}; on "report" sends the figures; on "exit" leaves.
import { createServer, get } from "node:http";
import { readFileSync } from "node:fs";
import { getHeapSpaceStatistics, writeHeapSnapshot } from "node:v8";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { Gauge, Registry } from "prom-client";
import { configWith } from "../src/config/load.js";
import { startDaemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";

export interface ChildReport {
  readonly maxStallMs: number;
  readonly p99StallMs: number;
  readonly rssPeakMb: number;
  readonly rssNowMb: number;
  readonly heapUsedMb: number;
  /** V8's heap as reserved, and memory outside it (Buffers: the encoded text, socket data). */
  readonly heapTotalMb: number;
  readonly externalMb: number;
  readonly polls: number;
  readonly series: number;
  /** The longest garbage-collection pause, and its kind (perf_hooks "gc" entries). */
  readonly maxGcPauseMs: number;
  readonly maxGcKind: string;
  /** The longest stalls seen by a 10 ms timer, each with what the daemon was doing then. */
  readonly longestStalls: readonly { ms: number; during: string }[];
  /** The longest time one of the model's `polled` listeners took at the end of a poll (orgwatch only). */
  readonly longestPolledListenersMs: number;
  /** What the resident memory was made of when it peaked (MB). */
  readonly atPeak: MemoryAtPeak;
}

/** V8's spaces as committed (young: new space and its large objects; old: old, map and large objects). */
export interface MemoryAtPeak {
  readonly rssMb: number;
  readonly youngMb: number;
  readonly oldMb: number;
  readonly codeMb: number;
  /** Buffers' and ArrayBuffers' bytes (outside V8's heap). */
  readonly arrayBuffersMb: number;
}

const MB = 1024 * 1024;
const send = (m: unknown) => process.send?.(m);

let rssPeak = 0;
let atPeak: MemoryAtPeak = { rssMb: 0, youngMb: 0, oldMb: 0, codeMb: 0, arrayBuffersMb: 0 };
/** Notes what memory is made of at each new peak (rare after the first polls: the cost stays small). */
function samplePeak(): void {
  const rss = process.memoryUsage.rss();
  if (rss <= rssPeak) return;
  rssPeak = rss;
  let young = 0;
  let old = 0;
  let code = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name.startsWith("new")) young += space.physical_space_size;
    else if (space.space_name.startsWith("code")) code += space.physical_space_size;
    else old += space.physical_space_size;
  }
  atPeak = {
    rssMb: rss / MB,
    youngMb: young / MB,
    oldMb: old / MB,
    codeMb: code / MB,
    arrayBuffersMb: process.memoryUsage().arrayBuffers / MB,
  };
}
const sampler = setInterval(samplePeak, 10);
// BENCH_MEMORY_LOG=1: resident memory, V8's heap and Buffers every 100 ms, to see what rises when.
if (process.env["BENCH_MEMORY_LOG"]) {
  setInterval(() => {
    const m = process.memoryUsage();
    process.stderr.write(
      `memory ${Date.now()} rss ${(m.rss / MB).toFixed(0)} heap ${(m.heapTotal / MB).toFixed(0)} ` +
        `used ${(m.heapUsed / MB).toFixed(0)} buffers ${(m.arrayBuffers / MB).toFixed(0)}\n`,
    );
  }, 100).unref();
}
const loop = monitorEventLoopDelay({ resolution: 5 });

const [mode, arg, intervalArg] = process.argv.slice(2);
let url: string;
let polls = () => 0;
let lastPollEnd = 0;
let listenersMs = 0;
let describePoll = () => "";
let series = 0;
/** When the first poll was applied, and whether start-up's work is done (see "settled" below). */
let firstPolledMs = 0;
let startupDone = () => true;

if (mode === "orgwatch") {
  const config = configWith({
    "nats-url": [arg!],
    "web.listen-address": "127.0.0.1:0",
    "poll-interval": Number(intervalArg),
    // BENCH_HEAP_GROWTH=<percent> compares V8's growing factors (0 = V8's own); unset, the default.
    ...(process.env["BENCH_HEAP_GROWTH"] !== undefined
      ? { "memory.heap-growth": Number(process.env["BENCH_HEAP_GROWTH"]) }
      : {}),
  });
  const daemon = await startDaemon(config, { log: silentLogger() });
  await daemon.started;
  // Wait for the first poll: the bench measures a daemon that knows its organization.
  while (daemon.org.health.pollsCompleted === 0) await new Promise((r) => setTimeout(r, 20));
  firstPolledMs = Date.now();
  const health = daemon.org.health;
  startupDone = () => (health.lastStateSavedMs ?? 0) >= firstPolledMs;
  polls = () => daemon.org.health.pollsCompleted;
  daemon.org.jetstream.on("polled", () => (lastPollEnd = performance.now()));
  if (process.env["BENCH_STALL_LOG"]) {
    daemon.org.jetstream.on("polled", (r) =>
      process.stderr.write(`poll started at ${r.at}, listeners from ${Date.now()}\n`),
    );
    daemon.org.jetstream.on("applied", () => process.stderr.write(`poll applied at ${Date.now()}\n`));
  }
  // How long the longest of the model's `polled` listeners runs without giving the event loop a
  // turn (each runs on its own turn at each poll's end; one that returns steps, a turn per step).
  const model = daemon.org.jetstream;
  type PolledListener = Parameters<typeof model.on<"polled">>[1];
  const timedSteps = function* (steps: Iterator<unknown>) {
    for (;;) {
      const t0 = performance.now();
      const step = steps.next();
      listenersMs = Math.max(listenersMs, performance.now() - t0);
      if (step.done) return;
      yield;
    }
  };
  for (const listener of model.listeners("polled") as PolledListener[]) {
    const timed = (...args: Parameters<PolledListener>): unknown => {
      const t0 = performance.now();
      const returned = (listener as (...a: Parameters<PolledListener>) => unknown)(...args);
      listenersMs = Math.max(listenersMs, performance.now() - t0);
      const next = (returned as { next?: unknown } | undefined)?.next;
      return typeof next === "function" ? timedSteps(returned as Iterator<unknown>) : undefined;
    };
    model.off("polled", listener);
    model.on("polled", timed as PolledListener);
  }
  describePoll = () => ` (polls take ${(daemon.org.health.lastPollDurationSeconds ?? 0).toFixed(2)} s)`;
  url = `${daemon.url}/metrics`;
} else {
  const text = readFileSync(arg!, "utf8");
  const registry = new Registry();
  const families = new Map<
    string,
    { help: string; samples: { labels: Record<string, string>; value: number }[] }
  >();
  let help = new Map<string, string>();
  const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) {
      const [name, ...rest] = line.slice(7).split(" ");
      help.set(name!, rest.join(" "));
      continue;
    }
    if (line.startsWith("#") || line === "") continue;
    const m = LINE.exec(line);
    if (!m) continue;
    // Gauges only (the big families are); histograms and counters of the exposition are few.
    const name = m[1]!;
    if (/_(bucket|sum|count|total|created)$/.test(name)) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(PAIR)) labels[k!] = v!;
    let fam = families.get(name);
    if (!fam) families.set(name, (fam = { help: help.get(name) ?? name, samples: [] }));
    fam.samples.push({ labels, value: Number(m[3]) });
    series++;
  }
  help = new Map();
  for (const [name, fam] of families) {
    const labelNames = [...new Set(fam.samples.flatMap((s) => Object.keys(s.labels)))];
    const g = new Gauge({ name, help: fam.help, labelNames, registers: [registry] });
    for (const s of fam.samples) g.set(s.labels, s.value);
  }
  families.clear();
  const server = createServer((_req, res) => {
    void registry.metrics().then((body) => {
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/metrics`;
}

// Measure from here: start-up (building the registry, the first poll, rendering its text, the
// first scrape's compiling and encoding) is not steady state. One scrape of its own first: the
// first poll's text is rendered in slices after the poll, and scrapes waiting for it in the first
// seconds were the slowest of a run (130–330 ms), a start-up cost counted in the p99 otherwise.
// Read with node:http and dropped as it comes: `await fetch(url).then((r) => r.arrayBuffer())`
// loaded undici into the measured process and kept the 17 MB body alive for the whole run (the
// module's top-level await holds its last value), 16 MB of Buffers the daemon itself never has.
await scrapeOnce(url);
function scrapeOnce(from: string): Promise<void> {
  return new Promise((resolve, reject) => {
    get(from, (res) => {
      res.on("data", () => undefined);
      res.on("end", resolve);
      res.on("error", reject);
    }).on("error", reject);
  });
}
loop.enable();
let maxGc = { ms: 0, kind: "" };
const GC_KINDS: Record<number, string> = {
  1: "scavenge",
  2: "mark-compact",
  4: "incremental",
  8: "weak callbacks",
};
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = GC_KINDS[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? "other";
    if (e.duration > maxGc.ms) maxGc = { ms: e.duration, kind };
  }
});
gcObserver.observe({ entryTypes: ["gc"] });
// Attribute stalls: a timer that should fire every 10 ms notes how late it was, and how long after
// the end of the last poll (a poll takes lastPollDuration; the next starts an interval after).
const stalls: { ms: number; during: string }[] = [];
let expected = performance.now() + 10;
setInterval(() => {
  const late = performance.now() - expected;
  if (late > 20) {
    const since =
      lastPollEnd === 0 ? "-" : `${((performance.now() - late - lastPollEnd) / 1000).toFixed(2)} s`;
    stalls.push({ ms: late, during: `${since} after a poll ended${describePoll()}` });
    // BENCH_STALL_LOG=1: each stall with its monotonic time in µs, the clock of --cpu-prof's
    // timestamps, to find what ran then in the profile.
    if (process.env["BENCH_STALL_LOG"]) {
      const endUs = Number(process.hrtime.bigint() / 1000n);
      process.stderr.write(
        `stall ${late.toFixed(0)} ms from ${endUs - Math.round(late * 1000)} to ${endUs} µs\n`,
      );
    }
    stalls.sort((a, b) => b.ms - a.ms);
    stalls.length = Math.min(stalls.length, 5);
  }
  expected = performance.now() + 10;
}, 10);
rssPeak = 0;
samplePeak();
send({ ready: true, url });
// Start-up ends with the first save of chain state after the first poll: the lost-work state of
// every consumer written at once (10,000 KV puts at 10,000 consumers, a few seconds). The parent
// reports scrapes before this apart from the steady state's. A watch of the bench, not of a test.
void (async () => {
  const started = performance.now();
  while (!startupDone() && performance.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50));
  send({ settled: true, startupMs: Date.now() - firstPolledMs });
})();

process.on("message", (m) => {
  if (m === "report") {
    const report: ChildReport = {
      maxStallMs: loop.max / 1e6,
      p99StallMs: loop.percentile(99) / 1e6,
      rssPeakMb: (samplePeak(), rssPeak / MB),
      rssNowMb: process.memoryUsage.rss() / MB,
      heapUsedMb: process.memoryUsage().heapUsed / MB,
      heapTotalMb: process.memoryUsage().heapTotal / MB,
      externalMb: process.memoryUsage().external / MB,
      polls: polls(),
      series,
      maxGcPauseMs: maxGc.ms,
      maxGcKind: maxGc.kind,
      longestStalls: stalls,
      longestPolledListenersMs: listenersMs,
      atPeak,
    };
    send({ report });
    // BENCH_HEAP_SNAPSHOT_DIR=<dir>: a heap snapshot after the run (Chrome DevTools' Memory tab).
    const snapshots = process.env["BENCH_HEAP_SNAPSHOT_DIR"];
    if (snapshots) writeHeapSnapshot(`${snapshots}/${mode}-${process.pid}.heapsnapshot`);
  } else if (m === "exit") {
    clearInterval(sampler);
    process.exit(0);
  }
});
