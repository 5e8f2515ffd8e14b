// Task observation and chain tracking: the daemon (every source, in this process, spans to a
// recording exporter) watching a workload of 3-step chains (bench/chain-workload.ts, another
// process) at about `tasksPerSecond`. Measures the daemon's CPU and resident memory, and the delay
// from each task's completion (its task.completed event) to its span's export.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AckPolicy, DeliverPolicy, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect, nanos } from "@nats-io/transport-node";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import { configWith } from "../src/config/load.js";
import { startDaemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { max, median, percentile } from "./stats.js";

const WORKLOAD = fileURLToPath(new URL("./chain-workload.ts", import.meta.url));
const ROLES = ["alpha", "beta", "gamma"];

export interface ChainResult {
  readonly chains: number;
  readonly tasks: number;
  readonly offeredRate: number;
  readonly completed: number;
  readonly spansExported: number;
  /** Spans whose parent is the previous step's span (a staircase). */
  readonly spansLinked: number;
  readonly cpuPercent: number;
  readonly rssPeakMb: number;
  readonly exportDelayP50Ms: number;
  readonly exportDelayP99Ms: number;
  readonly exportDelayMaxMs: number;
}

/** Records when each task's span was exported. */
class RecordingExporter implements SpanExporter {
  readonly exportedAt = new Map<string, number>();
  readonly parentOf = new Map<string, string | undefined>();
  readonly spanIdOf = new Map<string, string>();
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    const now = Date.now();
    for (const s of spans) {
      // Task spans only (the chain's own span, exported when it ends, has no message id).
      const id = s.attributes["messaging.message.id"];
      if (typeof id !== "string") continue;
      this.exportedAt.set(id, now);
      this.spanIdOf.set(id, s.spanContext().spanId);
      this.parentOf.set(id, s.parentSpanContext?.spanId);
    }
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

export async function measureChains(
  url: string,
  { chains = 3000, tasksPerSecond = 1000, pollIntervalMs = 15_000 } = {},
): Promise<ChainResult> {
  const nc = await connect({ servers: url, name: "bench-chains-setup" });
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  for (const role of ROLES) {
    const stream = `AGENT_${role.toUpperCase()}_TASKS`;
    await jsm.streams.add({
      name: stream,
      subjects: [`genbrain.agents.${role}.tasks`],
      storage: StorageType.File,
    });
    await jsm.consumers.add(stream, {
      durable_name: `${role}-worker`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_deliver: 3,
      ack_wait: nanos(30 * 60_000),
      sample_freq: "100%",
    });
  }
  await nc.close();

  const exporter = new RecordingExporter();
  const config = configWith({
    "nats-url": [url],
    "web.listen-address": "127.0.0.1:0",
    "poll-interval": pollIntervalMs,
  });
  const daemon = await startDaemon(config, { log: silentLogger(), spanExporter: exporter });
  await daemon.started;
  await daemon.pollNow();
  const dir = mkdtempSync(join(tmpdir(), "orgwatch-chains-"));
  let rssPeak = process.memoryUsage.rss();
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 20);
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const out = join(dir, "completions.json");
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--import", "tsx", WORKLOAD, url, String(chains), String(tasksPerSecond), out],
        { maxBuffer: 1 << 20 },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const workload = JSON.parse(readFileSync(out, "utf8")) as {
      completedAt: Record<string, number>;
      offeredSeconds: number;
      done: number;
    };
    const tasks = chains * ROLES.length;
    // Spans follow completions; give the daemon a bounded time to export the last ones.
    const until = Date.now() + 30_000;
    while (exporter.exportedAt.size < tasks && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const delays: number[] = [];
    for (const [id, at] of exporter.exportedAt) {
      const completed = workload.completedAt[id];
      if (completed !== undefined) delays.push(at - completed);
    }
    let linked = 0;
    for (const [id, parent] of exporter.parentOf) {
      const m = /^c(\d+)-(\d)$/.exec(id);
      if (m && m[2] !== "1" && parent === exporter.spanIdOf.get(`c${m[1]}-${Number(m[2]) - 1}`)) linked++;
    }
    return {
      chains,
      tasks,
      offeredRate: tasks / Math.max(workload.offeredSeconds, 1e-3),
      completed: workload.done,
      spansExported: exporter.exportedAt.size,
      spansLinked: linked,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / 1000 / seconds) * 100,
      rssPeakMb: rssPeak / (1024 * 1024),
      exportDelayP50Ms: median(delays),
      exportDelayP99Ms: percentile(delays, 99),
      exportDelayMaxMs: max(delays),
    };
  } finally {
    clearInterval(sampler);
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
