// `npm run bench`: every benchmark, each against nats-servers of its own on free ports, then the
// tables (Markdown, as in BENCHMARKS.md). Options:
//   --quick            small sizes (a minute or so; for trying the harness, not for figures)
//   --only a,b         some of: poll, ingest, chains, scrape, admission, console, histories
//   --json <file>      also write the raw results
//   --sizes 10000,...  only these consumer counts (of the sizes below), e.g. to profile one
import { writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort, startNatsServer, type NatsServerProcess } from "../src/nats/server-process.js";
import { admissionTable, measureAdmission, type AdmissionResult } from "./admission.js";
import { measureChains, type ChainResult } from "./chains.js";
import { historiesTable, measureHistories, type HistoriesResult } from "./histories.js";
import { consoleTable, measureConsole, type ConsoleResult } from "./console.js";
import { INGEST_SERVER_CONFIG, measureIngest, type IngestResult } from "./ingest.js";
import { measurePollCost, type PollCost } from "./poll-cost.js";
import { chainTable, growthTable, ingestTable, natsTable, pollTable, scrapeTable } from "./report.js";
import { measureScrape, type ScrapeResult } from "./scrape.js";
import { createBenchTopology, planTopology, type BenchTopology } from "./topology.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const onlyArg = args[args.indexOf("--only") + 1];
const only = args.includes("--only") && onlyArg ? new Set(onlyArg.split(",")) : undefined;
const jsonOut = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;
const wants = (name: string) => !only || only.has(name);
const sizesArg = args[args.indexOf("--sizes") + 1];
const sizes = args.includes("--sizes") && sizesArg ? new Set(sizesArg.split(",").map(Number)) : undefined;

const SIZES: [number, number][] = quick
  ? [
      [10, 100],
      [100, 1000],
    ]
  : [
      [10, 100],
      [100, 1000],
      [1000, 10_000],
      [3000, 30_000],
    ];
/** Sizes /metrics is measured at (the growth table); the first with a busy core as well. */
const SCRAPE_SIZES = quick ? [1000] : [10_000, 1000, 30_000];
const POLL_INTERVAL_MS = 15_000;

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const failures: string[] = [];

/** A benchmark that fails is reported, and the others still run. */
async function phase(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    failures.push(`${name}: ${(err as Error).stack ?? String(err)}`);
    log(`${name} FAILED: ${(err as Error).message}`);
  }
}

async function withServer<T>(
  options: Parameters<typeof startNatsServer>[0],
  run: (server: NatsServerProcess) => Promise<T>,
): Promise<T> {
  const server = await startNatsServer(options);
  try {
    return await run(server);
  } finally {
    await server.stop();
  }
}

async function build(server: NatsServerProcess, topology: BenchTopology): Promise<void> {
  const t0 = performance.now();
  const nc = await connect({ servers: server.url, name: "bench-setup" });
  await createBenchTopology(nc, await jetstreamManager(nc, { checkAPI: false }), topology);
  await nc.close();
  log(
    `created ${topology.streams} streams, ${topology.consumers} consumers in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

const results: {
  machine: Record<string, unknown>;
  poll: PollCost[];
  ingest: (IngestResult & { mode: string })[];
  chains?: ChainResult;
  scrape: ScrapeResult[];
  admission?: AdmissionResult;
  console?: ConsoleResult;
  histories?: HistoriesResult;
} = {
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverageAtStart: loadavg()
      .map((l) => l.toFixed(1))
      .join(" "),
  },
  poll: [],
  ingest: [],
  scrape: [],
};

if (wants("chains")) {
  await phase("chains", () =>
    withServer({}, async (server) => {
      log("task observation and chains");
      results.chains = await measureChains(server.url, quick ? { chains: 300, tasksPerSecond: 300 } : {});
    }),
  );
}

if (wants("ingest")) {
  await phase("ingest", () =>
    withServer({ config: INGEST_SERVER_CONFIG }, async (server) => {
      for (const mode of ["drain", "live"] as const) {
        log(`ingest (${mode})`);
        results.ingest.push(await measureIngest(server.url, { messages: quick ? 100_000 : 400_000, mode }));
      }
    }),
  );
}

if (wants("admission")) {
  await phase("admission", () =>
    withServer({}, async (server) => {
      log("admission control");
      results.admission = await measureAdmission(
        server.url,
        quick ? { streams: 10, consumers: 100, requests: 2_000 } : { streams: 100, consumers: 1000 },
      );
    }),
  );
}

if (wants("console")) {
  await phase("console", () =>
    withServer({}, async (server) => {
      log("the console's server-sent events (100 clients)");
      results.console = await measureConsole(
        server.url,
        quick
          ? { streams: 10, consumers: 100, clients: 20, polls: 3 }
          : { streams: 100, consumers: 1000, clients: 100 },
      );
    }),
  );
}

if (wants("histories")) {
  await phase("histories", async () => {
    log("the poller's consumer histories over an hour of polls");
    results.histories = measureHistories(quick ? 1000 : 10_000, POLL_INTERVAL_MS);
  });
}

if (wants("poll") || wants("scrape")) {
  for (const [streams, consumers] of SIZES) {
    if (sizes && !sizes.has(consumers)) continue;
    const scraped = wants("scrape") && SCRAPE_SIZES.includes(consumers);
    if (!wants("poll") && !scraped) continue;
    const monitorPort = await freePort();
    await withServer({ args: ["-m", String(monitorPort)] }, async (server) => {
      const topology = planTopology(streams, consumers);
      await build(server, topology);
      if (wants("poll")) {
        await phase(`poll cost at ${consumers} consumers`, async () => {
          log(`poll cost at ${consumers} consumers`);
          results.poll.push(await measurePollCost(server.url, topology, { iterations: quick ? 3 : 5 }));
          log(pollTable(results.poll.slice(-1)).split("\n").pop()!);
        });
      }
      if (scraped)
        await phase(`scrape at ${consumers} consumers`, async () => {
          const detailed = consumers === SCRAPE_SIZES[0];
          log(
            `/metrics and NATS load at ${consumers} consumers (poll every ${(quick ? 2000 : POLL_INTERVAL_MS) / 1000} s${detailed ? "; then with one core busy" : ""})`,
          );
          results.scrape.push(
            await measureScrape(
              server.url,
              { pid: server.pid!, monitorUrl: `http://127.0.0.1:${monitorPort}` },
              consumers,
              {
                loaded: detailed,
                idle: detailed,
                ...(quick
                  ? { pollIntervalMs: 2000, durationMs: 5000, idleMs: 2000 }
                  : { pollIntervalMs: POLL_INTERVAL_MS, durationMs: 4 * POLL_INTERVAL_MS, idleMs: 15_000 }),
              },
            ),
          );
        });
    });
  }
}

results.machine["loadAverageAtEnd"] = loadavg()
  .map((l) => l.toFixed(1))
  .join(" ");
const m = results.machine;
const out: string[] = [
  `Machine: ${String(m["cpus"])} × ${String(m["cpu"])}, ${String(m["memoryGb"])} GB, Node ${String(m["node"])}; ` +
    `load average ${String(m["loadAverageAtStart"])} at the start, ${String(m["loadAverageAtEnd"])} at the end.`,
  "",
];
if (results.poll.length > 0) out.push("### Poll cost", "", pollTable(results.poll), "");
if (results.ingest.length > 0)
  out.push("### Ingest (status and events)", "", ingestTable(results.ingest), "");
if (results.chains) out.push("### Task observation and chains", "", chainTable(results.chains), "");
const detailed = results.scrape.find((r) => r.consumers === SCRAPE_SIZES[0]);
if (detailed) {
  out.push("### /metrics", "", scrapeTable(detailed, detailed.consumers), "");
  out.push(
    "### Load on NATS",
    "",
    natsTable(detailed, detailed.consumers, quick ? 2000 : POLL_INTERVAL_MS),
    "",
  );
}
if (results.scrape.length > 0) {
  const bySize = [...results.scrape].sort((a, b) => a.consumers - b.consumers);
  out.push("### Growth", "", growthTable(results.poll, bySize, detailed?.idle?.rssMb ?? 0), "");
}
if (results.admission) out.push("### Admission control", "", admissionTable(results.admission), "");
if (results.console) out.push("### The console", "", consoleTable(results.console), "");
if (results.histories)
  out.push("### Consumer histories over an hour", "", historiesTable(results.histories), "");
if (failures.length > 0)
  out.push("### Failed", "", ...failures.map((f) => "    " + f.split("\n").join("\n    ")), "");
process.stdout.write(out.join("\n") + "\n");
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ ...results, failures }, null, 2));
process.exit(failures.length > 0 ? 1 : 0);
