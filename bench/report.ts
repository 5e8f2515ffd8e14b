// The benchmark tables, in Markdown (printed by `npm run bench`, pasted into BENCHMARKS.md).
import type { ChainResult } from "./chains.js";
import type { IngestResult } from "./ingest.js";
import type { PollCost } from "./poll-cost.js";
import type { ScrapeResult } from "./scrape.js";
import type { MemoryAtPeak } from "./scrape-child.js";

const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(n < 10 ? 1 : 0)} ms` : "–");
const num = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
const mb = (n: number) => `${n.toFixed(0)} MB`;
const x = (n: number) => `${n.toFixed(2)}×`;
const kb = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

export function pollTable(rows: readonly PollCost[]): string {
  return table(
    [
      "streams",
      "consumers",
      "lagging",
      "requests expected",
      "orgwatch requests cold / warm",
      "bare requests",
      "orgwatch wall (cold)",
      "bare wall",
      "ratio (target ≤ 1.5×)",
      "orgwatch CPU / bare CPU",
      "bare on orgwatch's requests: wall, CPU",
      "ratio to it (wall; CPU)",
      "bytes on the wire (cold)",
      "orgwatch wall (warm)",
      "one INFO per consumer",
    ],
    rows.map((r) => [
      num(r.topology.streams),
      num(r.topology.consumers),
      num(r.topology.lagging),
      num(r.expectedRequests),
      `${num(r.cold.requests)} / ${num(r.warm.requests)}`,
      num(r.bare.requests),
      ms(r.cold.wallMs),
      ms(r.bare.wallMs),
      x(r.ratio),
      `${ms(r.cold.cpuMs)} / ${ms(r.bare.cpuMs)}`,
      `${ms(r.bareOwnRequests.wallMs)}, ${ms(r.bareOwnRequests.cpuMs)}`,
      `${x(r.ownRequestsRatio)}; ${x(r.cold.cpuMs / r.bareOwnRequests.cpuMs)}`,
      kb(r.cold.bytes),
      ms(r.warm.wallMs),
      r.perConsumerInfoMs === undefined ? "–" : ms(r.perConsumerInfoMs),
    ]),
  );
}

export function ingestTable(rows: readonly (IngestResult & { mode: string })[]): string {
  return table(
    [
      "mode",
      "messages",
      "orgwatch rate",
      "bare JSON.parse rate",
      "ratio (target ≥ 0.6×)",
      "orgwatch per CPU-second",
      "bare per CPU-second",
      "dropped orgwatch / bare",
      "publisher rate",
    ],
    rows.map((r) => [
      r.mode,
      num(r.messages),
      `${num(r.orgwatch.ratePerSecond)}/s`,
      `${num(r.bare.ratePerSecond)}/s`,
      x(r.ratio),
      `${num(r.orgwatch.received / (r.orgwatch.cpuMs / 1000))}/s`,
      `${num(r.bare.received / (r.bare.cpuMs / 1000))}/s`,
      `${num(r.orgwatch.dropped)} / ${num(r.bare.dropped)}`,
      `${num(r.publisherRate)}/s`,
    ]),
  );
}

export function scrapeTable(r: ScrapeResult, consumers: number): string {
  const row = (name: string, s: ScrapeResult["orgwatch"]) => [
    name,
    num(s.series),
    kb(s.bytes),
    s.failed > 0 ? `${num(s.scrapes)} (${num(s.failed)} failed)` : num(s.scrapes),
    `${ms(s.p50Ms)} / ${ms(s.p99Ms)} / ${ms(s.maxMs)}`,
    ms(s.clientDecodeP50Ms),
    ms(s.child.maxStallMs),
    mb(s.child.rssPeakMb),
    mb(s.child.rssNowMb),
  ];
  return (
    table(
      [
        `/metrics at ${num(consumers)} consumers`,
        "series",
        "body",
        "scrapes",
        "to the last byte p50 / p99 / max (target ≤ 50 / 100 ms)",
        "+ a JS client decoding it (p50)",
        "longest event-loop stall (target ≤ 50 ms)",
        "RSS peak (target ≤ 150 MB)",
        "RSS at the end",
      ],
      [
        row("orgwatch (daemon, all sources, polling)", r.orgwatch),
        ...(r.orgwatchLoaded
          ? [row("orgwatch, another process keeping one core busy", r.orgwatchLoaded)]
          : []),
        row("bare prom-client, same series", r.bare),
      ],
    ) +
    "\n\n" +
    (r.idle
      ? `- the built daemon idle (\`node dist/cli.js\`, an empty organization, after three polls): ` +
        `RSS ${mb(r.idle.rssMb)}, peak ${mb(r.idle.rssPeakMb)}\n`
      : "") +
    stallNotes(r)
  );
}

/** What resident memory was made of at its peak: V8's spaces as committed, Buffers, and the rest. */
function atPeakNote(p: MemoryAtPeak | undefined): string {
  if (!p) return "";
  const rest = p.rssMb - p.youngMb - p.oldMb - p.codeMb - p.arrayBuffersMb;
  return (
    `at the RSS peak (${p.rssMb.toFixed(0)} MB) V8's young generation ${p.youngMb.toFixed(0)} MB, ` +
    `old ${p.oldMb.toFixed(0)} MB, code ${p.codeMb.toFixed(0)} MB, Buffers ${p.arrayBuffersMb.toFixed(0)} MB, ` +
    `the rest (Node, malloc, the binary) ${rest.toFixed(0)} MB; `
  );
}

function stallNotes(r: ScrapeResult): string {
  const lines: string[] = [];
  for (const [name, s] of [
    ["orgwatch", r.orgwatch],
    ["orgwatch, one core busy", r.orgwatchLoaded],
    ["bare prom-client", r.bare],
  ] as const) {
    if (!s) continue;
    lines.push(
      `- ${name}: at the end heap ${s.child.heapUsedMb.toFixed(0)} MB used of ${s.child.heapTotalMb.toFixed(0)} MB, ` +
        `outside the heap ${s.child.externalMb.toFixed(0)} MB; ` +
        atPeakNote(s.child.atPeak) +
        `longest GC pause ${ms(s.child.maxGcPauseMs)} (${s.child.maxGcKind || "none"}); ` +
        (name.startsWith("orgwatch")
          ? `longest poll-end listener ${ms(s.child.longestPolledListenersMs)}; `
          : "") +
        `longest stalls: ` +
        (s.child.longestStalls.map((st) => `${ms(st.ms)} (${st.during})`).join("; ") || "none over 20 ms"),
    );
    // Before the table's scrapes: from the first poll to the first save of chain state.
    if (s.startup)
      lines.push(
        `- ${name}, start-up (first poll to the first chain-state save, ${s.startup.seconds.toFixed(1)} s; ` +
          `not in the table): ${s.startup.scrapes} scrapes, p50 ${ms(s.startup.p50Ms)}, max ${ms(s.startup.maxMs)}`,
      );
  }
  return lines.join("\n");
}

/**
 * Growth: each size's poll (against the bare client, same run), /metrics, memory and the NATS
 * server's CPU, and what each costs per consumer (flat or falling with size is the target).
 */
export function growthTable(
  polls: readonly PollCost[],
  scrapes: readonly ScrapeResult[],
  idleMb: number,
): string {
  const us = (n: number) => (Number.isFinite(n) ? `${n.toFixed(n < 10 ? 1 : 0)} µs` : "–");
  const rows: string[][] = [];
  for (const r of scrapes) {
    const p = polls.find((q) => q.topology.consumers === r.consumers);
    const n = r.nats;
    const serverCpuPerPollMs = ((n.serverCpuPercent / 100) * n.seconds * 1000) / Math.max(1, n.polls);
    rows.push([
      num(r.consumers),
      p ? `${ms(p.cold.wallMs)} / ${ms(p.bare.wallMs)} (${x(p.ratio)})` : "–",
      p ? us((p.cold.cpuMs * 1000) / r.consumers) : "–",
      `${ms(r.orgwatch.p50Ms)} / ${ms(r.orgwatch.p99Ms)}`,
      us((r.orgwatch.p50Ms * 1000) / r.consumers),
      num(r.orgwatch.series),
      mb(r.orgwatch.child.rssPeakMb),
      `${(((r.orgwatch.child.rssPeakMb - idleMb) * 1024) / r.consumers).toFixed(1)} KiB`,
      `${ms(serverCpuPerPollMs)} (${n.serverCpuPercent.toFixed(1)} %)`,
      us((serverCpuPerPollMs * 1000) / r.consumers),
    ]);
  }
  return table(
    [
      "consumers",
      "poll wall orgwatch / bare (ratio, target ≤ 1.2×)",
      "poll CPU per consumer",
      "/metrics p50 / p99",
      "/metrics p50 per consumer",
      "series",
      "RSS peak",
      "RSS peak per consumer (above idle)",
      "nats-server CPU per poll (share of a core)",
      "nats-server CPU per poll per consumer",
    ],
    rows,
  );
}

export function natsTable(r: ScrapeResult, consumers: number, pollIntervalMs: number): string {
  const n = r.nats;
  return table(
    [
      `NATS at ${num(consumers)} consumers, poll every ${pollIntervalMs / 1000} s`,
      "polls",
      "JetStream API requests",
      "per poll",
      "per minute",
      "server CPU (share of a core)",
      "server CPU idle",
    ],
    [
      [
        `${n.seconds.toFixed(0)} s run`,
        num(n.polls),
        num(n.apiRequests),
        num(n.apiRequestsPerPoll),
        num((n.apiRequests / n.seconds) * 60),
        `${n.serverCpuPercent.toFixed(1)} %`,
        `${n.idleServerCpuPercent.toFixed(1)} %`,
      ],
    ],
  );
}

export function chainTable(r: ChainResult): string {
  return table(
    [
      "tasks",
      "chains (3 steps)",
      "offered rate",
      "orgwatch CPU (share of a core)",
      "RSS peak",
      "spans exported",
      "completion → span export p50 / p99 / max",
    ],
    [
      [
        num(r.tasks),
        num(r.chains),
        `${num(r.offeredRate)}/s`,
        `${r.cpuPercent.toFixed(0)} %`,
        mb(r.rssPeakMb),
        num(r.spansExported),
        `${ms(r.exportDelayP50Ms)} / ${ms(r.exportDelayP99Ms)} / ${ms(r.exportDelayMaxMs)}`,
      ],
    ],
  );
}
